import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type GPTNeoConfig, loadConfig } from '../model/config.js';
import { type Conversion, openConversion } from '../model/conversion-cache.js';
import { EmbeddingTable } from '../model/embeddings.js';
import { IO } from '../model/gpt-neo.js';
import { GraphBuilder } from '../onnx/graph.js';
import { MODEL_FILE, writeOnnxModel } from '../onnx/write.js';
import { OrtTensor, RuntimeSession } from '../runtime/session.js';
import { openCheckpoint, writeSafetensors } from '../weights/index.js';
import { ADAPTER_CONFIG_FILE, ADAPTER_WEIGHTS_FILE, adapterConfigJson, type LoraSettings } from '../weights/lora-adapter.js';
import { TrainingInputError } from './errors.js';
import { buildTrainingGraph, TRAIN_IO } from './graph.js';
import { adamWUpdate, learningRateFactor, type Moments, SCHEDULER_TYPES, type SchedulerType, zeroMoments } from './optimizer.js';
import { type TrainableTensor, type TrainingParameters, trainingParameters } from './parameters.js';
import { SeededRandom } from './random.js';

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
  lora?: { r: number; alpha: number; target_modules?: string[]; dropout?: number };
  /** What adapter_config.json names as the base model (a Hub id); default: the folder trained from. */
  base_model_name_or_path?: string;
  /** Seed of LoRA's initialisation and dropout. */
  seed?: number;
  threads?: number;
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

/** Bumped whenever the training graph changes, so stale cached graphs are never reused. */
const TRAINING_GRAPH_VERSION = 1;
/** PEFT's default for GPT-Neo. */
const DEFAULT_LORA_TARGETS = ['q_proj', 'v_proj'];
const HIDDEN = -3.4028234663852886e38;
const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'];

/**
 * Fine-tunes a GPT-Neo model: forward, backward (both one ONNX graph built from the model description),
 * gradient clipping and AdamW, as Hugging Face's Trainer does one optimizer step.
 */
export class Trainer {
  private readonly values = new Map<string, Float32Array>();
  private lastGradients = new Map<string, Float32Array>();
  private optimizer: OptimizerState = { step: 0, moments: new Map() };

  private constructor(
    readonly config: GPTNeoConfig,
    private readonly source: string,
    private readonly options: Required<Omit<TrainerOptions, 'lora' | 'max_steps' | 'threads' | 'seed'>> & Pick<TrainerOptions, 'max_steps'>,
    private readonly lora: LoraSettings | undefined,
    private readonly graphParameters: Pick<TrainingParameters, 'trainable' | 'dropoutMasks'>,
    private readonly seed: number,
    private readonly runtime: RuntimeSession,
    /** Frozen embeddings (LoRA) are read from the graph's weights file; trained ones from `values`. */
    private readonly frozenEmbeddings: EmbeddingTable | undefined,
    /** The training graph in the conversion cache, held until dispose() so no cache removal takes it. */
    private readonly conversion: Conversion,
  ) {}

  private get trainable(): TrainableTensor[] {
    return this.graphParameters.trainable;
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
    const lora = options.lora && {
      r: options.lora.r,
      alpha: options.lora.alpha,
      target_modules: options.lora.target_modules ?? DEFAULT_LORA_TARGETS,
      dropout: options.lora.dropout ?? 0,
    };
    if (lora && (!Number.isInteger(lora.r) || lora.r < 1 || !(lora.alpha > 0) || lora.target_modules.length === 0)) {
      throw new TrainingInputError(`LoRA needs r >= 1 (whole number), alpha > 0 and at least one target module`);
    }
    if (lora && !(lora.dropout >= 0 && lora.dropout < 1)) throw new TrainingInputError(`LoRA dropout must be in [0, 1), got ${lora.dropout}`);

    const config = await loadConfig(folder);
    const checkpoint = await openCheckpoint(folder);
    try {
      const g = new GraphBuilder();
      const params = trainingParameters(g, config, checkpoint, lora);
      // Full fine-tuning trains every parameter, the token embeddings included; LoRA freezes them.
      const embeddingsTrain = lora === undefined;
      buildTrainingGraph(g, config, params, embeddingsTrain);
      if (params.unmatchedTargets.length > 0) {
        throw new TrainingInputError(
          `LoRA target module(s) ${params.unmatchedTargets.map((t) => `'${t}'`).join(', ')} name no linear layer of the model ` +
            `(GPT-Neo has q_proj, k_proj, v_proj, out_proj, c_fc, c_proj)`,
        );
      }
      // Kept in the conversion cache like inference graphs (keyed by the weights' content, locked, listed by
      // `gpt-neo cache`): LoRA's frozen weights (5.3 GB for the 1.3B) are written once per checkpoint and adapter
      // layout, and a killed run leaves nothing behind that the next one trips over.
      const layout = lora ? `train-lora ${JSON.stringify({ ...lora, dropout: lora.dropout > 0 })}` : 'train-full';
      const conversion = await openConversion(
        { folder, weightFiles: checkpoint.files, key: { config, format: 'fp32', variant: layout, graphVersion: TRAINING_GRAPH_VERSION } },
        (target) => writeOnnxModel(g, target, 'Preparing the training graph'),
      );
      const modelPath = path.join(conversion.folder, MODEL_FILE);
      let runtime: RuntimeSession | undefined;
      let frozenEmbeddings: EmbeddingTable | undefined;
      try {
        // Frozen (LoRA) weights are read in place from the memory-mapped graph file, not repacked into a second copy.
        runtime = await RuntimeSession.create(modelPath, { threads: options.threads, prepackWeights: false });
        frozenEmbeddings = embeddingsTrain ? undefined : await EmbeddingTable.open(modelPath, IO.tokenEmbeddings);
      } catch (error) {
        await runtime?.release();
        await conversion.release();
        throw error;
      }
      const seed = options.seed ?? 42;
      const trainer = new Trainer(config, folder, settings, lora, params, seed, runtime, frozenEmbeddings, conversion);
      const random = new SeededRandom(seed);
      for (const tensor of params.trainable) {
        trainer.values.set(tensor.name, await initialValue(tensor, checkpoint, random));
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
      loss += (await this.accumulate(micro, gradients, microBatches.length, dropout)) / microBatches.length;
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
    return this.run(batch, 1, undefined, () => {});
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
      const config = adapterConfigJson(this.lora, this.options.base_model_name_or_path);
      await writeFile(path.join(outDir, ADAPTER_CONFIG_FILE), `${JSON.stringify(config, null, 2)}\n`);
      await writeSafetensors(path.join(outDir, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
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
    this.frozenEmbeddings?.close();
    await this.runtime.release();
    await this.conversion.release();
  }

  /** Adds one micro-batch's gradients (scaled for averaging over `parts` micro-batches) and returns its loss. */
  private async accumulate(batch: TrainingBatch, gradients: Map<string, Float32Array>, parts: number, dropout: SeededRandom): Promise<number> {
    return this.run(batch, parts, dropout, (outputs, ids) => {
      for (const { name } of this.trainable) {
        const part = outputs[TRAIN_IO.gradient(name)]!.data as Float32Array;
        const total = gradients.get(name);
        if (!total) gradients.set(name, part);
        else for (let i = 0; i < total.length; i++) total[i]! += part[i]!;
      }
      const embeddingsGradient = outputs[TRAIN_IO.gradient(IO.inputsEmbeds)]?.data as Float32Array | undefined;
      if (!embeddingsGradient) return;
      // The lookup's gradient goes to the rows of the looked-up tokens (the head's part is already in it).
      const wte = gradients.get(IO.tokenEmbeddings)!;
      const C = this.config.hidden_size;
      ids.forEach((id, row) => {
        for (let c = 0; c < C; c++) wte[id * C + c]! += embeddingsGradient[row * C + c]!;
      });
    });
  }

  private async run(
    batch: TrainingBatch,
    parts: number,
    /** Draws LoRA's dropout masks when training; undefined evaluates (no dropout). */
    dropout: SeededRandom | undefined,
    collect: (outputs: Record<string, OrtTensor>, ids: number[]) => void,
  ): Promise<number> {
    const { B, T } = checkBatch(batch, this.config);
    const { hidden_size: C, num_heads: H } = this.config;
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

    const feeds: Record<string, OrtTensor> = {
      [IO.inputsEmbeds]: new OrtTensor('float32', this.lookupEmbeddings(ids), [B, T, C]),
      [IO.positionIds]: new OrtTensor('int64', BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % T)), [B, T]),
      [IO.logitRows]: new OrtTensor('int64', BigInt64Array.from({ length: rows }, (_, i) => BigInt(i)), [rows]),
      [TRAIN_IO.targets]: new OrtTensor('int64', targets, [rows, 1]),
      [TRAIN_IO.targetWeights]: new OrtTensor('float32', weights, [rows, 1]),
    };
    // Training attends only to its own block, so the KV cache holds nothing; it is given one masked slot rather
    // than none because ONNX Runtime's FusedMatMul (the backward of q k^T) leaves its output uninitialised when
    // the inner dimension is 0. A masked slot has probability exactly 0, so it adds exactly 0 to every gradient.
    for (const kind of new Set(this.config.attention_layers)) {
      const window = kind === 'local' ? this.config.window_size : Infinity;
      feeds[IO.attentionBias(kind)] = new OrtTensor('float32', attentionBias(B, T, window), [B, 1, T, T + 1]);
    }
    const D = C / H;
    const emptySlot = new Float32Array(B * H * D);
    for (let layer = 0; layer < this.config.num_layers; layer++) {
      feeds[IO.cachedKeys(layer)] = new OrtTensor('float32', emptySlot, [B, H, D, 1]);
      feeds[IO.cachedValues(layer)] = new OrtTensor('float32', emptySlot, [B, H, 1, D]);
    }
    for (const { name, shape } of this.trainable) feeds[name] = new OrtTensor('float32', this.values.get(name)!, shape);
    const keep = 1 - (this.lora?.dropout ?? 0);
    for (const { name, features } of this.graphParameters.dropoutMasks) {
      const mask = new Float32Array(rows * features).fill(1);
      if (dropout) for (let i = 0; i < mask.length; i++) mask[i] = dropout.next() < keep ? 1 / keep : 0;
      feeds[name] = new OrtTensor('float32', mask, [rows, features]);
    }

    const outputs = await this.runtime.run(feeds);
    const targetLogProbabilities = outputs[TRAIN_IO.targetLogProbabilities]!.data as Float32Array;
    let loss = 0;
    for (let i = 0; i < rows; i++) if (weights[i]! > 0) loss -= targetLogProbabilities[i]! / scored;
    collect(outputs, ids);
    return loss;
  }

  private lookupEmbeddings(ids: number[]): Float32Array {
    if (this.frozenEmbeddings) return this.frozenEmbeddings.lookup(ids);
    const wte = this.values.get(IO.tokenEmbeddings)!;
    const C = this.config.hidden_size;
    const out = new Float32Array(ids.length * C);
    ids.forEach((id, row) => out.set(wte.subarray(id * C, (id + 1) * C), row * C));
    return out;
  }
}

/** HF's default decay exclusions: every bias and the LayerNorm weights (ln_1, ln_2, ln_f). */
function isBiasOrNorm(name: string): boolean {
  return name.endsWith('.bias') || /(^|\.)ln_(1|2|f)\./.test(name);
}

async function initialValue(tensor: TrainableTensor, checkpoint: Awaited<ReturnType<typeof openCheckpoint>>, random: SeededRandom) {
  const size = tensor.shape.reduce((a, b) => a * b, 1);
  if (tensor.init === 'checkpoint') return checkpoint.readFloat32(tensor.name);
  const values = new Float32Array(size);
  if (tensor.init === 'kaiming_uniform') {
    // PEFT: kaiming_uniform_(lora_A, a=sqrt(5)), bound = gain * sqrt(3 / fan_in) with gain sqrt(2 / (1 + a^2)) = 1 / sqrt(fan_in).
    const bound = 1 / Math.sqrt(tensor.shape[1]!);
    for (let i = 0; i < size; i++) values[i] = (random.next() * 2 - 1) * bound;
  }
  return values;
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
