// Parity with Hugging Face GPTNeoForCausalLM: every case of the reference fixtures.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { argmax, fixture, logSumExp, maxAbsDiff, readReference } from '../helpers/fixtures.js';

const TOL = 1e-4;
// fp32 runs its linear layers as convolutions over weights in memory by default, as Gemm over the mapped file without.
const CASES = [
  ...['tiny-random', 'tiny-random-fp16', 'tiny-random-bf16', 'tiny-gpt2vocab'].map((name) => ({ name, weightsInMemory: true })),
  { name: 'tiny-random', weightsInMemory: false },
];

describe.each(CASES)('$name matches the reference (weights in memory: $weightsInMemory)', ({ name, weightsInMemory }) => {
  const ref = readReference(name);
  let model: GPTNeoForCausalLM;
  beforeAll(async () => {
    model = await GPTNeoForCausalLM.from_pretrained(fixture(name), { weightsInMemory });
  });
  afterAll(() => model.dispose());

  const rowOf = (data: Float32Array, V: number, index: number) => data.subarray(index * V, (index + 1) * V);

  it.each(ref.forward as any[])('forward $name', async (c) => {
    const { logits } = await model.forward({ input_ids: c.input_ids, position_ids: c.position_ids });
    const [, T, V] = logits.dims as [number, number, number];
    expect(T).toBe(c.input_ids[0].length);
    for (let t = 0; t < T; t++) {
      const row = rowOf(logits.data, V, t);
      expect(argmax(row)).toBe(c.argmax[0][t]);
      expect(Math.abs(logSumExp(row) - c.logsumexp[0][t])).toBeLessThan(TOL);
      const top = c.top10_ids[0][t].map((id: number) => row[id]);
      expect(maxAbsDiff(top, c.top10_values[0][t])).toBeLessThan(TOL);
      if (c.logits) expect(maxAbsDiff(row, c.logits[0][t])).toBeLessThan(TOL);
      if (c.sampled_logits) {
        const sampled = ref.sampled_vocab_ids.map((id: number) => row[id]);
        expect(maxAbsDiff(sampled, c.sampled_logits[0][t])).toBeLessThan(TOL);
      }
    }
  });

  it('left-padded batch gives the unpadded logits at real positions', async () => {
    const c = ref.batch_left_padded;
    const { logits } = await model.forward({
      input_ids: c.input_ids,
      attention_mask: c.attention_mask,
      position_ids: c.position_ids,
    });
    const [B, T, V] = logits.dims as [number, number, number];
    let checked = 0;
    for (let b = 0; b < B; b++) {
      for (let t = 0; t < T; t++) {
        if (c.argmax[b][t] === null) continue;
        const row = rowOf(logits.data, V, b * T + t);
        expect(argmax(row)).toBe(c.argmax[b][t]);
        expect(Math.abs(logSumExp(row) - c.logsumexp[b][t])).toBeLessThan(TOL);
        expect(maxAbsDiff(c.top10_ids[b][t].map((id: number) => row[id]), c.top10_values[b][t])).toBeLessThan(TOL);
        checked++;
      }
    }
    expect(checked).toBe(c.attention_mask.flat().filter((m: number) => m === 1).length);
  });

  it.each(ref.loss as any[])('loss $name', async (c) => {
    const { loss } = await model.forward({ input_ids: c.input_ids, labels: c.labels });
    expect(Math.abs(loss! - c.mean_nll)).toBeLessThan(TOL);
  });

  it.each(ref.greedy as any[])('greedy generate $name', async (c) => {
    const sequences = await model.generate({
      input_ids: c.input_ids,
      attention_mask: c.attention_mask ?? undefined,
      max_new_tokens: c.max_new_tokens,
    });
    const newIds: number[][] = Array.isArray(c.new_ids[0]) ? c.new_ids : [c.new_ids];
    expect(sequences).toEqual(c.input_ids.map((row: number[], b: number) => row.concat(newIds[b]!)));
  });

  it('KV-cache decoding equals full recomputation', async () => {
    const ids: number[] = ref.forward.at(-1).input_ids[0];
    const full = await model.forward({ input_ids: [ids] });
    const V = full.logits.dims[2]!;
    const session = model.createSession(1);
    const split = 3;
    const first = await session.forward({ input_ids: [ids.slice(0, split)] }, { allPositions: true });
    expect(maxAbsDiff(first.data, full.logits.data.subarray(0, split * V))).toBeLessThan(TOL);
    for (let t = split; t < ids.length; t++) {
      const step = await session.forward({ input_ids: [[ids[t]!]] });
      expect(maxAbsDiff(step.data, rowOf(full.logits.data, V, t))).toBeLessThan(TOL);
    }
    session.dispose();
  });

  it('the cache stays exact across growth and local ring wrap-around, in chunks of any size', async () => {
    const length = 120; // beyond the first cache capacity (64) and many times the local window
    const ids = Array.from({ length }, (_, i) => (i * 7919 + 11) % 900);
    const full = await model.forward({ input_ids: [ids] });
    const V = full.logits.dims[2]!;
    const session = model.createSession(1);
    for (let start = 0, chunk = 1; start < length; start += chunk, chunk = (chunk % 13) + 2) {
      const piece = ids.slice(start, start + chunk);
      const out = await session.forward({ input_ids: [piece] }, { allPositions: true });
      expect(maxAbsDiff(out.data, full.logits.data.subarray(start * V, (start + piece.length) * V))).toBeLessThan(TOL);
    }
    session.dispose();
  });
});
