// The page's int8 matmul kernel (kernels/linear.ts, matmulInt8) against a plain reference of the
// MatMulIntegerToFloat that q8 graphs hold (uint8 A, int8 B, scalar A scale, B scales per column, no zero points),
// and against ONNX Runtime's own MatMulIntegerToFloat.
import { beforeAll, describe, expect, it } from 'vitest';
import { compiledKernels, expectColumnSplitsAgree, Heap, randomWords, runInOnnxRuntime, runOnWorkers } from './kernel-heap.js';
import { GraphBuilder } from '../../src/onnx/graph.js';
import { OrtTensor } from '../../src/runtime/session.js';

/** The integer sum is exact; what is left is two float32 roundings (the sum, then the product), under 1.2e-7 each. */
const TOLERANCE = 1e-6;

interface Problem {
  rows: number;
  K: number;
  N: number;
  /** uint8 [rows, K] */
  a: Uint8Array;
  /** int8 [K, N], as the q8 graph stores it */
  b: Int8Array;
  aScale: number;
  /** float32 [N] */
  bScales: Float32Array;
}

/**
 * Activations over all of uint8 with a row of zeros and a row of 255s where there are rows enough; codes over all
 * of int8 (the q8 converter writes -127..127, but the op takes any), with a column of -128s and one of 127s.
 */
function problem(rows: number, K: number, N: number, seed: number, aScale = 1): Problem {
  const a = Uint8Array.from(randomWords(rows * K, seed), (w) => w >>> 24);
  const b = Int8Array.from(randomWords(K * N, seed + 1), (w) => (w >>> 24) - 128);
  if (rows > 2) {
    a.fill(0, 0, K);
    a.fill(255, K, 2 * K);
  }
  for (let k = 0; k < K; k++) {
    b[k * N + (N >> 1)] = -128;
    b[k * N + N - 1] = 127;
  }
  const bScales = Float32Array.from(randomWords(N, seed + 2), (w) => (w / 2 ** 32 + 0.01) * 0.02);
  return { rows, K, N, a, b, aScale, bScales };
}

interface Reference {
  /** What the kernel must give to the bit: float32(sum) * float32(aScale * bScales[n]), each rounded to float32. */
  float32: Float32Array;
  /** The exact value, in float64. */
  exact: Float64Array;
}

function referenceMatmul({ rows, K, N, a, b, aScale, bScales }: Problem): Reference {
  const float32 = new Float32Array(rows * N);
  const exact = new Float64Array(rows * N);
  for (let m = 0; m < rows; m++) {
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let k = 0; k < K; k++) sum += a[m * K + k]! * b[k * N + n]!;
      float32[m * N + n] = Math.fround(sum) * Math.fround(Math.fround(aScale) * bScales[n]!);
      exact[m * N + n] = sum * Math.fround(aScale) * bScales[n]!;
    }
  }
  return { float32, exact };
}

/** The largest error against the exact values, relative to each (or to the largest, for values near zero). */
function worstError(actual: Float32Array, exact: Float64Array): number {
  const largest = exact.reduce((max, v) => Math.max(max, Math.abs(v)), 0);
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const error = Math.abs(actual[i]! - exact[i]!) / Math.max(Math.abs(exact[i]!), 1e-3 * largest, 1e-30);
    if (!(error <= worst)) worst = error; // NaN sticks
  }
  return worst;
}

/** Bump allocation in the kernel's memory, 64-byte aligned unless `misalign` moves each block off by that much. */
/** Where a problem's operands sit in the kernel's memory, packed and prepared. */
interface Placed {
  y: number;
  args: [a: number, rows: number, K: number, packed: number, aScale: number, bScales: number, N: number];
}

function place(heap: Heap, { rows, K, N, a, b, aScale, bScales }: Problem): Placed {
  const { kernel } = heap;
  const packed = heap.alloc(kernel.int8PackedBytes(K, N));
  kernel.packInt8(heap.put(b), K, N, packed);
  const prepared = heap.alloc(kernel.int8ActivationBytes(rows, K));
  kernel.prepareInt8Activations(heap.put(a), rows, K, prepared);
  const y = heap.alloc(rows * N * 4);
  return { y, args: [prepared, rows, K, packed, aScale, heap.put(bScales), N] };
}

/** The kernel's y for `p`, computed in `ranges` calls that split the columns. */
function runKernel(heap: Heap, p: Problem, ranges: Array<[number, number]> = [[0, p.N]]): Float32Array {
  const { y, args } = place(heap, p);
  for (const [start, end] of ranges) heap.kernel.matmulInt8(y, ...args, start, end);
  // Through bytes: a misaligned y cannot be viewed as float32 in place.
  return new Float32Array(new Uint8Array(heap.memory.buffer, y, p.rows * p.N * 4).slice().buffer);
}

let plain: WebAssembly.Module;
let shared: WebAssembly.Module;
/** A fresh instance and heap per test (64 MiB holds the largest case with its unpacked copy). */
const freshHeap = (misalign = 0) => Heap.over(plain, 64 << 20, false, misalign);

beforeAll(async () => {
  ({ plain, shared } = await compiledKernels());
});

describe('int8 kernel against the reference semantics', () => {
  const cases = [1, 3, 17].flatMap((rows) => [128, 2048].flatMap((K) => [37, 512].map((N) => ({ rows, K, N }))));
  it.each(cases)('rows $rows, K $K, N $N', async ({ rows, K, N }) => {
    const p = problem(rows, K, N, rows * 1000 + K + N, rows === 3 ? 0.37 : 1);
    const y = runKernel(await freshHeap(), p);
    const reference = referenceMatmul(p);
    expect(worstError(y, reference.exact)).toBeLessThan(TOLERANCE);
    expect(y).toEqual(reference.float32);
  });

  it('handles K of one chunk and K past a multiple of the 64 chunks it sums before removing the factor 256', async () => {
    for (const K of [16, 48, 1040]) {
      const p = problem(6, K, 9, K);
      expect(runKernel(await freshHeap(), p)).toEqual(referenceMatmul(p).float32);
    }
  });

  it('sums the largest products exactly at K 8192 (255 * -128 * 8192 and 255 * 127 * 8192)', async () => {
    const [rows, K, N] = [5, 8192, 6];
    const p = problem(rows, K, N, 3);
    p.a.fill(255);
    const reference = referenceMatmul(p);
    const y = runKernel(await freshHeap(), p);
    expect(y).toEqual(reference.float32);
    // The two extreme columns: -128 and 127 in every row k.
    expect(reference.exact[N >> 1]! / p.bScales[N >> 1]!).toBeCloseTo(255 * -128 * K, 0);
    expect(reference.exact[N - 1]! / p.bScales[N - 1]!).toBeCloseTo(255 * 127 * K, 0);
  });

  it('needs no alignment of any operand', async () => {
    const p = problem(5, 128, 13, 5);
    expect(runKernel(await freshHeap(3), p)).toEqual(referenceMatmul(p).float32);
  });

  it('gives the same bits when the columns are split across calls', async () => {
    for (const [rows, N] of [
      [1, 37],
      [3, 512],
      [17, 37],
    ] as const) {
      const p = problem(rows, 2048, N, rows + N);
      const heap = await freshHeap();
      expectColumnSplitsAgree((ranges) => runKernel(heap, p, ranges), N, [1, 2, 17, N >> 1, N - 1]);
    }
  });

  it('is caught by the comparison when a weight or a scale is wrong', async () => {
    const p = problem(3, 2048, 37, 7);
    const y = runKernel(await freshHeap(), p);
    expect(worstError(y, referenceMatmul(p).exact)).toBeLessThan(TOLERANCE);
    const wrongCode = { ...p, b: p.b.slice() };
    wrongCode.b[1000 * 37 + 5] = wrongCode.b[1000 * 37 + 5]! + (wrongCode.b[1000 * 37 + 5]! > 0 ? -1 : 1); // k 1000, column 5
    expect(worstError(y, referenceMatmul(wrongCode).exact)).toBeGreaterThan(10 * TOLERANCE);
    const wrongScale = { ...p, bScales: p.bScales.slice() };
    wrongScale.bScales[36]! *= 1.0001;
    expect(worstError(y, referenceMatmul(wrongScale).exact)).toBeGreaterThan(10 * TOLERANCE);
  });
});

describe('int8 kernel against ONNX Runtime', () => {
  it("agrees with onnxruntime-node's MatMulIntegerToFloat as q8 graphs hold it", async () => {
    const [rows, K, N] = [5, 2048, 64];
    const p = problem(rows, K, N, 11);
    const g = new GraphBuilder();
    const a = g.input('a', 'uint8', [rows, K]);
    const b = g.weight('b', 'int8', [K, N], async () => p.b);
    const bScales = g.weight('b_scales', 'float32', [N], async () => p.bScales);
    const product = g.node('MatMulIntegerToFloat', [a, b, g.constFloat(p.aScale), bScales], {}, { domain: 'com.microsoft' });
    g.output(product, 'y', 'float32', [rows, N]);
    const expected = await runInOnnxRuntime(g, { a: new OrtTensor('uint8', p.a, [rows, K]) });
    const y = runKernel(await freshHeap(), p);
    const exact = referenceMatmul(p).exact;
    // Both sum exactly and, where this was written, agree to the bit; ONNX Runtime may order its scaling
    // differently on another CPU, hence a tolerance.
    expect(worstError(expected, exact)).toBeLessThan(TOLERANCE);
    expect(worstError(y, Float64Array.from(expected))).toBeLessThan(TOLERANCE);
  });
});

describe('linear-shared.wasm, int8', () => {
  it('runs on two worker threads over one shared memory, each on part of the columns, as the plain build does alone', async () => {
    const [rows, K, N] = [6, 2048, 101];
    const p = problem(rows, K, N, 17);
    const expected = runKernel(await freshHeap(), p);

    const heap = await Heap.over(shared, 16 << 20, true);
    expect(heap.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    const { y, args } = place(heap, p);
    // The split is not at a multiple of four, so the two workers share a group of columns.
    await runOnWorkers(shared, heap, 'matmulInt8', [y, ...args], [
      [0, 49],
      [49, N],
    ]);
    expect(new Float32Array(heap.memory.buffer, y, rows * N).slice()).toEqual(expected);
  });
});
