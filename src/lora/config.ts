// PEFT's LoraConfig: what a LoRA adapter is (rank, alpha, which modules, dropout) and how adapter_config.json
// spells it. Pure data: reading and writing the file is adapter-files.ts, the maths layer.ts.
import { CheckpointError } from '../weights/errors.js';

/** A LoRA adapter as the trainer is asked for one (the Trainer's `lora` option). */
export interface LoraOptions {
  r: number;
  alpha: number;
  target_modules?: string[];
  dropout?: number;
}

/** LoraOptions with PEFT's defaults filled in. */
export interface LoraConfig {
  r: number;
  alpha: number;
  /** Module names or name suffixes (PEFT: a module matches when its name equals the target or ends with '.' + target). */
  target_modules: string[];
  /** Dropout on the adapter's input while training (PEFT's lora_dropout). */
  dropout: number;
}

/** PEFT's default target modules for GPT-Neo (its TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
export const DEFAULT_TARGET_MODULES: readonly string[] = ['q_proj', 'v_proj'];

export function loraConfig(options: LoraOptions): LoraConfig {
  return {
    r: options.r,
    alpha: options.alpha,
    target_modules: options.target_modules ?? [...DEFAULT_TARGET_MODULES],
    dropout: options.dropout ?? 0,
  };
}

/** What is wrong with a config, in a sentence for the user; undefined when it is valid. */
export function loraConfigProblem(config: LoraConfig): string | undefined {
  if (!Number.isInteger(config.r) || config.r < 1 || !(config.alpha > 0) || config.target_modules.length === 0) {
    return `LoRA needs r >= 1 (whole number), alpha > 0 and at least one target module`;
  }
  if (!(config.dropout >= 0 && config.dropout < 1)) return `LoRA dropout must be in [0, 1), got ${config.dropout}`;
  return undefined;
}

/** adapter_config.json as PEFT writes it for a LoRA adapter (inference_mode true, as after save_pretrained). */
export function adapterConfigJson(config: LoraConfig, baseModel: string): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: config.r,
    lora_alpha: config.alpha,
    lora_dropout: config.dropout,
    target_modules: config.target_modules,
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    layers_to_transform: null,
    layers_pattern: null,
    rank_pattern: {},
    alpha_pattern: {},
    use_rslora: false,
    use_dora: false,
    revision: null,
  };
}

/** What merging an adapter needs from its adapter_config.json. */
export interface AdapterScaling {
  r: number;
  alpha: number;
  useRslora: boolean;
}

/** Reads a parsed adapter_config.json, refusing what merging cannot reproduce (DoRA, per-module ranks, ...). */
export function parseAdapterConfig(config: Record<string, unknown>, configFile: string): AdapterScaling {
  if (config.peft_type !== 'LORA') throw new CheckpointError(`${configFile}: peft_type is '${String(config.peft_type)}', only LORA is supported`);
  if (config.use_dora) throw new CheckpointError(`${configFile}: DoRA adapters (use_dora) are not supported`);
  if (config.fan_in_fan_out) throw new CheckpointError(`${configFile}: fan_in_fan_out adapters are not supported (GPT-Neo uses nn.Linear)`);
  const r = config.r;
  const alpha = config.lora_alpha;
  if (typeof r !== 'number' || !(r > 0) || typeof alpha !== 'number') {
    throw new CheckpointError(`${configFile}: 'r' and 'lora_alpha' must be numbers (r > 0)`);
  }
  if (Object.keys((config.rank_pattern as object | undefined) ?? {}).length || Object.keys((config.alpha_pattern as object | undefined) ?? {}).length) {
    throw new CheckpointError(`${configFile}: rank_pattern / alpha_pattern are not supported`);
  }
  return { r, alpha, useRslora: Boolean(config.use_rslora) };
}
