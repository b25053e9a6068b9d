import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GraphBuilder } from '../onnx/graph.js';
import { MODEL_FILE, writeOnnxModel } from '../onnx/write.js';
import { gptNeoCacheDir } from '../util/cache-dir.js';
import { type Checkpoint, openCheckpoint } from '../weights/index.js';
import type { GPTNeoConfig } from './config.js';
import { buildGPTNeoGraph } from './gpt-neo.js';
import { checkpointParameters, type WeightFormat } from './parameters.js';

/** Bumped whenever the graph or weight layout changes, so stale conversions are never reused. */
const GRAPH_FORMAT_VERSION = 7;

/**
 * Returns the path of an ONNX model for (checkpoint, weight format), converting the checkpoint on first use.
 * The cache key covers the checkpoint's content, the config and the format, so an edited checkpoint or a
 * new graph version converts again.
 */
/** The key a conversion is cached under, here and in the browser build's storage. */
export function conversionKey(checkpoint: Checkpoint, config: GPTNeoConfig, format: WeightFormat): string {
  const key = JSON.stringify({ version: GRAPH_FORMAT_VERSION, format, weights: checkpoint.contentKey, config });
  return bytesToHex(sha256(new TextEncoder().encode(key))).slice(0, 32);
}

export async function prepareOnnxModel(folder: string, config: GPTNeoConfig, format: WeightFormat): Promise<string> {
  const checkpoint = await openCheckpoint(folder);
  try {
    const key = conversionKey(checkpoint, config, format);
    const target = path.join(gptNeoCacheDir('onnx'), `${path.basename(path.resolve(folder))}-${format}-${key}`);
    const modelPath = path.join(target, MODEL_FILE);
    if (existsSync(modelPath)) return modelPath;

    const graph = new GraphBuilder();
    buildGPTNeoGraph(graph, config, checkpointParameters(graph, checkpoint, config, format, folder));
    await writeOnnxModel(graph, target, `Converting ${path.basename(folder)} to ${format}`);
    return modelPath;
  } finally {
    await checkpoint.close();
  }
}
