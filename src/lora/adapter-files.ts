// A LoRA adapter on disk in PEFT's format: adapter_config.json + adapter_model.safetensors, tensors named
// base_model.model.<module>.lora_A.weight [r, in] and .lora_B.weight [out, r].
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { CheckpointError } from '../weights/errors.js';
import { openSafetensors } from '../weights/safetensors.js';
import { type TensorToWrite, writeSafetensors } from '../weights/safetensors-writer.js';
import type { Checkpoint } from '../weights/types.js';
import { adapterConfigJson, type LoraConfig, parseAdapterConfig } from './config.js';
import { loraScaling, loraTensorName, mergeLoraIntoWeight } from './layer.js';

export const ADAPTER_CONFIG_FILE = 'adapter_config.json';
export const ADAPTER_WEIGHTS_FILE = 'adapter_model.safetensors';

/** Writes an adapter as PEFT's save_pretrained does; `tensors` carry PEFT's names (loraTensorName). */
export async function writeAdapter(folder: string, config: LoraConfig, baseModel: string, tensors: TensorToWrite[]): Promise<void> {
  await writeFile(path.join(folder, ADAPTER_CONFIG_FILE), `${JSON.stringify(adapterConfigJson(config, baseModel), null, 2)}\n`);
  await writeSafetensors(path.join(folder, ADAPTER_WEIGHTS_FILE), tensors, { format: 'pt' });
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
  const { r, alpha, useRslora } = parseAdapterConfig(config, configFile);
  const scaling = loraScaling(r, alpha, useRslora);

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
 * The base checkpoint with a PEFT LoRA adapter merged into its weights, as PEFT's merge_and_unload does. Any
 * base dtype works: weights are read as float32.
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
      if (lora) mergeLoraIntoWeight(weight, lora, adapter.scaling);
      return weight;
    },
  };
}
