import { type LoraConfig, loraConfig, loraConfigProblem, type LoraOptions } from '../lora/index.js';
import { TrainingInputError } from './errors.js';
import { SCHEDULER_TYPES, type SchedulerType } from './optimizer.js';

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

/** TrainerOptions with every default filled in and checked. */
export interface TrainerSettings {
  learning_rate: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  weight_decay: number;
  decay_biases_and_norms: boolean;
  max_grad_norm: number | null;
  lr_scheduler_type: SchedulerType;
  warmup_steps: number;
  max_steps?: number;
  base_model_name_or_path: string;
  lora?: LoraConfig;
  seed: number;
  threads?: number;
  /** Left to lossChunkRows when not given: its default depends on the model's vocabulary. */
  loss_chunk_rows?: number;
}

/**
 * The loss runs over the rows of a batch in chunks of at most this many logits (256 MB of float32) by default,
 * so a few [rows, vocab] tensors of one chunk are alive instead of the whole batch's (0.4 GB each for 2,048
 * rows: two chunks of 1,024). Measured on the 125M shape (block 512 x batch 4): chunks of 333 rows made steps
 * 20% slower than chunks of 1,024 (the head's products are thin and each chunk returns a 154 MB gradient) for
 * 0.13 GB less peak RSS; one chunk of 2,048 rows held 0.5 GB more and was no faster.
 */
const LOSS_CHUNK_LOGITS = 1 << 26;

/** The options with Hugging Face's defaults, refused with a TrainingInputError before anything is loaded. */
export function trainerSettings(folder: string, options: TrainerOptions): TrainerSettings {
  const settings: TrainerSettings = {
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
    lora: options.lora && loraConfig(options.lora),
    seed: options.seed ?? 42,
    threads: options.threads,
    loss_chunk_rows: options.loss_chunk_rows,
  };
  validateSettings(settings);
  return settings;
}

/** Rows of logits per chunk of the loss: the option, else as many as LOSS_CHUNK_LOGITS holds. */
export function lossChunkRows(settings: TrainerSettings, vocabSize: number): number {
  return settings.loss_chunk_rows ?? Math.max(1, Math.floor(LOSS_CHUNK_LOGITS / vocabSize));
}

function validateSettings(s: TrainerSettings): void {
  const check = (ok: boolean, message: string) => {
    if (!ok) throw new TrainingInputError(message);
  };
  check(s.learning_rate >= 0, `learning_rate must be >= 0, got ${s.learning_rate}`);
  check(s.adam_beta1 >= 0 && s.adam_beta1 < 1 && s.adam_beta2 >= 0 && s.adam_beta2 < 1, 'adam_beta1 and adam_beta2 must be in [0, 1)');
  check(s.adam_epsilon > 0, `adam_epsilon must be > 0, got ${s.adam_epsilon}`);
  check(s.weight_decay >= 0, `weight_decay must be >= 0, got ${s.weight_decay}`);
  check(s.max_grad_norm === null || s.max_grad_norm > 0, `max_grad_norm must be > 0 or null, got ${s.max_grad_norm}`);
  check(SCHEDULER_TYPES.includes(s.lr_scheduler_type), `lr_scheduler_type must be one of ${SCHEDULER_TYPES.join(', ')}, got '${s.lr_scheduler_type}'`);
  check(Number.isInteger(s.warmup_steps) && s.warmup_steps >= 0, `warmup_steps must be a whole number >= 0`);
  check(
    s.lr_scheduler_type === 'constant' || (s.max_steps !== undefined && Number.isInteger(s.max_steps) && s.max_steps > 0),
    `lr_scheduler_type '${s.lr_scheduler_type}' decays to the end of the run: give max_steps (or use 'constant')`,
  );
  const loraProblem = s.lora && loraConfigProblem(s.lora);
  if (loraProblem) throw new TrainingInputError(loraProblem);
  const chunkRows = s.loss_chunk_rows;
  check(chunkRows === undefined || (Number.isInteger(chunkRows) && chunkRows >= 1), `loss_chunk_rows must be a whole number >= 1, got ${chunkRows}`);
}
