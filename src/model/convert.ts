import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { GraphBuilder } from '../onnx/graph.js';
import { MODEL_FILE, writeOnnxModel } from '../onnx/write.js';
import { gptNeoCacheDir } from '../util/cache-dir.js';
import { openCheckpoint } from '../weights/index.js';
import { withLoraAdapter } from '../weights/lora-adapter.js';
import type { GPTNeoConfig } from './config.js';
import { buildGPTNeoGraph } from './gpt-neo.js';
import { checkpointParameters, type WeightFormat } from './parameters.js';

/** Bumped whenever the graph or weight layout changes, so stale conversions are never reused. */
const GRAPH_FORMAT_VERSION = 7;

/**
 * Returns the path of an ONNX model for (checkpoint, weight format), converting the checkpoint on first use.
 * The cache key covers the checkpoint's content, the config and the format, so an edited checkpoint or a
 * new graph version converts again. A LoRA adapter is merged into the weights it targets (its content is in the key).
 */
export async function prepareOnnxModel(folder: string, config: GPTNeoConfig, format: WeightFormat, adapter?: string): Promise<string> {
  const base = await openCheckpoint(folder);
  const checkpoint = adapter ? await withLoraAdapter(base, adapter).catch(async (error: unknown) => {
    await base.close();
    throw error;
  }) : base;
  try {
    const key = createHash('sha256')
      .update(JSON.stringify({ version: GRAPH_FORMAT_VERSION, format, weights: checkpoint.contentKey, config }))
      .digest('hex')
      .slice(0, 32);
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
