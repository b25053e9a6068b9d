import type { onnx as OnnxTypes } from 'onnx-proto';
import type { CutNode } from '../../onnx/split.js';
import { externalDataOf } from '../../onnx/write.js';
import type { CutNodeKernel, CutNodeRunner } from '../../runtime/split-runner.js';
import { OrtTensor } from '../../runtime/tensor.js';
import { instantiateLinearKernel, type LinearKernel, linearKernelMemoryFor } from './linear-kernel.js';
import { CONTROL_WORDS, floatBits, GENERATION, type HelperStart, INT4_PRODUCT, INT8_PRODUCT, type ProductJob, runProduct, STOP } from './threads.js';

/**
 * The kernel's WebAssembly: `linear.wasm` for one thread; for more, `linear-shared.wasm` (over shared memory) and
 * a way to start a helper thread (a module Worker running helper-thread.ts).
 */
export type LinearKernelBuild = { wasm: Uint8Array; threads: 1 } | { wasm: Uint8Array; threads: number; startHelper: () => Worker };

/** The ops the kernel runs, as the converter writes them for q4 and q8 (src/convert/parameters.ts). */
export const KERNEL_OPS: ReadonlySet<string> = new Set(['MatMulNBits', 'MatMulIntegerToFloat']);

const PAGE = 64 * 1024;
const ALIGNMENT = 64;
const align = (offset: number) => Math.ceil(offset / ALIGNMENT) * ALIGNMENT;

/** A prepared node: its weights in the kernel's memory, and how its input becomes the kernel's activations. */
interface PlacedProduct {
  name: string;
  input: string;
  K: number;
  N: number;
  inputType: 'float32' | 'uint8';
  /** The job without its output and activation pointers and its row count (filled per product). */
  job: ProductJob;
}

/**
 * The page's own quantized products on the project's WebAssembly kernel (kernels/linear.ts), where onnxruntime-web's
 * ran at 0.3 GB/s (4-bit) and 0.14 of native (int8): com.microsoft `MatMulNBits` (4 bits, blocks of 32, accuracy
 * level 4: activations in int8 per block, as ONNX Runtime computes it) and `MatMulIntegerToFloat` in q8's form
 * (uint8 activations without zero point, int8 weights, a constant activation scale, weight scales per column).
 * Each node's weights are copied once into the kernel's memory (ONNX Runtime never holds them); a product prepares
 * the activations on the calling thread and splits the output columns over `threads`.
 */
export class QuantizedProducts implements CutNodeKernel {
  private end: number;
  private readonly helpers: Worker[] = [];
  /** The threads' control block (threads.ts), when there are helpers. */
  private control: Int32Array | undefined;

  private constructor(
    private readonly kernel: LinearKernel,
    private readonly memory: WebAssembly.Memory,
    /** The converted weights file, until every node is prepared (then dropped: 1.3 to 1.6 GB for the 1.3B). */
    private weights: Uint8Array | undefined,
    private readonly threads: number,
  ) {
    this.end = align(kernel.heapBase());
  }

  /** More than one thread needs shared memory (a cross-origin isolated page). */
  static async create(weights: Uint8Array, build: LinearKernelBuild): Promise<QuantizedProducts> {
    const memory = linearKernelMemoryFor(PAGE, build.threads > 1);
    const products = new QuantizedProducts(await instantiateLinearKernel(build.wasm, memory), memory, weights, build.threads);
    if ('startHelper' in build) await products.startHelpers(build.wasm, build.startHelper);
    return products;
  }

  private async startHelpers(wasm: Uint8Array, startHelper: () => Worker): Promise<void> {
    const control = this.allocate(CONTROL_WORDS * 4);
    this.control = new Int32Array(this.memory.buffer, control, CONTROL_WORDS);
    const started = [];
    for (let index = 1; index < this.threads; index++) {
      const helper = startHelper();
      this.helpers.push(helper);
      started.push(
        new Promise<void>((resolve, reject) => {
          helper.onmessage = () => resolve();
          helper.onerror = (event) => reject(new Error(`the kernel's helper thread failed: ${event.message}`));
        }),
      );
      const start: HelperStart = { wasm, memory: this.memory, control };
      helper.postMessage(start);
    }
    await Promise.all(started);
  }

  /** Bytes at the end of what is allocated, the memory grown to hold them. */
  private allocate(bytes: number): number {
    const offset = align(this.end);
    this.end = offset + bytes;
    const missing = this.end - this.memory.buffer.byteLength;
    if (missing > 0) {
      try {
        this.memory.grow(Math.ceil(missing / PAGE));
      } catch {
        throw new Error(
          `the page's kernel for quantized products needs ${(this.end / 1e9).toFixed(2)} GB of WebAssembly memory, more than ` +
            `the browser gives one module (wasm32 addresses 4.29 GB); use a smaller model or dtype 'q4'`,
        );
      }
    }
    return offset;
  }

  prepared(): void {
    this.weights = undefined;
  }

  private bytesOf(tensor: OnnxTypes.ITensorProto): Uint8Array {
    const external = externalDataOf(tensor);
    if (external) {
      if (!this.weights) throw new Error(`weight '${tensor.name}': the weights file was dropped once every node was prepared`);
      return this.weights.subarray(external.offset, external.offset + external.length);
    }
    if (tensor.rawData?.length) return tensor.rawData;
    if (tensor.floatData?.length) return new Uint8Array(Float32Array.from(tensor.floatData).buffer);
    throw new Error(`weight '${tensor.name}' has no data`);
  }

  /** Copies an initializer input of `node` into the kernel's memory, checking its size. */
  private place(node: CutNode, input: number, expectedBytes: number, role: string): number {
    const name = node.node.input?.[input];
    const tensor = name ? node.initializers.get(name) : undefined;
    const label = `${node.node.opType} '${node.node.name}'`;
    if (!tensor) throw new Error(`${label}: its ${role} (input ${input}) must be an initializer for the page's kernel`);
    const bytes = this.bytesOf(tensor);
    if (bytes.byteLength !== expectedBytes) {
      throw new Error(`${label}: ${role} '${tensor.name}' has ${bytes.byteLength} bytes, expected ${expectedBytes}`);
    }
    const offset = this.allocate(bytes.byteLength);
    new Uint8Array(this.memory.buffer, offset, bytes.byteLength).set(bytes);
    return offset;
  }

  prepare(node: CutNode): CutNodeRunner {
    const placed = node.node.opType === 'MatMulNBits' ? this.prepareInt4(node) : this.prepareInt8(node);
    return { run: (feeds) => [this.multiply(feeds[placed.input]!, placed)] };
  }

  private prepareInt4(cut: CutNode): PlacedProduct {
    const { node } = cut;
    const attribute = (key: string) => Number(node.attribute?.find((a) => a.name === key)?.i ?? NaN);
    const [K, N, bits, blockSize] = [attribute('K'), attribute('N'), attribute('bits'), attribute('block_size')];
    if (bits !== 4 || blockSize !== 32 || K % 32 !== 0) {
      throw new Error(`the page's kernel runs MatMulNBits with bits 4, block_size 32 and K a multiple of 32; '${node.name}' has bits ${bits}, block_size ${blockSize}, K ${K}`);
    }
    const inputs = node.input ?? [];
    if (inputs[4]) throw new Error(`MatMulNBits '${node.name}': g_idx is not supported by the page's kernel`);
    const blocks = K / 32;
    const codes = this.place(cut, 1, N * blocks * 16, 'codes');
    const scales = this.place(cut, 2, N * blocks * 4, 'scales');
    const zeroPoints = this.place(cut, 3, N * Math.ceil(blocks / 2), 'zero points');
    const bias = inputs[5] ? this.place(cut, 5, N * 4, 'bias') : 0;
    return { name: node.name ?? '', input: inputs[0]!, K, N, inputType: 'float32', job: [INT4_PRODUCT, 0, 0, 0, K, codes, scales, zeroPoints, bias, N] };
  }

  private prepareInt8(cut: CutNode): PlacedProduct {
    const { node } = cut;
    const inputs = node.input ?? [];
    const label = `MatMulIntegerToFloat '${node.name}'`;
    if (inputs.slice(4).some((name) => name)) throw new Error(`${label}: zero points and bias are not supported by the page's kernel`);
    const weight = cut.initializers.get(inputs[1] ?? '');
    const aScale = cut.initializers.get(inputs[2] ?? '');
    const dims = (weight?.dims ?? []).map(Number);
    if (!weight || dims.length !== 2 || !aScale) throw new Error(`${label}: the weights [K, N] and the activations' scale must be initializers for the page's kernel`);
    const [K, N] = dims as [number, number];
    if (K % 16 !== 0 || K > 65536) throw new Error(`${label}: the page's kernel needs K a multiple of 16 and at most 65536, got ${K}`);
    const scaleBytes = this.bytesOf(aScale);
    if (scaleBytes.byteLength !== 4) throw new Error(`${label}: the activations' scale must be one float32`);
    const activationScale = new DataView(scaleBytes.buffer, scaleBytes.byteOffset, 4).getFloat32(0, true);
    // Repacked into the kernel's layout from a copy as stored, which goes once packed (the next allocation reuses it).
    const packed = this.allocate(this.kernel.int8PackedBytes(K, N));
    const packedEnd = this.end;
    this.kernel.packInt8(this.place(cut, 1, K * N, 'weights'), K, N, packed);
    this.end = packedEnd;
    const scales = this.place(cut, 3, N * 4, 'weight scales');
    const job: ProductJob = [INT8_PRODUCT, 0, 0, 0, K, packed, scales, floatBits(activationScale), 0, N];
    return { name: node.name ?? '', input: inputs[0]!, K, N, inputType: 'uint8', job };
  }

  private multiply(x: OrtTensor, product: PlacedProduct): OrtTensor {
    const { K, N } = product;
    const dims = x.dims;
    if (dims.at(-1) !== K) throw new Error(`'${product.name}': the input's last dimension is ${dims.at(-1)}, expected K = ${K}`);
    if (x.type !== product.inputType) throw new Error(`'${product.name}': the input is ${x.type}, expected ${product.inputType}`);
    const rows = dims.slice(0, -1).reduce((a, b) => a * b, 1);
    const outDims = [...dims.slice(0, -1), N];
    if (rows === 0) return new OrtTensor('float32', new Float32Array(0), outDims);
    // Scratch above the weights, reused by every product (the allocation only grows for a larger batch).
    const mark = this.end;
    const int4 = product.inputType === 'float32';
    const input = this.allocate(rows * K * (int4 ? 4 : 1));
    const activations = this.allocate(int4 ? this.kernel.quantizedActivationBytes(rows, K) : this.kernel.int8ActivationBytes(rows, K));
    const y = this.allocate(rows * N * 4);
    const data = x.data as Float32Array | Uint8Array;
    new Uint8Array(this.memory.buffer, input, data.byteLength).set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    if (int4) this.kernel.quantizeActivations(input, rows, K, activations);
    else this.kernel.prepareInt8Activations(input, rows, K, activations);
    const job = [...product.job] as ProductJob;
    [job[1], job[2], job[3]] = [y, activations, rows];
    runProduct(this.kernel, this.control, job, this.threads);
    // A copy in plain memory: the runtime's tensors must not alias the kernel's (possibly shared) scratch.
    const out = new Float32Array(rows * N);
    out.set(new Float32Array(this.memory.buffer, y, rows * N));
    this.end = mark;
    return new OrtTensor('float32', out, outDims);
  }

  release(): void {
    if (!this.control) return;
    Atomics.store(this.control, STOP, 1);
    Atomics.notify(this.control, GENERATION);
    for (const helper of this.helpers) helper.terminate();
  }
}
