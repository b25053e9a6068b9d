/// <reference lib="dom" />
import type { InferenceRunner } from '../runtime/tensor.js';
import { SplitRunner } from '../runtime/split-runner.js';
import { splitGraph } from '../onnx/split.js';
import { WEIGHTS_FILE } from '../onnx/write.js';
import { KERNEL_OPS, QuantizedProducts } from './kernels/products.js';

/** Where the model runs: WebAssembly on the CPU, or WebGPU where the browser has it ('auto' picks WebGPU then). */
export type BrowserDevice = 'wasm' | 'webgpu' | 'auto';

export interface BrowserRuntimeOptions {
  device?: BrowserDevice;
  /**
   * WebAssembly threads. Threads need a cross-origin isolated page (COOP/COEP headers, as `gpt-neo demo`
   * sends); elsewhere ONNX Runtime runs on one. Default: see defaultThreads.
   */
  threads?: number;
}

/**
 * The folder holding ONNX Runtime's WebAssembly files (copied next to this bundle by the browser build);
 * the runtime loads them on first use.
 */
const ORT_FILES = new URL('./ort/', import.meta.url).href;

/** The project's 4-bit kernel (built from kernels/ at install) and its helper threads' script, beside the bundle. */
const KERNEL_FILES = new URL('./kernels/', import.meta.url).href;
const KERNEL_THREAD = new URL('./kernel-thread.js', import.meta.url).href;

export function webGpuAvailable(): boolean {
  return typeof navigator !== 'undefined' && 'gpu' in navigator;
}

/**
 * onnxruntime-web's build for the device. The WebGPU one (JSEP) is compiled with asyncify, which instruments
 * the WebAssembly so kernels can wait on the GPU, and costs time on the CPU; the plain WebAssembly build is
 * loaded unless WebGPU is asked for (see docs/browser.md, Speed). Each is a chunk of its own, fetched on first use.
 */
function onnxRuntimeFor(device: 'wasm' | 'webgpu') {
  return device === 'webgpu' ? import('onnxruntime-web') : import('onnxruntime-web/wasm');
}

/** An onnxruntime-web session over a converted model: the graph and its weights file as bytes. */
export async function createBrowserSession(
  model: Uint8Array,
  weights: Uint8Array,
  options: BrowserRuntimeOptions = {},
): Promise<{ runner: InferenceRunner; device: 'wasm' | 'webgpu'; threads: number }> {
  const device = options.device === 'auto' ? (webGpuAvailable() ? 'webgpu' : 'wasm') : (options.device ?? 'wasm');
  if (device === 'webgpu' && !webGpuAvailable()) {
    throw new Error("device 'webgpu' was asked for, but this browser has no WebGPU (navigator.gpu); use device 'wasm'");
  }
  const isolated = typeof crossOriginIsolated !== 'undefined' && crossOriginIsolated;
  const cores = typeof navigator !== 'undefined' ? navigator.hardwareConcurrency || 1 : 1;
  const threads = isolated ? (options.threads ?? defaultThreads(cores, weights.byteLength)) : 1;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`threads must be a positive integer, got ${options.threads}`);
  const ort = await onnxRuntimeFor(device);
  // On WebAssembly, the graph is split around the products the page runs on its own kernel (q4's and q8's).
  const split = device === 'wasm' ? splitGraph(model, (node) => KERNEL_OPS.has(node.opType ?? '')) : undefined;
  const ownKernel = split !== undefined && split.cuts > 0;
  ort.env.wasm.wasmPaths = ORT_FILES;
  // With the page's own kernel, the products (nearly all of a step) run on its threads; what ONNX Runtime runs
  // between them is small, and its pool's threads would only spin beside the kernel's.
  ort.env.wasm.numThreads = ownKernel ? 1 : threads;
  ort.env.logLevel = 'error';
  const open = (graph: Uint8Array) =>
    ort.InferenceSession.create(graph, {
      // Nodes WebGPU has no kernel for (the int8 products of q8, float64 reductions) fall back to WebAssembly.
      executionProviders: device === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'],
      graphOptimizationLevel: 'all',
      externalData: [{ path: WEIGHTS_FILE, data: weights }],
      logSeverityLevel: 3,
    });
  if (ownKernel) {
    const startHelper = () => new Worker(KERNEL_THREAD, { type: 'module', name: 'gpt-neo kernel' });
    const kernel = await QuantizedProducts.create(
      weights,
      threads > 1
        ? { wasm: await fetchBytes(`${KERNEL_FILES}linear-shared.wasm`), threads, startHelper }
        : { wasm: await fetchBytes(`${KERNEL_FILES}linear.wasm`), threads: 1 },
    );
    return { runner: await SplitRunner.open(split, open, kernel), device, threads };
  }
  const session = await open(model);
  return {
    runner: { run: (feeds) => session.run(feeds), release: () => session.release(), zeroSizedTensors: device !== 'webgpu' },
    device,
    threads,
  };
}

async function fetchBytes(url: string): Promise<Uint8Array> {
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url}: HTTP ${response.status} (the page's kernel for quantized products)`);
  return new Uint8Array(await response.arrayBuffer());
}

/** Weights from which a step's products outweigh what extra threads cost the page (measured, docs/browser.md). */
const MANY_THREADS_WEIGHT_BYTES = 1e9;

/**
 * Threads when the caller names none (WebAssembly threads need a cross-origin isolated page): at most 4, and all
 * the cores only for large weights. The page's calling thread cannot block while the pool works, so it spins
 * beside the browser's own threads: on 2 cores the 125M (0.2 to 0.5 GB of weights) decoded 1.5 to 1.9 times slower
 * on 2 threads than on 1, the 1.3B in q8 (1.6 GB) 1.6 times faster. Small models get half the cores, as
 * onnxruntime-web's own default.
 */
export function defaultThreads(cores: number, weightBytes = 0): number {
  return Math.min(4, weightBytes >= MANY_THREADS_WEIGHT_BYTES ? cores : Math.ceil(cores / 2));
}
