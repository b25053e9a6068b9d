/// <reference lib="dom" />
import type { InferenceRunner } from '../runtime/tensor.js';
import { WEIGHTS_FILE } from '../onnx/write.js';

/** Where the model runs: WebAssembly on the CPU, or WebGPU where the browser has it ('auto' picks WebGPU then). */
export type BrowserDevice = 'wasm' | 'webgpu' | 'auto';

export interface BrowserRuntimeOptions {
  device?: BrowserDevice;
  /**
   * WebAssembly threads. Threads need a cross-origin isolated page (COOP/COEP headers, as `gpt-neo demo`
   * sends); elsewhere ONNX Runtime runs on one. Default: half the cores, at most 4 (onnxruntime-web's own
   * rule). The page's calling thread cannot block while the pool works, so it spins beside the browser's own
   * threads: on 2 cores, 2 threads decoded the 125M 1.5 to 1.9 times slower than 1 (docs/browser.md).
   */
  threads?: number;
}

/**
 * The folder holding ONNX Runtime's WebAssembly files (copied next to this bundle by the browser build);
 * the runtime loads them on first use.
 */
const ORT_FILES = new URL('./ort/', import.meta.url).href;

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
  const threads = isolated ? (options.threads ?? defaultThreads(cores)) : 1;
  if (!Number.isInteger(threads) || threads < 1) throw new Error(`threads must be a positive integer, got ${options.threads}`);
  const ort = await onnxRuntimeFor(device);
  ort.env.wasm.wasmPaths = ORT_FILES;
  ort.env.wasm.numThreads = threads;
  ort.env.logLevel = 'error';
  const session = await ort.InferenceSession.create(model, {
    // Nodes WebGPU has no kernel for (the int8 products of q8, float64 reductions) fall back to WebAssembly.
    executionProviders: device === 'webgpu' ? ['webgpu', 'wasm'] : ['wasm'],
    graphOptimizationLevel: 'all',
    externalData: [{ path: WEIGHTS_FILE, data: weights }],
    logSeverityLevel: 3,
  });
  return {
    runner: { run: (feeds) => session.run(feeds), release: () => session.release(), zeroSizedTensors: device !== 'webgpu' },
    device,
    threads,
  };
}

/** Threads when the caller names none (WebAssembly threads need a cross-origin isolated page). */
export function defaultThreads(cores: number): number {
  return Math.min(4, Math.ceil(cores / 2));
}
