import type { onnx as OnnxTypes } from 'onnx-proto';
import type { CutNode } from '../../onnx/split.js';
import { externalDataOf } from '../../onnx/write.js';
import type { CutNodeKernel, CutNodeRunner } from '../../runtime/split-runner.js';
import { OrtTensor } from '../../runtime/tensor.js';
import { instantiateLinearKernel, type LinearKernel, linearKernelMemoryFor } from './linear-kernel.js';
import {
  argumentsWord,
  controlBlockWords,
  doneWord,
  GENERATION,
  type HelperStart,
  type ProductArguments,
  STOP,
} from './threads.js';

/** The kernel's WebAssembly builds: one over plain memory, one over shared memory for threads. */
export interface LinearKernelBuilds {
  plain: Uint8Array;
  shared: Uint8Array;
  /** Starts a helper thread (a module Worker running helper-thread.ts). */
  startHelper: () => Worker;
}

const PAGE = 64 * 1024;
const ALIGNMENT = 64;
const align = (offset: number) => Math.ceil(offset / ALIGNMENT) * ALIGNMENT;

/** Where one node's weights live in the kernel's memory. */
interface PlacedWeights {
  K: number;
  N: number;
  codes: number;
  scales: number;
  zeroPoints: number;
  /** 0: no bias. */
  bias: number;
}

/**
 * ONNX Runtime's com.microsoft MatMulNBits (4 bits, blocks of 32, accuracy level 4: activations in int8 per
 * block) on the project's WebAssembly kernel, for the page, where onnxruntime-web's own ran at 0.3 GB/s. Each
 * node's codes, scales, zero points and bias are copied once into the kernel's memory (ONNX Runtime never holds
 * them); a product quantizes the activations on the calling thread and splits the output columns over `threads`.
 */
export class MatMulNBitsKernel implements CutNodeKernel {
  private end: number;
  private readonly helpers: Worker[] = [];
  private control = 0;

  private constructor(
    private readonly kernel: LinearKernel,
    private readonly memory: WebAssembly.Memory,
    private readonly weights: Uint8Array,
    private readonly threads: number,
  ) {
    this.end = align(kernel.heapBase());
  }

  /** `threads` above 1 needs shared memory (a cross-origin isolated page). */
  static async create(weights: Uint8Array, threads: number, builds: LinearKernelBuilds): Promise<MatMulNBitsKernel> {
    const shared = threads > 1;
    const memory = linearKernelMemoryFor(PAGE, shared);
    const wasm = shared ? builds.shared : builds.plain;
    const kernel = new MatMulNBitsKernel(await instantiateLinearKernel(wasm, memory), memory, weights, threads);
    if (shared) await kernel.startHelpers(wasm, builds.startHelper);
    return kernel;
  }

  private async startHelpers(wasm: Uint8Array, startHelper: () => Worker): Promise<void> {
    const helpers = this.threads - 1;
    this.control = this.allocate(controlBlockWords(helpers) * 4);
    const started = [];
    for (let index = 0; index < helpers; index++) {
      const helper = startHelper();
      this.helpers.push(helper);
      started.push(
        new Promise<void>((resolve, reject) => {
          helper.onmessage = () => resolve();
          helper.onerror = (event) => reject(new Error(`the 4-bit kernel's helper thread failed: ${event.message}`));
        }),
      );
      const start: HelperStart = { wasm, memory: this.memory, control: this.control, helpers, index };
      helper.postMessage(start);
    }
    await Promise.all(started);
  }

  /** Bytes at the end of what is allocated, the memory grown to hold them. */
  private allocate(bytes: number): number {
    const offset = align(this.end);
    this.end = offset + bytes;
    const missing = this.end - this.memory.buffer.byteLength;
    if (missing > 0) this.memory.grow(Math.ceil(missing / PAGE));
    return offset;
  }

  private bytesOf(tensor: OnnxTypes.ITensorProto): Uint8Array {
    const external = externalDataOf(tensor);
    if (external) return this.weights.subarray(external.offset, external.offset + external.length);
    if (tensor.rawData?.length) return tensor.rawData;
    if (tensor.floatData?.length) return new Uint8Array(Float32Array.from(tensor.floatData).buffer);
    throw new Error(`MatMulNBits weight '${tensor.name}' has no data`);
  }

  /** Copies a weight into the kernel's memory. */
  private place(tensor: OnnxTypes.ITensorProto | undefined, expectedBytes: number, role: string, node: string): number {
    if (!tensor) throw new Error(`MatMulNBits '${node}': its ${role} must be an initializer`);
    const bytes = this.bytesOf(tensor);
    if (bytes.byteLength !== expectedBytes) {
      throw new Error(`MatMulNBits '${node}': ${role} '${tensor.name}' has ${bytes.byteLength} bytes, expected ${expectedBytes}`);
    }
    const offset = this.allocate(bytes.byteLength);
    new Uint8Array(this.memory.buffer, offset, bytes.byteLength).set(bytes);
    return offset;
  }

  prepare({ node, inputs, initializers }: CutNode): CutNodeRunner {
    const name = node.name ?? node.opType ?? '';
    const attribute = (key: string) => Number(node.attribute?.find((a) => a.name === key)?.i ?? NaN);
    const [K, N, bits, blockSize] = [attribute('K'), attribute('N'), attribute('bits'), attribute('block_size')];
    if (node.opType !== 'MatMulNBits' || bits !== 4 || blockSize !== 32 || K % 32 !== 0) {
      throw new Error(`the 4-bit kernel runs MatMulNBits with bits 4, block_size 32 and K a multiple of 32; '${name}' is ${node.opType} (bits ${bits}, block_size ${blockSize}, K ${K})`);
    }
    const names = node.input ?? [];
    if (names[4]) throw new Error(`MatMulNBits '${name}': g_idx is not supported by the 4-bit kernel`);
    const blocks = K / 32;
    const placed: PlacedWeights = {
      K,
      N,
      codes: this.place(initializers.get(names[1]!), N * blocks * 16, 'codes', name),
      scales: this.place(initializers.get(names[2]!), N * blocks * 4, 'scales', name),
      zeroPoints: this.place(initializers.get(names[3]!), N * Math.ceil(blocks / 2), 'zero points', name),
      bias: names[5] ? this.place(initializers.get(names[5]), N * 4, 'bias', name) : 0,
    };
    const input = inputs[0]!;
    return { run: (feeds) => [this.multiply(feeds[input]!, placed)] };
  }

  private multiply(x: OrtTensor, w: PlacedWeights): OrtTensor {
    const dims = x.dims;
    if (dims.at(-1) !== w.K) throw new Error(`MatMulNBits: the input's last dimension is ${dims.at(-1)}, expected K = ${w.K}`);
    const rows = dims.slice(0, -1).reduce((a, b) => a * b, 1);
    if (rows === 0) return new OrtTensor('float32', new Float32Array(0), [...dims.slice(0, -1), w.N]);
    // Scratch above the weights, reused by every product (the allocation only grows for a larger batch).
    const mark = this.end;
    const input = this.allocate(rows * w.K * 4);
    const activations = this.allocate(this.kernel.quantizedActivationBytes(rows, w.K));
    const y = this.allocate(rows * w.N * 4);
    new Float32Array(this.memory.buffer, input, rows * w.K).set(x.data as Float32Array);
    this.kernel.quantizeActivations(input, rows, w.K, activations);
    this.product([y, activations, rows, w.K, w.codes, w.scales, w.zeroPoints, w.bias, w.N, 0, w.N]);
    // A copy in plain memory: the runtime's tensors must not alias the kernel's (possibly shared) scratch.
    const out = new Float32Array(rows * w.N);
    out.set(new Float32Array(this.memory.buffer, y, rows * w.N));
    this.end = mark;
    return new OrtTensor('float32', out, [...dims.slice(0, -1), w.N]);
  }

  /** The columns split over the threads in multiples of 4 (the kernel's column group); the caller takes the first share. */
  private product(args: ProductArguments): void {
    const N = args[8];
    const share = Math.ceil(N / this.threads / 4) * 4;
    if (this.helpers.length > 0) {
      const words = new Int32Array(this.memory.buffer, this.control);
      const helpers = this.helpers.length;
      for (let helper = 0; helper < helpers; helper++) {
        const start = Math.min(N, share * (helper + 1));
        const end = Math.min(N, share * (helper + 2));
        words.set([...args.slice(0, 9), start, end], argumentsWord(helpers, helper));
      }
      const generation = Atomics.add(words, GENERATION, 1) + 1;
      Atomics.notify(words, GENERATION);
      this.kernel.matmulInt4(...(args.slice(0, 9) as [number, number, number, number, number, number, number, number, number]), 0, Math.min(N, share));
      for (let helper = 0; helper < helpers; helper++) while (Atomics.load(words, doneWord(helper)) !== generation);
      return;
    }
    this.kernel.matmulInt4(...args);
  }

  release(): void {
    if (this.helpers.length === 0) return;
    const words = new Int32Array(this.memory.buffer, this.control);
    Atomics.store(words, STOP, 1);
    Atomics.notify(words, GENERATION);
    for (const helper of this.helpers) helper.terminate();
  }
}
