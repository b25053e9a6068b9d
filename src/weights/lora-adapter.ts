// LoRA adapters in PEFT's on-disk format: adapter_config.json + adapter_model.safetensors, tensors named
// base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r]. A linear layer with an adapter
// computes W x + b + scaling B A x, scaling = lora_alpha / r (lora_alpha / sqrt(r) with use_rslora).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from './errors.js';
import { openSafetensors } from './safetensors.js';
import type { Checkpoint } from './types.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

export interface LoraSettings {
  r: number;
  alpha: number;
  /** Module names or name suffixes (PEFT: a module matches when its name equals the target or ends with '.' + target). */
  target_modules: string[];
  /** Dropout on the adapter's input while training (PEFT's lora_dropout). */
  dropout: number;
}

/** PEFT's tensor name for a module's A or B matrix (the adapter name 'default' is left out, as PEFT saves it). */
export function loraTensorName(module: string, matrix: 'A' | 'B'): string {
  return `base_model.model.${module}.lora_${matrix}.weight`;
}

export function matchesTarget(module: string, target: string): boolean {
  return module === target || module.endsWith(`.${target}`);
}

/** adapter_config.json as PEFT writes it for a LoRA adapter (inference_mode true, as after save_pretrained). */
export function adapterConfigJson(settings: LoraSettings, baseModel: string): Record<string, unknown> {
  return {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: baseModel,
    r: settings.r,
    lora_alpha: settings.alpha,
    lora_dropout: settings.dropout,
    target_modules: settings.target_modules,
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

interface LoadedAdapter {
  scaling: number;
  /** Base weight name -> its adapter's [A, B]. */
  modules: Map<string, { a: Float32Array; b: Float32Array; r: number }>;
}

async function readAdapter(folder: string): Promise<LoadedAdapter> {
  const configFile = path.join(folder, ADAPTER_CONFIG_FILE);
  let config: Record<string, unknown>;
  try {
    config = JSON.parse(await readFile(configFile, 'utf8')) as Record<string, unknown>;
  } catch (error) {
    throw new CheckpointError(`${configFile}: cannot read the adapter config (${(error as Error).message})`);
  }
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
  const scaling = config.use_rslora ? alpha / Math.sqrt(r) : alpha / r;

  const weightsFile = path.join(folder, ADAPTER_WEIGHTS_FILE);
  const file = await openSafetensors(weightsFile);
  try {
    const modules = new Map<string, { a: Float32Array; b: Float32Array; r: number }>();
    for (const name of file.tensors.keys()) {
      const match = /^base_model\.model\.(.+)\.lora_A\.weight$/.exec(name);
      if (!match) {
        if (!/\.lora_B\.weight$/.test(name)) throw new CheckpointError(`${weightsFile}: unexpected tensor '${name}' in a LoRA adapter`);
        continue;
      }
      const module = match[1]!;
      const bName = loraTensorName(module, 'B');
      if (!file.tensors.has(bName)) throw new CheckpointError(`${weightsFile}: '${name}' has no matching '${bName}'`);
      const rank = file.tensors.get(name)!.shape[0]!;
      modules.set(`${module}.weight`, { a: await file.readFloat32(name), b: await file.readFloat32(bName), r: rank });
    }
    if (modules.size === 0) throw new CheckpointError(`${weightsFile}: no lora_A / lora_B tensors`);
    return { scaling, modules };
  } finally {
    await file.close();
  }
}

/**
 * The base checkpoint with a PEFT LoRA adapter merged into its weights (W + scaling B A, computed in float64
 * and rounded once), as PEFT's merge_and_unload does. Any base dtype works: weights are read as float32.
 */
export async function withLoraAdapter(base: Checkpoint, adapterFolder: string): Promise<Checkpoint> {
  const adapter = await readAdapter(adapterFolder);
  for (const [weight, { a, b, r }] of adapter.modules) {
    const info = base.tensors.get(weight);
    if (!info) throw new CheckpointError(`${adapterFolder}: the adapter targets '${weight}', which the base model does not have`);
    const [out, inFeatures] = info.shape as [number, number];
    if (a.length !== r * inFeatures || b.length !== out * r) {
      throw new CheckpointError(`${adapterFolder}: adapter shapes for '${weight}' do not fit its [${out}, ${inFeatures}] weight`);
    }
  }
  return {
    tensors: base.tensors,
    // The adapter's files count as weights, so the conversion cache keys the merged model by them too.
    files: [...base.files, path.join(adapterFolder, ADAPTER_CONFIG_FILE), path.join(adapterFolder, ADAPTER_WEIGHTS_FILE)],
    close: () => base.close(),
    async readFloat32(name) {
      const weight = await base.readFloat32(name);
      const lora = adapter.modules.get(name);
      if (!lora) return weight;
      const { a, b, r } = lora;
      const inFeatures = a.length / r;
      const row = new Float64Array(inFeatures);
      for (let o = 0; o < weight.length / inFeatures; o++) {
        row.fill(0);
        for (let k = 0; k < r; k++) {
          const coefficient = b[o * r + k]!;
          for (let i = 0; i < inFeatures; i++) row[i]! += coefficient * a[k * inFeatures + i]!;
        }
        for (let i = 0; i < inFeatures; i++) weight[o * inFeatures + i]! += adapter.scaling * row[i]!;
      }
      return weight;
    },
  };
}
