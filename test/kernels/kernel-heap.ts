// What the kernel tests share: the builds (rebuilt when older than their sources), a bump allocator in the
// kernel's memory, a reproducible random sequence, and a product run by worker threads over one shared memory.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { expect } from 'vitest';
import { buildKernels, KERNELS_DIST } from '../../scripts/build-kernels.mjs';
import { instantiateLinearKernel, type LinearKernel, linearKernelMemoryFor } from '../../src/browser/kernels/linear-kernel.js';
import type { GraphBuilder } from '../../src/onnx/graph.js';
import { MODEL_FILE, writeOnnxModel } from '../../src/onnx/write.js';
import { type OrtTensor, RuntimeSession } from '../../src/runtime/session.js';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const SOURCES = ['kernels/linear.ts', 'scripts/build-kernels.mjs'].map((file) => path.join(ROOT, file));
const BUILDS = ['linear.wasm', 'linear-shared.wasm'].map((file) => path.join(KERNELS_DIST, file));

function isFresh(): boolean {
  if (!BUILDS.every((file) => existsSync(file))) return false;
  const built = Math.min(...BUILDS.map((file) => statSync(file).mtimeMs));
  return SOURCES.every((file) => statSync(file).mtimeMs <= built);
}

/** The plain and the shared-memory builds, compiled. */
export async function compiledKernels(): Promise<{ plain: WebAssembly.Module; shared: WebAssembly.Module }> {
  if (!isFresh()) await buildKernels();
  return { plain: await WebAssembly.compile(readFileSync(BUILDS[0]!)), shared: await WebAssembly.compile(readFileSync(BUILDS[1]!)) };
}

/** A fixed pseudo-random sequence of 32-bit words, so a failure reproduces. */
export function randomWords(count: number, seed: number): Uint32Array {
  let state = seed >>> 0;
  return Uint32Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state;
  });
}

/** A bump allocator above the kernel's static data; `misalign` offsets every allocation from 64-byte alignment. */
export class Heap {
  private top: number;
  constructor(
    readonly kernel: LinearKernel,
    readonly memory: WebAssembly.Memory,
    private readonly misalign = 0,
  ) {
    this.top = kernel.heapBase();
  }

  static async over(module: WebAssembly.Module, bytes: number, shared = false, misalign = 0): Promise<Heap> {
    const memory = linearKernelMemoryFor(bytes, shared);
    return new Heap(await instantiateLinearKernel(module, memory), memory, misalign);
  }

  alloc(bytes: number): number {
    const at = this.top + this.misalign;
    this.top = (at + bytes + 63) & ~63;
    if (this.top > this.memory.buffer.byteLength) throw new Error('test heap exhausted');
    return at;
  }

  put(array: Float32Array | Uint8Array | Int8Array): number {
    const at = this.alloc(array.byteLength);
    new Uint8Array(this.memory.buffer, at, array.byteLength).set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    return at;
  }
}

/**
 * Runs `exportName(...args, start, end)` for each column range on a worker thread of its own, each instantiating
 * the shared build over the heap's shared memory, as a page's helper threads do.
 */
export async function runOnWorkers(module: WebAssembly.Module, heap: Heap, exportName: string, args: number[], ranges: Array<[number, number]>): Promise<void> {
  const source = `
    const { parentPort, workerData } = require('node:worker_threads');
    const { module, memory, exportName, args, start, end } = workerData;
    WebAssembly.instantiate(module, { env: { memory } }).then((instance) => {
      instance.exports[exportName](...args, start, end);
      parentPort.postMessage('done');
    });`;
  await Promise.all(
    ranges.map(
      ([start, end]) =>
        new Promise<void>((resolve, reject) => {
          const worker = new Worker(source, { eval: true, workerData: { module, memory: heap.memory, exportName, args, start, end } });
          worker.once('message', () => void worker.terminate().then(() => resolve()));
          worker.once('error', reject);
        }),
    ),
  );
}

/** Splitting the columns over two calls gives the whole product's bits, and a range leaves the other columns alone. */
export function expectColumnSplitsAgree(run: (ranges?: Array<[number, number]>) => Float32Array, N: number, splits: number[]): void {
  const whole = run();
  for (const split of splits) {
    expect(run([
      [split, N],
      [0, split],
    ])).toEqual(whole);
  }
  const part = run([[5, 9]]);
  for (let i = 0; i < part.length; i++) if (i % N < 5 || i % N >= 9) expect(part[i]).toBe(0);
}

/** Runs a graph once in onnxruntime-node (one thread), written to a temporary folder: the op the kernel replaces. */
export async function runInOnnxRuntime(graph: GraphBuilder, feeds: Record<string, OrtTensor>): Promise<Float32Array> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-kernel-op-'));
  try {
    await writeOnnxModel(graph, folder);
    const session = await RuntimeSession.create(path.join(folder, MODEL_FILE), { threads: 1 });
    const { y } = await session.run(feeds);
    await session.release();
    return y!.data as Float32Array;
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}
