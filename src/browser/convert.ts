/// <reference lib="dom" />
import { type GPTNeoConfig, loadConfig } from '../model/config.js';
import { locateExternalMatrix } from '../convert/embeddings.js';
import { buildGPTNeoGraph, GRAPH_FORMAT_VERSION, type GraphOptions, IO } from '../model/gpt-neo.js';
import { checkpointParameters, type WeightFormat } from '../convert/parameters.js';
import { GraphBuilder } from '../onnx/graph.js';
import { serializeOnnxModel, weightsFileSize } from '../onnx/write.js';
import { baseName, type ModelFiles } from '../util/model-files.js';
import { type Checkpoint, openCheckpointFiles } from '../weights/index.js';
import { type ConvertedModelStore, opfsModelStore } from './storage.js';

/** The graph's op forms for onnxruntime-web, whose conversions run on WebAssembly and WebGPU alike (part of the storage key). */
export const BROWSER_GRAPH: GraphOptions = { elementwiseGelu: true };

/**
 * WebAssembly is 32-bit: one module addresses at most 4 GiB, and ONNX Runtime copies the weights into it.
 * What is left above this limit holds the runtime, the activations and the KV cache.
 */
export const WASM_WEIGHTS_LIMIT = 3.5 * 2 ** 30;

export interface ConvertedModel {
  config: GPTNeoConfig;
  /** The ONNX graph, referring to `weights` as its external data file. */
  model: Uint8Array;
  weights: Uint8Array;
  /** Where the float32 token embedding table lies in `weights`. */
  embeddings: { offset: number; rows: number; width: number };
  /** True when the conversion came from the browser's storage, not from the checkpoint. */
  fromCache: boolean;
}

/** 'downloading' counts checkpoint bytes received (total unknown: 0), the others bytes of the converted weights. */
export type ConversionStage = 'downloading' | 'converting' | 'loading-cached';

export type ConversionProgress = (stage: ConversionStage, doneBytes: number, totalBytes: number) => void;

/**
 * The browser's counterpart of prepareOnnxModel: the same graph builder and weight conversion, with the
 * result kept in the browser's storage under the key the Node conversion cache uses.
 */
export async function convertCheckpoint(
  files: ModelFiles,
  format: WeightFormat,
  onProgress: ConversionProgress = () => {},
  store: ConvertedModelStore | undefined = opfsModelStore(),
): Promise<ConvertedModel> {
  const config = await loadConfig(files);
  const checkpoint = await openCheckpointFiles(files);
  try {
    const entry = `${baseName(files.location)}-${format}-${await storageKey(checkpoint, config, format)}`;
    const cached = await store?.read(entry, (done, total) => onProgress('loading-cached', done, total));
    if (cached) return { config, ...cached, embeddings: embeddingsIn(cached.model, entry), fromCache: true };

    const graph = new GraphBuilder();
    buildGPTNeoGraph(graph, config, checkpointParameters(graph, checkpoint, config, format, files.location), 'causal-lm', BROWSER_GRAPH);
    const size = weightsFileSize(graph);
    if (size > WASM_WEIGHTS_LIMIT) {
      throw new Error(
        `${files.location} in ${format} has ${(size / 1e9).toFixed(2)} GB of weights, more than a browser can hold: ` +
          `WebAssembly (wasm32) addresses 4 GB, ${(WASM_WEIGHTS_LIMIT / 1e9).toFixed(2)} GB of it for weights. ` +
          `Use dtype 'q8' or 'q4'${format === 'q4' ? ' with a smaller model' : ''}.`,
      );
    }
    const weights = new Uint8Array(size);
    const model = await serializeOnnxModel(
      graph,
      async (bytes, offset) => weights.set(bytes, offset),
      (done) => onProgress('converting', done, size),
    );
    await store?.write(entry, model, weights);
    return { config, model, weights, embeddings: embeddingsIn(model, entry), fromCache: false };
  } finally {
    await checkpoint.close();
  }
}

function embeddingsIn(model: Uint8Array, source: string) {
  const { offset, rows, width } = locateExternalMatrix(model, IO.tokenEmbeddings, source);
  return { offset, rows, width };
}

/**
 * The browser's storage key: the config, the format, the graph version and every tensor's name, dtype and
 * shape. Unlike the Node cache, which hashes the weights' bytes, it does not read the weights (a cached load
 * would otherwise download them all again), so two checkpoints of the same shapes at the same location share
 * an entry.
 */
async function storageKey(checkpoint: Checkpoint, config: GPTNeoConfig, format: WeightFormat): Promise<string> {
  const tensors = [...checkpoint.tensors.values()].map(({ name, dtype, shape }) => [name, dtype, shape]);
  const text = JSON.stringify({ version: GRAPH_FORMAT_VERSION, graph: BROWSER_GRAPH, format, config, tensors });
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest).slice(0, 16)].map((byte) => byte.toString(16).padStart(2, '0')).join('');
}
