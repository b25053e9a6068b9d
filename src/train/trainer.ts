import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type GPTNeoConfig, loadConfig } from '../model/config.js';
import { IO } from '../model/gpt-neo.js';
import { GraphBuilder } from '../onnx/graph.js';
import { OrtTensor } from '../runtime/session.js';
import { type Checkpoint, openCheckpoint, writeSafetensors } from '../weights/index.js';
import { type LoraConfig, loraConfig, loraConfigProblem, loraDropoutMask, type LoraOptions, writeAdapter } from '../lora/index.js';
import { TrainingInputError } from './errors.js';
import { buildBlockTrainingGraph, buildHeadTrainingGraph, buildResidualStreamGraph, TRAIN_IO } from './graph.js';
import { adamWUpdate, learningRateFactor, type Moments, SCHEDULER_TYPES, type SchedulerType, zeroMoments } from './optimizer.js';
import { initialValue, type TrainableTensor, type TrainingParameters, trainingParameters } from './parameters.js';
import { SeededRandom } from './random.js';
import { GraphSession } from './sessions.js';

/** Hugging Face TrainingArguments names; defaults are the Trainer's. */
export interface TrainerOptions {
  learning_rate?: number;
  adam_beta1?: number;
  adam_beta2?: number;
  adam_epsilon?: number;
  weight_decay?: number;
  /** false (HF Trainer's behaviour): no weight decay on biases and LayerNorm weights. */
  decay_biases_and_norms?: boolean;
  /** Global L2 norm the gradients are clipped to; null: no clipping. Default 1.0. */
  max_grad_norm?: number | null;
  lr_scheduler_type?: SchedulerType;
  warmup_steps?: number;
  /** Optimizer steps of the whole run; the linear and cosine schedules need it. */
  max_steps?: number;
  /** LoRA in PEFT's layout: the base model frozen, only the adapters train. */
  lora?: LoraOptions;
  /** What adapter_config.json names as the base model (a Hub id); default: the folder trained from. */
  base_model_name_or_path?: string;
  /** Seed of LoRA's initialisation and dropout. */
  seed?: number;
  threads?: number;
  /**
   * Most rows of logits the loss computes at once (default: as many as fit in 256 MB of float32, 1,335 rows of
   * GPT-2's vocabulary; a batch is cut into equal chunks): fewer hold less memory; more run fewer, larger
   * products (each chunk also returns a whole [vocab, hidden] gradient of the tied head).
   */
  loss_chunk_rows?: number;
}

export interface TrainingBatch {
  input_ids: number[][];
  /** HF's causal-LM labels: position t is predicted from tokens up to t - 1; -100 is not scored. */
  labels: number[][];
}

export interface StepResult {
  /** Mean causal-LM loss of the batch (of its micro-batches, with gradient accumulation). */
  loss: number;
  /** Global L2 norm of the gradients before clipping, as Hugging Face logs it. */
  grad_norm: number;
  learning_rate: number;
}

/** What a checkpoint needs to continue exactly: the optimizer's moments and its step count. */
export interface OptimizerState {
  step: number;
  moments: Map<string, Moments>;
}

const HIDDEN = -3.4028234663852886e38;
/**
 * The loss runs over the rows of a batch in chunks of at most this many logits (256 MB of float32) by default,
 * so a few [rows, vocab] tensors of one chunk are alive instead of the whole batch's (0.4 GB each for 2,048
 * rows: two chunks of 1,024). Measured on the 125M shape (block 512 x batch 4): chunks of 333 rows made steps
 * 20% slower than chunks of 1,024 (the head's products are thin and each chunk returns a 154 MB gradient) for
 * 0.13 GB less peak RSS; one chunk of 2,048 rows held 0.5 GB more and was no faster.
 */
const LOSS_CHUNK_LOGITS = 1 << 26;
const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'];

/** A graph with a backward pass, and the parameters it gives gradients for (by the names of its inputs). */
interface BackwardGraph {
  session: GraphSession;
  trainable: TrainableTensor[];
}

/** The pieces a training step runs (see graph.ts), and what they take. */
interface TrainingGraphs {
  /** Embeddings and every block: the residual stream entering each block. */
  forward: GraphSession;
  /** ln_f, the LM head and the loss over a chunk of rows, with their backward. */
  head: BackwardGraph;
  /** Per layer: the block graph it runs, and the layer whose parameter names that graph's inputs carry. */
  blocks: Array<BackwardGraph & { template: number }>;
  /** In Hugging Face's named_parameters() order (PEFT's for LoRA). */
  trainable: TrainableTensor[];
  frozen: Array<{ name: string; shape: number[] }>;
  dropoutMasks: Array<{ name: string; features: number }>;
}

/**
 * Fine-tunes a GPT-Neo model: forward, backward (ONNX graphs built from the model description), gradient
 * clipping and AdamW, as Hugging Face's Trainer does one optimizer step.
 */
export class Trainer {
  private readonly values = new Map<string, Float32Array>();
  /** LoRA's frozen base weights, fed to the graphs like the trained ones. */
  private readonly frozen = new Map<string, Float32Array>();
  private lastGradients = new Map<string, Float32Array>();
  private optimizer: OptimizerState = { step: 0, moments: new Map() };

  private constructor(
    readonly config: GPTNeoConfig,
    private readonly source: string,
    private readonly options: Required<Omit<TrainerOptions, 'lora' | 'max_steps' | 'threads' | 'seed' | 'loss_chunk_rows'>> & Pick<TrainerOptions, 'max_steps'>,
    private readonly lora: LoraConfig | undefined,
    private readonly graphs: TrainingGraphs,
    private readonly seed: number,
    private readonly lossChunkRows: number,
  ) {}

  private get trainable(): TrainableTensor[] {
    return this.graphs.trainable;
  }

  static async from_pretrained(folder: string, options: TrainerOptions = {}): Promise<Trainer> {
    const settings = {
      learning_rate: options.learning_rate ?? 5e-5,
      adam_beta1: options.adam_beta1 ?? 0.9,
      adam_beta2: options.adam_beta2 ?? 0.999,
      adam_epsilon: options.adam_epsilon ?? 1e-8,
      weight_decay: options.weight_decay ?? 0,
      decay_biases_and_norms: options.decay_biases_and_norms ?? false,
      max_grad_norm: options.max_grad_norm === undefined ? 1.0 : options.max_grad_norm,
      lr_scheduler_type: options.lr_scheduler_type ?? 'linear',
      warmup_steps: options.warmup_steps ?? 0,
      max_steps: options.max_steps,
      base_model_name_or_path: options.base_model_name_or_path ?? folder,
    };
    validateSettings(settings);
    const lora = options.lora && loraConfig(options.lora);
    const loraProblem = lora && loraConfigProblem(lora);
    if (loraProblem) throw new TrainingInputError(loraProblem);
    if (options.loss_chunk_rows !== undefined && !(Number.isInteger(options.loss_chunk_rows) && options.loss_chunk_rows >= 1)) {
      throw new TrainingInputError(`loss_chunk_rows must be a whole number >= 1, got ${options.loss_chunk_rows}`);
    }

    const config = await loadConfig(folder);
    const checkpoint = await openCheckpoint(folder);
    try {
      const graphs = await openTrainingGraphs(config, checkpoint, lora, options.threads);
      const seed = options.seed ?? 42;
      const chunkRows = options.loss_chunk_rows ?? Math.max(1, Math.floor(LOSS_CHUNK_LOGITS / config.vocab_size));
      const trainer = new Trainer(config, folder, settings, lora, graphs, seed, chunkRows);
      try {
        const random = new SeededRandom(seed);
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
      const dropout = new SeededRandom((this.seed * 1_000_003 + this.optimizer.step * 1009 + index) >>> 0);
      loss += (await this.run(micro, microBatches.length, dropout, gradients)) / microBatches.length;
    }

    let squares = 0;
    for (const gradient of gradients.values()) for (let i = 0; i < gradient.length; i++) squares += gradient[i]! * gradient[i]!;
    const gradNorm = Math.sqrt(squares);
    const stepNumber = this.optimizer.step + 1;
    if (!Number.isFinite(loss) || !Number.isFinite(gradNorm)) {
      throw new TrainingInputError(`step ${stepNumber}: the loss is ${loss} and the gradient norm ${gradNorm}; the parameters were not updated`);
    }
    this.lastGradients = gradients;

    const { max_grad_norm: maxNorm } = this.options;
    const scale = maxNorm === null ? 1 : Math.min(1, maxNorm / (gradNorm + 1e-6));
    const lr = this.learningRate(this.optimizer.step);
    const adam = {
      beta1: this.options.adam_beta1,
      beta2: this.options.adam_beta2,
      epsilon: this.options.adam_epsilon,
      weightDecay: this.options.weight_decay,
    };
    for (const { name } of this.trainable) {
      let moments = this.optimizer.moments.get(name);
      if (!moments) this.optimizer.moments.set(name, (moments = zeroMoments(gradients.get(name)!.length)));
      const decay = this.options.decay_biases_and_norms || !isBiasOrNorm(name);
      adamWUpdate(this.values.get(name)!, gradients.get(name)!, moments, stepNumber, lr, adam, decay, scale);
    }
    this.optimizer.step = stepNumber;
    return { loss, grad_norm: gradNorm, learning_rate: lr };
  }

  /** The learning rate of optimizer step `step` (0-based). */
  learningRate(step: number): number {
    const { lr_scheduler_type: type, warmup_steps: warmup, max_steps: total, learning_rate: base } = this.options;
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
    return this.lora !== undefined;
  }

  get optimizerState(): OptimizerState {
    return this.optimizer;
  }

  /** Continues from a checkpoint: parameter values and the optimizer's state. */
  restore(values: Map<string, Float32Array>, optimizer: OptimizerState): void {
    for (const { name, shape } of this.trainable) {
      const value = values.get(name);
      const size = shape.reduce((a, b) => a * b, 1);
      if (!value || value.length !== size) throw new TrainingInputError(`the checkpoint has no value of ${size} elements for '${name}'`);
      this.values.set(name, value);
    }
    this.optimizer = optimizer;
  }

  /**
   * A Hugging Face model folder: config.json, model.safetensors (float32, the tied head not duplicated) and the
   * tokenizer files; with LoRA, PEFT's adapter_config.json and adapter_model.safetensors instead of the weights.
   */
  async save_pretrained(outDir: string): Promise<void> {
    await mkdir(outDir, { recursive: true });
    const tensors = this.trainable.map(({ name, shape }) => ({ name, shape, dtype: 'F32' as const, data: () => this.values.get(name)! }));
    if (this.lora) {
      await writeAdapter(outDir, this.lora, this.options.base_model_name_or_path, tensors);
    } else {
      const config = JSON.parse(await readFile(path.join(this.source, 'config.json'), 'utf8')) as Record<string, unknown>;
      config.architectures = ['GPTNeoForCausalLM'];
      config.torch_dtype = 'float32';
      await writeFile(path.join(outDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
      await writeSafetensors(path.join(outDir, 'model.safetensors'), tensors, { format: 'pt' });
    }
    for (const file of TOKENIZER_FILES) {
      await copyFile(path.join(this.source, file), path.join(outDir, file)).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
    }
  }

  async dispose(): Promise<void> {
    const { forward, head, blocks } = this.graphs;
    for (const session of new Set([forward, head.session, ...blocks.map((block) => block.session)])) await session.release();
  }

  /**
   * The mean causal-LM loss of a micro-batch; with `gradients`, its gradients (scaled for averaging over `parts`
   * micro-batches) are added in. Forward through every block keeping only the residual stream between them,
   * the loss and its backward in chunks of rows, then each block's forward again and its backward, last to first.
   */
  private async run(batch: TrainingBatch, parts: number, dropout: SeededRandom | undefined, gradients?: Map<string, Float32Array>): Promise<number> {
    const { B, T } = checkBatch(batch, this.config);
    const { hidden_size: C, num_heads: H, num_layers: L } = this.config;
    const rows = B * T;
    const ids = batch.input_ids.flat();

    // Row b*T + t predicts labels[b][t + 1]; the last position of a row predicts nothing.
    const targets = new BigInt64Array(rows);
    const weights = new Float32Array(rows);
    let scored = 0;
    batch.labels.forEach((row, b) => {
      for (let t = 0; t + 1 < T; t++) {
        if (row[t + 1] === -100) continue;
        targets[b * T + t] = BigInt(row[t + 1]!);
        weights[b * T + t] = 1;
        scored++;
      }
    });
    if (scored === 0) throw new TrainingInputError('the batch has no labels to score (every shifted label is -100)');
    for (let i = 0; i < rows; i++) weights[i]! /= scored * parts;

    const modelInputs: Record<string, OrtTensor> = {
      [IO.inputsEmbeds]: new OrtTensor('float32', this.lookupEmbeddings(ids), [B, T, C]),
      [IO.positionIds]: new OrtTensor('int64', BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % T)), [B, T]),
    };
    // Training attends only to its own block, so the KV cache holds nothing; it is given one masked slot rather
    // than none because ONNX Runtime's FusedMatMul (the backward of q k^T) leaves its output uninitialised when
    // the inner dimension is 0. A masked slot has probability exactly 0, so it adds exactly 0 to every gradient.
    for (const kind of new Set(this.config.attention_layers)) {
      const window = kind === 'local' ? this.config.window_size : Infinity;
      modelInputs[IO.attentionBias(kind)] = new OrtTensor('float32', attentionBias(B, T, window), [B, 1, T, T + 1]);
    }
    const D = C / H;
    const emptySlot = new Float32Array(B * H * D);
    for (let layer = 0; layer < L; layer++) {
      modelInputs[IO.cachedKeys(layer)] = new OrtTensor('float32', emptySlot, [B, H, D, 1]);
      modelInputs[IO.cachedValues(layer)] = new OrtTensor('float32', emptySlot, [B, H, 1, D]);
    }
    const masks = this.dropoutMasks(rows, dropout);
    // A graph input: one of the model's inputs, else a parameter or dropout mask (named for layer `template` in
    // a block graph run for `layer`; over rows [first, end) of the batch in the head's chunks).
    const feed = (input: string, template = 0, layer = 0, first = 0, end = rows): OrtTensor => {
      const tensor = modelInputs[input];
      if (tensor) return tensor;
      const name = atLayer(input, template, layer);
      const mask = masks.get(name);
      if (mask) return new OrtTensor('float32', mask.subarray(first * (mask.length / rows), end * (mask.length / rows)), [end - first, mask.length / rows]);
      const value = this.values.get(name) ?? this.frozen.get(name);
      const shape = this.graphs.trainable.find((t) => t.name === name)?.shape ?? this.graphs.frozen.find((t) => t.name === name)?.shape;
      if (!value || !shape) throw new Error(`training graph input '${input}' has no value`);
      return new OrtTensor('float32', value, shape);
    };
    const collect = (outputs: Record<string, OrtTensor>, graphTrainable: TrainableTensor[], template = 0, layer = 0) => {
      for (const { name } of graphTrainable) addGradient(gradients!, atLayer(name, template, layer), outputs[TRAIN_IO.gradient(name)]!.data as Float32Array);
    };

    const stream = await this.graphs.forward.run((input) => feed(input));
    const residual = (layer: number) => stream[IO.residual(layer)]!.data as Float32Array;

    let loss = 0;
    let streamGradient: Float32Array = new Float32Array(gradients ? rows * C : 0);
    // As many chunks as loss_chunk_rows needs, of equal size: the largest sets the memory.
    const chunkRows = Math.ceil(rows / Math.ceil(rows / this.lossChunkRows));
    for (let first = 0; first < rows; first += chunkRows) {
      const end = Math.min(rows, first + chunkRows);
      const n = end - first;
      const chunk: Record<string, OrtTensor> = {
        [IO.residual(L)]: new OrtTensor('float32', residual(L).subarray(first * C, end * C), [1, n, C]),
        [IO.logitRows]: new OrtTensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [n]),
        [TRAIN_IO.targets]: new OrtTensor('int64', targets.subarray(first, end), [n, 1]),
        [TRAIN_IO.targetWeights]: new OrtTensor('float32', weights.subarray(first, end), [n, 1]),
      };
      const outputs = await this.graphs.head.session.run((input) => chunk[input] ?? feed(input, 0, 0, first, end));
      const targetLogProbabilities = outputs[TRAIN_IO.targetLogProbabilities]!.data as Float32Array;
      for (let i = 0; i < n; i++) if (weights[first + i]! > 0) loss -= targetLogProbabilities[i]! / scored;
      if (!gradients) continue;
      collect(outputs, this.graphs.head.trainable);
      streamGradient.set(outputs[TRAIN_IO.gradient(IO.residual(L))]!.data as Float32Array, first * C);
    }
    if (!gradients) return loss;

    for (let layer = L - 1; layer >= 0; layer--) {
      const { session, trainable, template } = this.graphs.blocks[layer]!;
      const kinds = this.config.attention_layers;
      const block: Record<string, OrtTensor> = {
        // Global and local attention differ only in their mask, so one graph runs both.
        [IO.attentionBias(kinds[template]!)]: modelInputs[IO.attentionBias(kinds[layer]!)]!,
        [IO.residual(template)]: new OrtTensor('float32', residual(layer), [B, T, C]),
        [TRAIN_IO.gradient(IO.residual(template + 1))]: new OrtTensor('float32', streamGradient, [rows, C]),
      };
      const outputs = await session.run((input) => block[input] ?? feed(input, template, layer));
      collect(outputs, trainable, template, layer);
      streamGradient = outputs[TRAIN_IO.gradient(IO.residual(template))]!.data as Float32Array;
    }

    // The residual stream entering block 0 is inputs_embeds + wpe[position_ids]: its gradient goes to the rows
    // of both tables that were looked up (repeated rows summing; the tied head's part of wte is already in).
    const addRows = (table: string, rowOf: (row: number) => number) => {
      const gradient = gradients.get(table);
      if (!gradient && !this.values.has(table)) return;
      const total = gradient ?? new Float32Array(this.values.get(table)!.length);
      gradients.set(table, total);
      for (let row = 0; row < rows; row++) {
        const at = rowOf(row) * C;
        for (let c = 0; c < C; c++) total[at + c]! += streamGradient[row * C + c]!;
      }
    };
    addRows('transformer.wpe.weight', (row) => row % T);
    addRows(IO.tokenEmbeddings, (row) => ids[row]!);
    return loss;
  }

  /** LoRA's dropout masks for every adapter (0 or 1 / (1 - p) per element); all ones when evaluating. */
  private dropoutMasks(rows: number, dropout: SeededRandom | undefined): Map<string, Float32Array> {
    const p = this.lora?.dropout ?? 0;
    return new Map(this.graphs.dropoutMasks.map(({ name, features }) => [name, loraDropoutMask(rows * features, p, dropout)]));
  }

  private lookupEmbeddings(ids: number[]): Float32Array {
    const wte = this.values.get(IO.tokenEmbeddings) ?? this.frozen.get(IO.tokenEmbeddings)!;
    const C = this.config.hidden_size;
    const out = new Float32Array(ids.length * C);
    ids.forEach((id, row) => out.set(wte.subarray(id * C, (id + 1) * C), row * C));
    return out;
  }
}
/**
 * Builds and opens the training graphs: the forward pass, the head, and one block graph per distinct block
 * layout (which linear layers carry an adapter), which every block of that layout runs, global or local
 * (each ONNX Runtime session keeps its own memory arena, so fewer sessions hold less).
 */
async function openTrainingGraphs(
  config: GPTNeoConfig,
  checkpoint: Checkpoint,
  lora: LoraConfig | undefined,
  threads: number | undefined,
): Promise<TrainingGraphs> {
  const build = (buildGraph: (g: GraphBuilder, params: TrainingParameters) => void) => {
    const g = new GraphBuilder();
    const params = trainingParameters(g, config, checkpoint, lora);
    buildGraph(g, params);
    return { g, params };
  };
  const forward = build((g, params) => buildResidualStreamGraph(g, config, params));
  const head = build((g, params) => buildHeadTrainingGraph(g, config, params));
  if (lora) {
    const matched = new Set([...forward.params.matchedTargets, ...head.params.matchedTargets]);
    const unmatched = lora.target_modules.filter((target) => !matched.has(target));
    if (unmatched.length > 0) {
      throw new TrainingInputError(
        `LoRA target module(s) ${unmatched.map((t) => `'${t}'`).join(', ')} name no linear layer of the model ` +
          `(GPT-Neo has q_proj, k_proj, v_proj, out_proj, c_fc, c_proj)`,
      );
    }
  }
  const layout = (layer: number) => {
    const prefix = `transformer.h.${layer}.`;
    const adapted = forward.params.adaptedModules.filter((module) => module.startsWith(prefix)).map((module) => module.slice(prefix.length));
    return adapted.join();
  };
  const templates = new Map<string, number>();
  for (let layer = 0; layer < config.num_layers; layer++) if (!templates.has(layout(layer))) templates.set(layout(layer), layer);

  const opened: GraphSession[] = [];
  const open = async (g: GraphBuilder) => {
    const session = await GraphSession.create(g, threads);
    opened.push(session);
    return session;
  };
  try {
    const blockGraphs = new Map<number, BackwardGraph>();
    for (const template of templates.values()) {
      const block = build((g, params) => buildBlockTrainingGraph(g, config, params, template));
      blockGraphs.set(template, { session: await open(block.g), trainable: block.params.trainable });
    }
    const unique = <T extends { name: string }>(list: T[]) => [...new Map(list.map((item) => [item.name, item])).values()];
    return {
      forward: await open(forward.g),
      head: { session: await open(head.g), trainable: head.params.trainable },
      blocks: Array.from({ length: config.num_layers }, (_, layer) => {
        const template = templates.get(layout(layer))!;
        return { ...blockGraphs.get(template)!, template };
      }),
      trainable: unique([...forward.params.trainable, ...head.params.trainable]),
      frozen: unique([...forward.params.frozen, ...head.params.frozen]),
      dropoutMasks: [...forward.params.dropoutMasks, ...head.params.dropoutMasks],
    };
  } catch (error) {
    for (const session of opened) await session.release();
    throw error;
  }
}

/** A block graph's input or output name for the block it runs: layer `template`'s parameter names become layer `layer`'s. */
function atLayer(name: string, template: number, layer: number): string {
  return template === layer ? name : name.replace(`.h.${template}.`, `.h.${layer}.`);
}

/** Adds a graph's gradient output into the step's sum (the first one is taken as it is). */
function addGradient(gradients: Map<string, Float32Array>, name: string, part: Float32Array): void {
  const total = gradients.get(name);
  if (!total) gradients.set(name, part);
  else for (let i = 0; i < total.length; i++) total[i]! += part[i]!;
}

/** HF's default decay exclusions: every bias and the LayerNorm weights (ln_1, ln_2, ln_f). */
function isBiasOrNorm(name: string): boolean {
  return name.endsWith('.bias') || /(^|\.)ln_(1|2|f)\./.test(name);
}

/** [B, 1, T, 1 + T] additive mask over [the masked cache slot, the block]: query t sees keys t - window < j <= t. */
function attentionBias(B: number, T: number, window: number): Float32Array {
  const bias = new Float32Array(B * T * (T + 1)).fill(HIDDEN);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) for (let j = Math.max(0, t - window + 1); j <= t; j++) bias[(b * T + t) * (T + 1) + 1 + j] = 0;
  }
  return bias;
}

function checkBatch(batch: TrainingBatch, config: GPTNeoConfig): { B: number; T: number } {
  const { input_ids, labels } = batch;
  const B = input_ids.length;
  const T = input_ids[0]?.length ?? 0;
  if (B === 0 || T === 0) throw new TrainingInputError('input_ids is empty');
  if (T > config.max_position_embeddings) {
    throw new TrainingInputError(`sequence length ${T} is over the model's context (max_position_embeddings ${config.max_position_embeddings})`);
  }
  if (input_ids.some((row) => row.length !== T)) throw new TrainingInputError('input_ids rows must all have the same length');
  if (labels.length !== B || labels.some((row) => row.length !== T)) throw new TrainingInputError(`labels must have the shape of input_ids [${B}, ${T}]`);
  const V = config.vocab_size;
  input_ids.forEach((row, b) =>
    row.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new TrainingInputError(`input_ids[${b}][${t}] = ${id} is outside the vocabulary (0..${V - 1})`);
    }),
  );
  labels.forEach((row, b) =>
    row.forEach((id, t) => {
      if (id !== -100 && (!Number.isInteger(id) || id < 0 || id >= V)) {
        throw new TrainingInputError(`labels[${b}][${t}] = ${id} is outside the vocabulary (0..${V - 1}) and not -100`);
      }
    }),
  );
  return { B, T };
}

function validateSettings(s: { learning_rate: number; adam_beta1: number; adam_beta2: number; adam_epsilon: number; weight_decay: number; max_grad_norm: number | null; lr_scheduler_type: string; warmup_steps: number; max_steps?: number }) {
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new TrainingInputError(message);
  };
  check(s.learning_rate >= 0, `learning_rate must be >= 0, got ${s.learning_rate}`);
  check(s.adam_beta1 >= 0 && s.adam_beta1 < 1 && s.adam_beta2 >= 0 && s.adam_beta2 < 1, 'adam_beta1 and adam_beta2 must be in [0, 1)');
  check(s.adam_epsilon > 0, `adam_epsilon must be > 0, got ${s.adam_epsilon}`);
  check(s.weight_decay >= 0, `weight_decay must be >= 0, got ${s.weight_decay}`);
  check(s.max_grad_norm === null || s.max_grad_norm > 0, `max_grad_norm must be > 0 or null, got ${s.max_grad_norm}`);
  check(SCHEDULER_TYPES.includes(s.lr_scheduler_type as SchedulerType), `lr_scheduler_type must be one of ${SCHEDULER_TYPES.join(', ')}, got '${s.lr_scheduler_type}'`);
  check(Number.isInteger(s.warmup_steps) && s.warmup_steps >= 0, `warmup_steps must be a whole number >= 0`);
  check(
    s.lr_scheduler_type === 'constant' || (s.max_steps !== undefined && Number.isInteger(s.max_steps) && s.max_steps > 0),
    `lr_scheduler_type '${s.lr_scheduler_type}' decays to the end of the run: give max_steps (or use 'constant')`,
  );
}
