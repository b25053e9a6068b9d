/// <reference lib="dom" />
// Loads the page's own matmul kernels (kernels/linear.ts, built by scripts/build-kernels.mjs into
// dist/kernels/linear.wasm and linear-shared.wasm) over a memory that JavaScript allocates in. Plain WebAssembly
// API only, so it runs alike in Node, pages and workers.

/**
 * The kernel's exports. Pointers are byte offsets into the memory it was instantiated with; every array is
 * little-endian and row-major, and the callers allocate all of them at or above heapBase().
 */
export interface LinearKernel {
  /** The first byte JavaScript may use: the module's static data lies below it. 16-byte aligned. */
  heapBase(): number;
  /** Bytes that quantizeActivations writes for `rows` rows of K values. */
  quantizedActivationBytes(rows: number, K: number): number;
  /**
   * Quantizes x (float32 [rows, K]) per row and block of 32 to int8 as MatMulNBits does at accuracy_level 4
   * (scale max|a| / 127, round to nearest even), into `out` (quantizedActivationBytes(rows, K) bytes, best
   * 16-byte aligned) in the layout matmulInt4 reads.
   */
  quantizeActivations(x: number, rows: number, K: number, out: number): void;
  /**
   * y (float32 [rows, N]) = MatMulNBits(x, codes, scales, zeroPoints) + bias for the columns in [nStart, nEnd)
   * only, so that threads can share the columns of one call. codes uint8 [N, K / 32, 16], scales float32
   * [N, K / 32], zeroPoints uint8 [N, ceil(K / 64)] as quantizeBlockwise (src/convert/quantize.ts) writes them;
   * bias float32 [N] or 0 for none; xq from quantizeActivations. K must be a multiple of 32 (not checked).
   */
  matmulInt4(
    y: number,
    xq: number,
    rows: number,
    K: number,
    codes: number,
    scales: number,
    zeroPoints: number,
    bias: number,
    N: number,
    nStart: number,
    nEnd: number,
  ): void;
}

const PAGE = 65536;
/** wasm32 addresses 65536 pages; linear-shared.wasm declares that maximum, as a shared memory must declare one. */
const MAX_PAGES = 65536;
/** Room kept below the allocations for the module's static data (a few dozen bytes). */
const STATIC_PAGES = 1;

/**
 * A memory for the kernel with `bytes` bytes free above heapBase(): shared (for linear-shared.wasm, to run on
 * several workers) or not (for linear.wasm).
 */
export function linearKernelMemoryFor(bytes: number, shared: boolean): WebAssembly.Memory {
  const initial = STATIC_PAGES + Math.ceil(bytes / PAGE);
  if (!Number.isFinite(initial) || bytes < 0 || initial > MAX_PAGES) {
    throw new RangeError(`the linear kernel's memory holds at most ${(MAX_PAGES - STATIC_PAGES) * PAGE} bytes, asked for ${bytes}`);
  }
  return shared ? new WebAssembly.Memory({ initial, maximum: MAX_PAGES, shared: true }) : new WebAssembly.Memory({ initial });
}

/**
 * Instantiates linear.wasm over `memory` (linear-shared.wasm over a shared one). Takes the file's bytes, or the
 * module compiled from them, which workers can receive by postMessage instead of compiling it again.
 */
export async function instantiateLinearKernel(wasm: BufferSource | WebAssembly.Module, memory: WebAssembly.Memory): Promise<LinearKernel> {
  const module = wasm instanceof WebAssembly.Module ? wasm : await WebAssembly.compile(wasm);
  const instance = await WebAssembly.instantiate(module, { env: { memory } });
  const exports = instance.exports as unknown as LinearKernel;
  if (exports.heapBase() > STATIC_PAGES * PAGE) throw new Error(`the linear kernel's static data ends at ${exports.heapBase()}, past the page linearKernelMemoryFor keeps for it`);
  return exports;
}
