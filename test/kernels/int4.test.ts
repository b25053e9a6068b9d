// The page's 4-bit matmul kernel (kernels/linear.ts) against a plain reference of MatMulNBits at accuracy_level 4,
// against ONNX Runtime's own MatMulNBits, and against the float product of the dequantized weights.
import { beforeAll, describe, expect, it } from 'vitest';
import { compiledKernels, expectColumnSplitsAgree, Heap, randomWords, runInOnnxRuntime, runOnWorkers } from './kernel-heap.js';
import { type BlockQuantized, dequantizeBlockwise, quantizeBlockwise } from '../../src/convert/quantize.js';
import { GraphBuilder } from '../../src/onnx/graph.js';
import { OrtTensor } from '../../src/runtime/session.js';

/**
 * Float32 rounding in the kernel against the reference's float64, relative to the sum of the magnitudes of the
 * terms the kernel adds up (about ten times |y|): the kernel stays under 1e-7 of it.
 */
const TOLERANCE = 1e-6;

/** A fixed pseudo-random sequence in [-1, 1), so a failure reproduces. */
function values(count: number, seed: number): Float32Array {
  return Float32Array.from(randomWords(count, seed), (word) => (word / 2 ** 32) * 2 - 1);
}

/** Weights like a trained layer's: most small, a few large, some blocks all zero. */
function randomWeight(N: number, K: number, seed: number): Float32Array {
  const w = values(N * K, seed);
  const spread = values(N * K, seed + 1);
  for (let i = 0; i < w.length; i++) w[i]! *= Math.abs(spread[i]!) > 0.97 ? 4 : 0.5;
  w.fill(0, 3 * 32, 4 * 32); // one block all zero
  return w;
}

/** Activations with an all-zero block in row 0 and an outlier in the last row. */
function randomInput(rows: number, K: number, seed: number): Float32Array {
  const x = values(rows * K, seed);
  x.fill(0, 32, 64);
  x[(rows - 1) * K + (K >> 1)] = 40;
  return x;
}

interface Reference {
  y: Float64Array;
  /** Per output, the sum of the absolute values of the terms added up: what float32 rounding scales with. */
  magnitude: Float64Array;
}

/** MatMulNBits at bits 4, block_size 32, accuracy_level 4, in float64 apart from the float32 activation quantization. */
function referenceMatmul(x: Float32Array, rows: number, K: number, q: BlockQuantized, N: number, bias?: Float32Array): Reference {
  const blocks = K / 32;
  const codes = new Int32Array(rows * K);
  const activationScales = new Float32Array(rows * blocks);
  for (let m = 0; m < rows; m++) {
    for (let b = 0; b < blocks; b++) {
      let max = 0;
      for (let i = 0; i < 32; i++) max = Math.max(max, Math.abs(x[m * K + b * 32 + i]!));
      const scale = Math.fround(max / 127);
      activationScales[m * blocks + b] = scale;
      if (scale === 0) continue;
      for (let i = 0; i < 32; i++) {
        const ratio = Math.fround(x[m * K + b * 32 + i]! / scale);
        let code = Math.round(ratio);
        if (code - ratio === 0.5 && code % 2 !== 0) code -= 1; // ties to even
        codes[m * K + b * 32 + i] = Math.max(-127, Math.min(127, code));
      }
    }
  }
  const zeroPointBytes = Math.ceil(blocks / 2);
  const y = new Float64Array(rows * N);
  const magnitude = new Float64Array(rows * N);
  for (let m = 0; m < rows; m++) {
    for (let n = 0; n < N; n++) {
      let sum = bias ? bias[n]! : 0;
      let size = Math.abs(sum);
      for (let b = 0; b < blocks; b++) {
        const zeroPoint = (q.zeroPoints[n * zeroPointBytes + (b >> 1)]! >> ((b & 1) * 4)) & 15;
        let dot = 0;
        let absolute = 0;
        for (let i = 0; i < 32; i++) {
          const code = (q.codes[(n * blocks + b) * 16 + (i >> 1)]! >> ((i & 1) * 4)) & 15;
          dot += (code - zeroPoint) * codes[m * K + b * 32 + i]!;
          absolute += (code + zeroPoint) * Math.abs(codes[m * K + b * 32 + i]!);
        }
        const scale = q.scales[n * blocks + b]! * activationScales[m * blocks + b]!;
        sum += scale * dot;
        // The kernel sums c q and z q apart (c + z bounds both), then subtracts.
        size += Math.abs(scale) * absolute;
      }
      y[m * N + n] = sum;
      magnitude[m * N + n] = size;
    }
  }
  return { y, magnitude };
}

/** The largest error against the reference, in units of each output's magnitude. */
function worstError(actual: Float32Array, expected: Reference): number {
  let worst = 0;
  for (let i = 0; i < actual.length; i++) {
    const error = Math.abs(actual[i]! - expected.y[i]!) / Math.max(expected.magnitude[i]!, 1e-30);
    if (!(error <= worst)) worst = error; // NaN sticks
  }
  return worst;
}

/** Bump allocation in the kernel's memory, 64-byte aligned. */
interface Problem {
  rows: number;
  K: number;
  N: number;
  x: Float32Array;
  q: BlockQuantized;
  bias?: Float32Array;
}

function problem(rows: number, K: number, N: number, withBias: boolean, seed: number): Problem {
  const q = quantizeBlockwise(randomWeight(N, K, seed), N, K, 4, 32);
  const bias = withBias ? values(N, seed + 2) : undefined;
  return { rows, K, N, x: randomInput(rows, K, seed + 3), q, bias };
}

/** The kernel's y for `problem`, computed in `ranges` calls that split the columns. */
function runKernel(heap: Heap, { rows, K, N, x, q, bias }: Problem, ranges: Array<[number, number]> = [[0, N]]): Float32Array {
  const { kernel } = heap;
  const xq = heap.alloc(kernel.quantizedActivationBytes(rows, K));
  const y = heap.alloc(rows * N * 4);
  kernel.quantizeActivations(heap.put(x), rows, K, xq);
  const [codes, scales, zeroPoints] = [heap.put(q.codes), heap.put(q.scales), heap.put(q.zeroPoints)];
  const biasAt = bias ? heap.put(bias) : 0;
  for (const [start, end] of ranges) kernel.matmulInt4(y, xq, rows, K, codes, scales, zeroPoints, biasAt, N, start, end);
  return new Float32Array(heap.memory.buffer, y, rows * N).slice();
}

let plain: WebAssembly.Module;
let shared: WebAssembly.Module;
/** A fresh instance and heap per test (16 MiB is plenty for the largest case). */
const freshHeap = () => Heap.over(plain, 16 << 20);

beforeAll(async () => {
  ({ plain, shared } = await compiledKernels());
});

describe('int4 kernel against the reference semantics', () => {
  const cases = [1, 3, 17].flatMap((rows) => [64, 2048].flatMap((K) => [37, 512].flatMap((N) => [false, true].map((withBias) => ({ rows, K, N, withBias })))));
  it.each(cases)('rows $rows, K $K, N $N, bias $withBias', async ({ rows, K, N, withBias }) => {
    const p = problem(rows, K, N, withBias, rows * 1000 + K + N + Number(withBias));
    const heap = await freshHeap();
    const y = runKernel(heap, p);
    expect(worstError(y, referenceMatmul(p.x, rows, K, p.q, N, p.bias))).toBeLessThan(TOLERANCE);
    // Rows whose activations are all zero give the bias exactly.
    const zeros = { ...p, x: new Float32Array(rows * K) };
    expect(runKernel(heap, zeros)).toEqual(Float32Array.from({ length: rows * N }, (_, i) => p.bias?.[i % N] ?? 0));
  });

  it('handles a block count that is not a multiple of four (K = 32, 96, 160)', async () => {
    for (const K of [32, 96, 160]) {
      const p = problem(5, K, 9, true, K);
      expect(worstError(runKernel(await freshHeap(), p), referenceMatmul(p.x, 5, K, p.q, 9, p.bias))).toBeLessThan(TOLERANCE);
    }
  });

  it('gives the same result when the columns are split across calls', async () => {
    for (const [rows, N] of [
      [1, 37],
      [3, 512],
      [17, 37],
    ] as const) {
      const p = problem(rows, 2048, N, true, rows + N);
      const heap = await freshHeap();
      expectColumnSplitsAgree((ranges) => runKernel(heap, p, ranges), N, [1, 17, N >> 1, N - 1]);
    }
  });

  it('is caught by the comparison when a zero point, a code or a scale is wrong', async () => {
    const p = problem(3, 2048, 37, true, 7);
    const y = runKernel(await freshHeap(), p);
    const reference = (q: BlockQuantized) => referenceMatmul(p.x, 3, 2048, q, 37, p.bias);
    expect(worstError(y, reference(p.q))).toBeLessThan(TOLERANCE);
    const wrongZeroPoint = { ...p.q, zeroPoints: p.q.zeroPoints.slice() };
    wrongZeroPoint.zeroPoints[5 * 32 + 3]! ^= 0x10; // column 5, block 7
    expect(worstError(y, reference(wrongZeroPoint))).toBeGreaterThan(10 * TOLERANCE);
    const wrongCode = { ...p.q, codes: p.q.codes.slice() };
    wrongCode.codes[36 * 64 * 16 + 100]! ^= 0x01; // last column
    expect(worstError(y, reference(wrongCode))).toBeGreaterThan(10 * TOLERANCE);
    const wrongScale = { ...p.q, scales: p.q.scales.slice() };
    wrongScale.scales[64 * 20]! *= 1.05;
    expect(worstError(y, reference(wrongScale))).toBeGreaterThan(10 * TOLERANCE);
  });
});

describe('int4 kernel against other computations of the same product', () => {
  it("agrees with onnxruntime-node's MatMulNBits at accuracy_level 4", async () => {
    const [rows, K, N] = [3, 2048, 64];
    const p = problem(rows, K, N, true, 11);
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [rows, K]);
    const blocks = K / 32;
    const inputs = [
      x,
      g.weight('codes', 'uint8', [N, blocks, 16], async () => p.q.codes),
      g.weight('scales', 'float32', [N, blocks], async () => p.q.scales),
      g.weight('zero_points', 'uint8', [N, Math.ceil(blocks / 2)], async () => p.q.zeroPoints),
      '',
      g.weight('bias', 'float32', [N], async () => p.bias!),
    ];
    const product = g.node('MatMulNBits', inputs, { K, N, bits: 4, block_size: 32, accuracy_level: 4 }, { domain: 'com.microsoft' });
    g.output(product, 'y', 'float32', [rows, N]);
    const expected = await runInOnnxRuntime(g, { x: new OrtTensor('float32', p.x, [rows, K]) });
    const y = runKernel(await freshHeap(), p);
    let worst = 0;
    let largest = 0;
    for (let i = 0; i < y.length; i++) {
      worst = Math.max(worst, Math.abs(y[i]! - expected[i]!));
      largest = Math.max(largest, Math.abs(expected[i]!));
    }
    // Here it agrees to float rounding (1e-6); the margin allows for another CPU's kernel rounding differently.
    expect(worst / largest).toBeLessThan(3e-3);
  });

  it('stays within what int8 activations allow of the float product of the dequantized weights', async () => {
    const [rows, K, N] = [3, 2048, 37];
    const p = problem(rows, K, N, true, 13);
    const w = dequantizeBlockwise(p.q, N, K);
    const y = runKernel(await freshHeap(), p);
    for (let m = 0; m < rows; m++) {
      for (let n = 0; n < N; n++) {
        // Each activation is off by at most half its block's step, max|a| / 254.
        let exact = p.bias![n]!;
        let bound = 0;
        for (let b = 0; b < K / 32; b++) {
          let max = 0;
          for (let i = 0; i < 32; i++) max = Math.max(max, Math.abs(p.x[m * K + b * 32 + i]!));
          for (let i = 0; i < 32; i++) {
            const k = b * 32 + i;
            exact += p.x[m * K + k]! * w[n * K + k]!;
            bound += (Math.abs(w[n * K + k]!) * max) / 254;
          }
        }
        expect(Math.abs(y[m * N + n]! - exact)).toBeLessThanOrEqual(bound * 1.001 + 1e-5);
      }
    }
  });
});

describe('linear-shared.wasm', () => {
  it('runs on two worker threads over one shared memory, each on half of the columns, as the plain build does alone', async () => {
    const [rows, K, N] = [3, 2048, 101];
    const p = problem(rows, K, N, true, 17);
    const expected = runKernel(await freshHeap(), p);

    const heap = await Heap.over(shared, 16 << 20, true);
    expect(heap.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    const { kernel } = heap;
    const xq = heap.alloc(kernel.quantizedActivationBytes(rows, K));
    const y = heap.alloc(rows * N * 4);
    kernel.quantizeActivations(heap.put(p.x), rows, K, xq);
    const args = [y, xq, rows, K, heap.put(p.q.codes), heap.put(p.q.scales), heap.put(p.q.zeroPoints), heap.put(p.bias!), N];
    const half = N >> 1;
    await runOnWorkers(shared, heap, 'matmulInt4', args, [
      [0, half],
      [half, N],
    ]);
    expect(new Float32Array(heap.memory.buffer, y, rows * N).slice()).toEqual(expected);
  });
});
