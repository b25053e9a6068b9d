// 8- and 4-bit weights: quality against fp32 on the trained model, and cache consistency at the same dtype.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { type WeightFormat } from '../../src/convert/index.js';
import { openCheckpoint } from '../../src/weights/index.js';
import { dequantizeBlockwise, quantizeBlockwise, quantizePerChannel } from '../../src/convert/quantize.js';
import { argmax, fixture, maxAbsDiff, readReference } from '../helpers/fixtures.js';

const ref = readReference('tiny-trained');
/** The first 24 validation windows (6,120 scored tokens) keep the test short; the README reports these numbers. */
const WINDOWS = 24;

interface Scores {
  meanLoss: number;
  top1: number[];
}

async function score(model: GPTNeoForCausalLM): Promise<Scores> {
  const ids: number[] = ref.valid.input_ids;
  let nll = 0;
  let count = 0;
  const top1: number[] = [];
  for (let k = 0; k < WINDOWS; k++) {
    const window = ids.slice(256 * k, 256 * k + 256);
    const { logits, loss } = await model.forward({ input_ids: [window], labels: [window] });
    nll += loss! * (window.length - 1);
    count += window.length - 1;
    const V = logits.dims[2]!;
    for (let t = 0; t < window.length; t++) top1.push(argmax(logits.data.subarray(t * V, (t + 1) * V)));
  }
  return { meanLoss: nll / count, top1 };
}

describe('block quantization', () => {
  it('reconstructs every weight within half a quantization step, and zeros exactly', () => {
    const N = 3;
    const K = 70; // two full blocks and a partial one
    const weight = Float32Array.from({ length: N * K }, (_, i) => (i % 7 === 0 ? 0 : Math.sin(i * 1.7) * (1 + (i % 5))));
    for (const bits of [4, 8] as const) {
      const q = quantizeBlockwise(weight, N, K, bits, 32);
      const back = dequantizeBlockwise(q, N, K);
      for (let i = 0; i < weight.length; i++) {
        const scale = q.scales[Math.floor(i / K) * 3 + Math.floor((i % K) / 32)]!;
        expect(Math.abs(back[i]! - weight[i]!)).toBeLessThanOrEqual(scale / 2 + 1e-6);
        if (weight[i] === 0) expect(back[i]).toBe(0);
      }
    }
  });
});

describe('per-channel quantization', () => {
  it('reconstructs every weight within half a step of its row, transposed for MatMulInteger, with code sums', () => {
    const N = 3;
    const K = 50;
    const weight = Float32Array.from({ length: N * K }, (_, i) => (i % 9 === 0 ? 0 : Math.cos(i * 0.9) * (1 + (i % 4))));
    const q = quantizePerChannel(weight, N, K);
    for (let n = 0; n < N; n++) {
      let sum = 0;
      for (let k = 0; k < K; k++) {
        const code = q.codes[k * N + n]!;
        sum += code;
        expect(Math.abs(code)).toBeLessThanOrEqual(127);
        expect(Math.abs(code * q.scales[n]! - weight[n * K + k]!)).toBeLessThanOrEqual(q.scales[n]! / 2 + 1e-6);
      }
      expect(q.codeSums[n]).toBe(sum);
    }
  });
});

describe.each(['q8', 'q4'] as WeightFormat[])('%s weights on tiny-trained', (dtype) => {
  let exact: GPTNeoForCausalLM;
  let model: GPTNeoForCausalLM;
  beforeAll(async () => {
    exact = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-trained'));
    model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-trained'), { dtype });
  });
  afterAll(async () => {
    await exact.dispose();
    await model.dispose();
  });

  it('keeps validation perplexity and top-1 predictions close to fp32', async () => {
    const reference = await score(exact);
    const quantized = await score(model);
    const perplexityRatio = Math.exp(quantized.meanLoss - reference.meanLoss);
    const agreement = quantized.top1.filter((id, i) => id === reference.top1[i]).length / reference.top1.length;
    console.log(`${dtype}: perplexity ratio ${perplexityRatio.toFixed(4)}, top-1 agreement ${(agreement * 100).toFixed(2)}%`);
    expect(perplexityRatio).toBeGreaterThan(0.99); // quantization noise does not make the model better by much
    expect(perplexityRatio).toBeLessThan(dtype === 'q8' ? 1.01 : 1.1);
    if (dtype === 'q8') expect(agreement).toBeGreaterThanOrEqual(0.98);
    expect(reference.meanLoss).not.toBe(quantized.meanLoss); // the quantized graph really is different
  });

  it('scores each row of a batch as it scores the row alone (activations are quantized per token)', async () => {
    const ids: number[] = ref.valid.input_ids;
    const a = ids.slice(0, 48);
    const b = ids.slice(1000, 1048);
    const batch = await model.forward({ input_ids: [a, b] });
    const alone = [await model.forward({ input_ids: [a] }), await model.forward({ input_ids: [b] })];
    const half = batch.logits.data.length / 2;
    expect(maxAbsDiff(batch.logits.data.subarray(0, half), alone[0]!.logits.data)).toBeLessThan(1e-4);
    expect(maxAbsDiff(batch.logits.data.subarray(half), alone[1]!.logits.data)).toBeLessThan(1e-4);
  });

  // Activations are rounded to 8-bit codes (q8 per token, q4 per block inside MatMulNBits), so when the cached
  // and the full float32 attention differ in the last bit, a code can land on the other side of a rounding
  // boundary and shift the logits by a quantization step from then on. A wrong cache shifts them by far more
  // and at every step; the test tells the two apart.
  it('KV-cache decoding agrees with full recomputation at the same dtype', async () => {
    const ids: number[] = ref.greedy.cases[0].prompt_ids.concat(ref.greedy.cases[0].new_ids);
    const full = await model.forward({ input_ids: [ids] });
    const V = full.logits.dims[2]!;
    const session = model.createSession(1);
    await session.forward({ input_ids: [ids.slice(0, 4)] });
    let exactSteps = 0;
    for (let t = 4; t < ids.length; t++) {
      const step = await session.forward({ input_ids: [[ids[t]!]] });
      const expected = full.logits.data.subarray(t * V, (t + 1) * V);
      const diff = maxAbsDiff(step.data, expected);
      expect(diff).toBeLessThan(0.25);
      expect(argmax(step.data)).toBe(argmax(expected));
      if (diff < 1e-4) exactSteps++;
    }
    // The sequence is longer than the local window (32), so the local layers' ring buffer wraps too.
    expect(exactSteps).toBeGreaterThanOrEqual((ids.length - 4) * 0.75);
    session.dispose();
  });
});

describe('q8 head on tiny-trained', () => {
  it('recomputes the 64 best tokens of the int8 head with the float32 head and keeps its top-1', async () => {
    const model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-trained'), { dtype: 'q8' });
    const checkpoint = await openCheckpoint(fixture('tiny-trained'));
    const wte = await checkpoint.readFloat32('transformer.wte.weight');
    await checkpoint.close();
    const window: number[] = ref.valid.input_ids.slice(0, 32);
    const { logits, hidden_states } = await model.forward({ input_ids: [window], output_hidden_states: true });
    await model.dispose();
    const [, T, V] = logits.dims as [number, number, number];
    const last = hidden_states!.at(-1)!;
    const C = last.dims[2]!;
    let approximate = 0;
    for (let t = 0; t < T; t++) {
      const h = last.data.subarray(t * C, (t + 1) * C);
      const exact = Float32Array.from({ length: V }, (_, v) => h.reduce((sum, x, c) => sum + x * wte[v * C + c]!, 0));
      const row = logits.data.subarray(t * V, (t + 1) * V);
      const rescored = row.filter((logit, v) => Math.abs(logit - exact[v]!) < 1e-4).length;
      expect(rescored).toBeGreaterThanOrEqual(64);
      approximate += V - rescored;
      const top1 = argmax(row);
      expect(top1).toBe(argmax(exact));
      expect(Math.abs(row[top1]! - exact[top1]!)).toBeLessThan(1e-4);
    }
    // The rest of the vocabulary keeps the int8 head's logits: only 64 rows of the float32 head are read.
    expect(approximate).toBeGreaterThan((T * (V - 64)) / 2);
  });
});
