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
  /** Bytes that packInt8 writes for int8 weights [K, N]: 4 K ceil(N / 4). */
  int8PackedBytes(K: number, N: number): number;
  /**
   * Repacks b (int8 [K, N] as MatMulIntegerToFloat's B is stored, the transposed nn.Linear weight) into `out`
   * (int8PackedBytes(K, N) bytes, best 16-byte aligned), the layout matmulInt8 reads: columns in groups of four
   * (the last padded with zero columns), each group's K / 16 chunks of 16 codes a column one after another.
   * Once a node, at load. K must be a multiple of 16 (not checked).
   */
  packInt8(b: number, K: number, N: number, out: number): void;
  /** Bytes that prepareInt8Activations writes for `rows` rows of K values: 2 rows K. */
  int8ActivationBytes(rows: number, K: number): number;
  /**
   * Widens a (uint8 [rows, K], MatMulIntegerToFloat's A) to int16, the even and odd elements of each 16
   * apart, into `out` (int8ActivationBytes(rows, K) bytes, best 16-byte aligned), as matmulInt8 reads them.
   */
  prepareInt8Activations(a: number, rows: number, K: number, out: number): void;
  /**
   * y (float32 [rows, N]) = MatMulIntegerToFloat(A, B, aScale, bScales) without zero points or bias, for the
   * columns in [nStart, nEnd) only: y[m, n] = float(sum_k A[m, k] B[k, n]) * (aScale * bScales[n]), the sum exact
   * in int32. a from prepareInt8Activations, packed from packInt8, bScales float32 [N]. K must be a multiple of
   * 16 and at most 65536 (not checked); any N; 0 <= nStart <= nEnd <= N. A split of the columns over calls gives
   * the same bits as one call.
   */
  matmulInt8(y: number, a: number, rows: number, K: number, packed: number, aScale: number, bScales: number, N: number, nStart: number, nEnd: number): void;
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
