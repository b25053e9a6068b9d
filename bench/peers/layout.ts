// Where each peer's pieces sit in a peers folder (the layout the peers kit's setup writes), and what is missing.
// Nothing here is a dependency of this package: the bench only looks for these files and runs them.
import { existsSync } from 'node:fs';
import path from 'node:path';
import type { WeightFormat } from '../../src/index.js';

export type PeerName = 'llama.cpp' | 'transformers.js';

/** The GGUF type that reads what each of our formats reads per token. */
export const GGUF_TYPES: Record<WeightFormat, string> = { fp32: 'f32', q8: 'q8_0', q4: 'q4_0' };

/** transformers.js' file for each format in an Optimum-layout export (what its `dtype` option loads). */
export const TRANSFORMERSJS_FILES: Record<WeightFormat, string> = { fp32: 'model.onnx', q8: 'model_quantized.onnx', q4: 'model_q4.onnx' };

export interface PeerLayout {
  name: PeerName;
  /** The node_modules folder the peer's package is installed in. */
  nodeModules: string;
  /** What the peer's driver reads its weights from: the GGUFs' folder or the export's folder. */
  models: string;
  /** The model file of each format. */
  files: Record<WeightFormat, string>;
  /** Why the peer cannot run at all (its package or its model folder is missing), or undefined when it can. */
  absent: string | undefined;
  /** Why each format cannot run (its file is missing), or undefined when it can. */
  missing: Record<WeightFormat, string | undefined>;
}

/** Each peer's pieces in `folder`, and what of them is missing for `formats`. */
export function peerLayouts(folder: string, formats: readonly WeightFormat[]): PeerLayout[] {
  return [llamaCppLayout(folder, formats), transformersJsLayout(folder, formats)];
}

function llamaCppLayout(folder: string, formats: readonly WeightFormat[]): PeerLayout {
  const nodeModules = path.join(folder, 'nlc', 'node_modules');
  const models = path.join(folder, 'gguf');
  const files = perFormat((format) => path.join(models, `gpt2-1.3b-${GGUF_TYPES[format]}.gguf`));
  const absent = missingPackage(nodeModules, 'node-llama-cpp', '3.21.1');
  return withMissing({ name: 'llama.cpp', nodeModules, models, files, absent }, formats);
}

function transformersJsLayout(folder: string, formats: readonly WeightFormat[]): PeerLayout {
  const nodeModules = path.join(folder, 'tjs', 'node_modules');
  const models = path.join(folder, 'tjs-neo13b');
  const files = perFormat((format) => path.join(models, 'onnx', TRANSFORMERSJS_FILES[format]));
  const config = path.join(models, 'config.json');
  const absent =
    missingPackage(nodeModules, '@huggingface/transformers', '4.3.1') ??
    (existsSync(config) ? undefined : `${config} is missing (the peers kit's setup exports GPT-Neo 1.3B there in Optimum's layout)`);
  return withMissing({ name: 'transformers.js', nodeModules, models, files, absent }, formats);
}

/** A peer lacking every format asked for is absent as a whole, with each file named. */
function withMissing(layout: Omit<PeerLayout, 'missing'>, formats: readonly WeightFormat[]): PeerLayout {
  const missing = perFormat((format) => missingFile(layout.files[format]));
  const absent = layout.absent ?? (formats.every((format) => missing[format] !== undefined) ? formats.map((format) => missing[format]).join('; ') : undefined);
  return { ...layout, absent, missing };
}

function missingPackage(nodeModules: string, name: string, version: string): string | undefined {
  const folder = path.join(nodeModules, name);
  return existsSync(path.join(folder, 'package.json'))
    ? undefined
    : `${folder} is not installed (the peers kit's setup installs ${name} ${version} there)`;
}

function missingFile(file: string): string | undefined {
  if (existsSync(file)) return undefined;
  // The kit writes each large file under a temporary name and renames it when done.
  if (existsSync(`${file}.tmp`)) return `${file} is still being written (${path.basename(file)}.tmp)`;
  return `${file} is missing (the peers kit's setup writes it)`;
}

function perFormat<T>(value: (format: WeightFormat) => T): Record<WeightFormat, T> {
  return { fp32: value('fp32'), q8: value('q8'), q4: value('q4') };
}
