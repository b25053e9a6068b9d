/// <reference lib="dom" />
import type { TokenEmbeddings } from '../model/types.js';
import { GPTNeoForCausalLM } from '../modeling/causal-lm.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../convert/parameters.js';
import type { ConversionStage, ConvertedModel } from './convert.js';
import type { ModelSource } from './files.js';
import { type BrowserRuntimeOptions, createBrowserSession } from './runtime.js';
import type { ConversionMessage, ConversionRequest } from './worker.js';

export type LoadStage = ConversionStage | 'starting-runtime';

export interface BrowserModelOptions extends BrowserRuntimeOptions {
  /** Weight format, as in Node: 'fp32' (default), 'q8' or 'q4'. */
  dtype?: WeightFormat;
  /** Download, conversion and start-up progress: bytes done of total (0 when the total is not known yet). */
  onProgress?: (stage: LoadStage, done: number, total: number) => void;
}

/** A loaded model, with where it runs. */
export interface BrowserModel {
  model: GPTNeoForCausalLM;
  device: 'wasm' | 'webgpu';
  threads: number;
  /** The conversion came from the browser's storage. */
  fromCache: boolean;
}

/** Converts (in a worker) and loads a model for onnxruntime-web; the model code is the one Node runs. */
export async function loadBrowserModel(source: ModelSource, options: BrowserModelOptions = {}): Promise<BrowserModel> {
  const dtype = options.dtype ?? 'fp32';
  if (!WEIGHT_FORMATS.includes(dtype)) {
    throw new Error(`dtype '${dtype}' is not supported (choose one of ${WEIGHT_FORMATS.join(', ')})`);
  }
  // The worker resolves URLs against its own script, so a URL relative to the page is made absolute here.
  const absolute = 'url' in source ? { ...source, url: new URL(source.url, location.href).href } : source;
  const converted = await convertInWorker({ source: absolute, dtype }, options.onProgress);
  options.onProgress?.('starting-runtime', 0, 0);
  const { runner, device, threads } = await createBrowserSession(converted.model, converted.weights, options);
  const model = GPTNeoForCausalLM.fromRuntime(converted.config, dtype, runner, tableOf(converted));
  return { model, device, threads, fromCache: converted.fromCache };
}

function convertInWorker(request: ConversionRequest, onProgress: BrowserModelOptions['onProgress']): Promise<ConvertedModel> {
  const worker = new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'gpt-neo conversion' });
  return new Promise<ConvertedModel>((resolve, reject) => {
    worker.onmessage = ({ data }: MessageEvent<ConversionMessage>) => {
      if (data.kind === 'progress') return onProgress?.(data.stage, data.done, data.total);
      worker.terminate();
      if (data.kind === 'done') resolve(data.result);
      else reject(new Error(data.message));
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(`the conversion worker failed: ${event.message || 'it could not be started'}`));
    };
    worker.postMessage(request);
  });
}

/**
 * The token embeddings, copied out of the weights: ONNX Runtime holds its own copy of the weights inside
 * WebAssembly memory, so the page keeps only this table.
 */
function tableOf({ weights, embeddings: { offset, rows, width } }: ConvertedModel): TokenEmbeddings {
  const table = new Float32Array(weights.buffer.slice(weights.byteOffset + offset, weights.byteOffset + offset + rows * width * 4));
  return {
    lookup(ids) {
      const out = new Float32Array(ids.length * width);
      for (let i = 0; i < ids.length; i++) out.set(table.subarray(ids[i]! * width, (ids[i]! + 1) * width), i * width);
      return out;
    },
    close() {},
  };
}
