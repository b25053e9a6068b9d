import { loraDropoutMask } from '../lora/index.js';
import { type GPTNeoConfig, loadConfig } from '../model/config.js';
import { IO } from '../model/gpt-neo.js';
import { OrtTensor } from '../runtime/session.js';
import { openCheckpoint } from '../weights/index.js';
import { type GraphBatch, graphBatch, lossChunkInputs, type TrainingBatch } from './batch.js';
import { addEmbeddingGradients } from './embeddings.js';
import { TrainingInputError } from './errors.js';
import { TRAIN_IO } from './graph.js';
import { adamWUpdate, clippingScale, globalGradientNorm, isBiasOrNorm, learningRateFactor, type OptimizerState, zeroMoments } from './optimizer.js';
import { lossChunkRows, type TrainerOptions, type TrainerSettings, trainerSettings } from './options.js';
import { initialValue } from './parameters.js';
import { SeededRandom } from './random.js';
import { savePretrained } from './save.js';
import { collectGradients, type Feed, graphFeed, openTrainingGraphs, releaseTrainingGraphs, type TrainingGraphs } from './training-graphs.js';

export interface StepResult {
  /** Mean causal-LM loss of the batch (of its micro-batches, with gradient accumulation). */
  loss: number;
  /** Global L2 norm of the gradients before clipping, as Hugging Face logs it. */
  grad_norm: number;
  learning_rate: number;
}

/**
 * Fine-tunes a GPT-Neo model as Hugging Face's Trainer does one optimizer step: forward, backward block by block
 * (ONNX graphs built from the model description), gradient clipping and AdamW.
 */
export class Trainer {
  private readonly values = new Map<string, Float32Array>();
  /** LoRA's frozen base weights, fed to the graphs like the trained ones. */
  private readonly frozen = new Map<string, Float32Array>();
  private readonly shapes: ReadonlyMap<string, number[]>;
  private lastGradients = new Map<string, Float32Array>();
  private optimizer: OptimizerState = { step: 0, moments: new Map() };

  private constructor(
    readonly config: GPTNeoConfig,
    private readonly source: string,
    private readonly settings: TrainerSettings,
    private readonly graphs: TrainingGraphs,
    private readonly lossChunkRows: number,
  ) {
    this.shapes = new Map([...graphs.trainable, ...graphs.frozen].map(({ name, shape }) => [name, shape]));
  }

  static async from_pretrained(folder: string, options: TrainerOptions = {}): Promise<Trainer> {
    const settings = trainerSettings(folder, options);
    const config = await loadConfig(folder);
    const checkpoint = await openCheckpoint(folder);
    try {
      const graphs = await openTrainingGraphs(config, checkpoint, settings.lora, settings.threads);
      const trainer = new Trainer(config, folder, settings, graphs, lossChunkRows(settings, config.vocab_size));
      try {
        const random = new SeededRandom(settings.seed);
        for (const tensor of graphs.trainable) trainer.values.set(tensor.name, await initialValue(tensor, checkpoint, random));
        for (const { name } of graphs.frozen) trainer.frozen.set(name, await checkpoint.readFloat32(name));
      } catch (error) {
        await trainer.dispose();
        throw error;
      }
      return trainer;
    } finally {
      await checkpoint.close();
    }
  }

  /** One optimizer step over a batch, or over several micro-batches whose gradients are averaged (gradient accumulation). */
  async step(batch: TrainingBatch | TrainingBatch[]): Promise<StepResult> {
    const microBatches = Array.isArray(batch) ? batch : [batch];
    if (microBatches.length === 0) throw new TrainingInputError('step() needs at least one batch');
    // The first micro-batch's gradient outputs (already scaled for the average) become the sums. The previous
    // step's gradients are let go first: with them, a step would briefly hold two sets.
    this.lastGradients = new Map();
    const gradients = new Map<string, Float32Array>();
    let loss = 0;
    for (const [index, micro] of microBatches.entries()) {
      // Dropout draws depend only on (seed, step, micro-batch), so a resumed run draws the same masks.
      const dropout = new SeededRandom((this.settings.seed * 1_000_003 + this.optimizer.step * 1009 + index) >>> 0);
      loss += (await this.run(micro, microBatches.length, dropout, gradients)) / microBatches.length;
    }

    const gradNorm = globalGradientNorm(gradients.values());
    const stepNumber = this.optimizer.step + 1;
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new TrainingInputError(`step ${stepNumber}: the loss is ${loss} and the gradient norm ${gradNorm}; the parameters were not updated`);
    }
    this.lastGradients = gradients;

    const scale = clippingScale(gradNorm, this.settings.max_grad_norm);
    const lr = this.learningRate(this.optimizer.step);
    const { adam_beta1: beta1, adam_beta2: beta2, adam_epsilon: epsilon, weight_decay: weightDecay } = this.settings;
    for (const { name } of this.graphs.trainable) {
      let moments = this.optimizer.moments.get(name);
      if (!moments) this.optimizer.moments.set(name, (moments = zeroMoments(gradients.get(name)!.length)));
      const decay = this.settings.decay_biases_and_norms || !isBiasOrNorm(name);
      adamWUpdate(this.values.get(name)!, gradients.get(name)!, moments, stepNumber, lr, { beta1, beta2, epsilon, weightDecay }, decay, scale);
    }
    this.optimizer.step = stepNumber;
    return { loss, grad_norm: gradNorm, learning_rate: lr };
  }

  /** The learning rate of optimizer step `step` (0-based). */
  learningRate(step: number): number {
    const { lr_scheduler_type: type, warmup_steps: warmup, max_steps: total, learning_rate: base } = this.settings;
    return base * learningRateFactor(type, step, warmup, total ?? 0);
  }

  /** Optimizer steps taken so far. */
  get global_step(): number {
    return this.optimizer.step;
  }

  /** Mean causal-LM loss of a batch at the current parameters, without a step (for validation). */
  async evaluate(batch: TrainingBatch): Promise<number> {
    return this.run(batch, 1, undefined);
  }

  /** The last step's gradients (before clipping), by Hugging Face parameter name. */
  gradients(): Map<string, Float32Array> {
    return new Map(this.lastGradients);
  }

  /** Current values of the trainable parameters, by Hugging Face (or PEFT) name. */
  parameters(): Map<string, Float32Array> {
    return new Map(this.values);
  }

  /** Whether only a LoRA adapter trains (save_pretrained then writes PEFT's adapter files). */
  get isLora(): boolean {
    return this.settings.lora !== undefined;
  }

  get optimizerState(): OptimizerState {
    return this.optimizer;
  }

  /** Continues from a checkpoint: parameter values and the optimizer's state. */
  restore(values: Map<string, Float32Array>, optimizer: OptimizerState): void {
    for (const { name, shape } of this.graphs.trainable) {
      const value = values.get(name);
      const size = shape.reduce((a, b) => a * b, 1);
      if (!value || value.length !== size) throw new TrainingInputError(`the checkpoint has no value of ${size} elements for '${name}'`);
      this.values.set(name, value);
    }
    this.optimizer = optimizer;
  }

  /** The trained model as a Hugging Face folder, or a PEFT adapter folder with LoRA (see savePretrained). */
  async save_pretrained(outDir: string): Promise<void> {
    const tensors = this.graphs.trainable.map(({ name, shape }) => ({ name, shape, dtype: 'F32' as const, data: () => this.values.get(name)! }));
    const { lora, base_model_name_or_path } = this.settings;
    await savePretrained(outDir, { source: this.source, tensors, lora, base_model_name_or_path });
  }

  async dispose(): Promise<void> {
    await releaseTrainingGraphs(this.graphs);
  }

  /**
   * The mean causal-LM loss of a micro-batch; with `gradients`, its gradients (scaled for averaging over `parts`
   * micro-batches) are added in. Forward through every block keeping only the residual stream between them,
   * the loss and its backward in chunks of rows, then each block's forward again and its backward, last to first.
   */
  private async run(batch: TrainingBatch, parts: number, dropout: SeededRandom | undefined, gradients?: Map<string, Float32Array>): Promise<number> {
    const L = this.config.num_layers;
    const micro = graphBatch(batch, this.config, parts, this.values.get(IO.tokenEmbeddings) ?? this.frozen.get(IO.tokenEmbeddings)!);
    const feed = this.feeder(micro, dropout);
    const stream = await this.graphs.forward.run((input) => feed(input));
    const residual = (layer: number) => stream[IO.residual(layer)]!.data as Float32Array;

    const { loss, streamGradient } = await this.lossAndHeadBackward(micro, residual(L), feed, gradients);
    if (!gradients) return loss;
    let gradient: Float32Array = streamGradient;
    for (let layer = L - 1; layer >= 0; layer--) gradient = await this.blockBackward(layer, micro, residual(layer), gradient, feed, gradients);
    addEmbeddingGradients(gradients, gradient, micro, this.config.hidden_size, this.values);
    return loss;
  }

  /** The loss over the stream leaving the last block, in chunks of rows; with `gradients`, the head's backward too. */
  private async lossAndHeadBackward(micro: GraphBatch, leaving: Float32Array, feed: Feed, gradients?: Map<string, Float32Array>) {
    const { rows, weights, scored } = micro;
    const { hidden_size: C, num_layers: L } = this.config;
    let loss = 0;
    const streamGradient = new Float32Array(gradients ? rows * C : 0);
    // As many chunks as loss_chunk_rows needs, of equal size: the largest sets the memory.
    const chunkRows = Math.ceil(rows / Math.ceil(rows / this.lossChunkRows));
    for (let first = 0; first < rows; first += chunkRows) {
      const end = Math.min(rows, first + chunkRows);
      const n = end - first;
      const chunk = lossChunkInputs(micro, leaving, first, end, this.config);
      const outputs = await this.graphs.head.session.run((input) => chunk[input] ?? feed(input, 0, 0, first, end));
      const targetLogProbabilities = outputs[TRAIN_IO.targetLogProbabilities]!.data as Float32Array;
      for (let i = 0; i < n; i++) if (weights[first + i]! > 0) loss -= targetLogProbabilities[i]! / scored;
      if (!gradients) continue;
      collectGradients(gradients, outputs, this.graphs.head);
      streamGradient.set(outputs[TRAIN_IO.gradient(IO.residual(L))]!.data as Float32Array, first * C);
    }
    return { loss, streamGradient };
  }

  /** Block `layer`'s forward again from the stream entering it, and its backward: the gradient of that stream. */
  private async blockBackward(
    layer: number,
    micro: GraphBatch,
    entering: Float32Array,
    leavingGradient: Float32Array,
    feed: Feed,
    gradients: Map<string, Float32Array>,
  ): Promise<Float32Array> {
    const { B, T, rows, modelInputs } = micro;
    const graph = this.graphs.blocks[layer]!;
    const kinds = this.config.attention_layers;
    const block: Record<string, OrtTensor> = {
      // Global and local attention differ only in their mask, so one graph runs both.
      [IO.attentionBias(kinds[graph.template]!)]: modelInputs[IO.attentionBias(kinds[layer]!)]!,
      [IO.residual(graph.template)]: new OrtTensor('float32', entering, [B, T, this.config.hidden_size]),
      [TRAIN_IO.gradient(IO.residual(graph.template + 1))]: new OrtTensor('float32', leavingGradient, [rows, this.config.hidden_size]),
    };
    const outputs = await graph.session.run((input) => block[input] ?? feed(input, graph.template, layer));
    collectGradients(gradients, outputs, graph, graph.template, layer);
    return outputs[TRAIN_IO.gradient(IO.residual(graph.template))]!.data as Float32Array;
  }

  private feeder(micro: GraphBatch, dropout: SeededRandom | undefined): Feed {
    const p = this.settings.lora?.dropout ?? 0;
    const masks = new Map(this.graphs.dropoutMasks.map(({ name, features }) => [name, loraDropoutMask(micro.rows * features, p, dropout)]));
    return graphFeed(micro, masks, (name) => {
      const value = this.values.get(name) ?? this.frozen.get(name);
      const shape = this.shapes.get(name);
      return value && shape && new OrtTensor('float32', value, shape);
    });
  }
}
