import { describe, expect, it } from 'vitest';
import { generate } from '../../src/generation/index.js';
import { createRandom, sampleWithoutReplacement, Xoshiro128 } from '../../src/generation/sampling.js';
import { constant, FakeModel } from './fake-model.js';

/** Upper 0.1% points of the chi-square distribution by degrees of freedom. */
const CHI_SQUARE_999: Record<number, number> = {
  1: 10.828, 2: 13.816, 3: 16.266, 4: 18.467, 5: 20.515, 6: 22.458, 7: 24.322, 8: 26.124, 9: 27.877, 19: 43.82,
};

/**
 * Pearson's test of observed counts against probabilities. Bins expected below 5 are pooled so the
 * chi-square approximation holds; a token of probability 0 must never be seen.
 */
function expectDistribution(counts: number[], probs: number[]): void {
  const total = counts.reduce((a, b) => a + b, 0);
  const bins: { observed: number; expected: number }[] = [];
  let pooled = { observed: 0, expected: 0 };
  probs.forEach((p, token) => {
    if (p === 0) {
      expect(counts[token], `token ${token} is excluded but was drawn`).toBe(0);
      return;
    }
    const bin = { observed: counts[token], expected: p * total };
    if (bin.expected >= 5) bins.push(bin);
    else pooled = { observed: pooled.observed + bin.observed, expected: pooled.expected + bin.expected };
  });
  if (pooled.expected > 0) bins.push(pooled);
  const statistic = bins.reduce((sum, { observed, expected }) => sum + (observed - expected) ** 2 / expected, 0);
  expect(statistic).toBeLessThan(CHI_SQUARE_999[bins.length - 1]);
}

function normalise(weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w / sum);
}

const LOGITS = [2, 1, 0.5, 0, -1, -3];
const DRAWS = 4000;

/** DRAWS single-token samples: one prompt expanded to DRAWS rows. */
async function drawCounts(config: Record<string, unknown>): Promise<number[]> {
  const rows = await generate(new FakeModel(6, constant(LOGITS)), {
    input_ids: [[0]],
    config: { do_sample: true, num_return_sequences: DRAWS, max_new_tokens: 1, top_k: 0, seed: 1234, ...config },
  });
  const counts = new Array<number>(6).fill(0);
  for (const row of rows) counts[row[1]]++;
  return counts;
}

describe('xoshiro128**', () => {
  it('follows the reference algorithm', () => {
    const random = new Xoshiro128(Uint32Array.from([1, 2, 3, 4]));
    expect([random.nextUint32(), random.nextUint32(), random.nextUint32()]).toEqual([11520, 0, 5927040]);
  });

  it('gives uniform floats in [0, 1)', () => {
    const random = createRandom(99);
    const counts = new Array<number>(20).fill(0);
    let outside = 0;
    for (let i = 0; i < 100_000; i++) {
      const x = random.nextFloat();
      if (x < 0 || x >= 1) outside++;
      else counts[Math.floor(x * 20)]++;
    }
    expect(outside).toBe(0);
    expectDistribution(counts, new Array<number>(20).fill(1 / 20));
  });

  it('same seed, same stream; nearby seeds, unrelated streams', () => {
    const a = createRandom(7);
    const b = createRandom(7);
    const c = createRandom(8);
    const streamA = Array.from({ length: 8 }, () => a.nextUint32());
    expect(Array.from({ length: 8 }, () => b.nextUint32())).toEqual(streamA);
    expect(Array.from({ length: 8 }, () => c.nextUint32())).not.toEqual(streamA);
  });

  it('sampling without replacement never repeats and skips zero weights', () => {
    const drawn = sampleWithoutReplacement([0.5, 0, 0.3, 0.2], 4, createRandom(5));
    expect(drawn.sort()).toEqual([0, 2, 3]);
  });
});

describe('sampling distribution (4000 draws, chi-square at the 0.1% level)', () => {
  const exp = (scale: number) => LOGITS.map((logit) => Math.exp(logit / scale));

  it('temperature 1 draws from softmax(logits)', async () => {
    expectDistribution(await drawCounts({}), normalise(exp(1)));
  });

  it('temperature 0.7 sharpens to softmax(logits / 0.7)', async () => {
    expectDistribution(await drawCounts({ temperature: 0.7 }), normalise(exp(0.7)));
  });

  it('top_k 3 after temperature: only the 3 best, renormalised', async () => {
    const weights = exp(0.7).map((w, token) => (token < 3 ? w : 0));
    expectDistribution(await drawCounts({ temperature: 0.7, top_k: 3 }), normalise(weights));
  });

  it('top_p 0.9 drops the tail of mass <= 0.1 (tokens 3..5 hold .076 + .028 + .004 -> only 4, 5 go)', async () => {
    // softmax(LOGITS) = [.5609, .2063, .1252, .0759, .0279, .0038]; ascending tail sums .0038, .0317, .1076
    const weights = exp(1).map((w, token) => (token < 4 ? w : 0));
    expectDistribution(await drawCounts({ top_p: 0.9 }), normalise(weights));
  });

  it('typical_p 0.6 keeps the two tokens closest to the entropy', async () => {
    // H = 1.2267; |-ln p - H| = .649, .352, .851, 1.352, 2.352, 4.35 -> order 1, 0, ...; mass .206 < .6 <= .767
    const weights = exp(1).map((w, token) => (token < 2 ? w : 0));
    expectDistribution(await drawCounts({ typical_p: 0.6 }), normalise(weights));
  });
});

describe('seeds', () => {
  const flat = constant([0, 0, 0, 0, 0, 0]);
  const run = (seed?: number) =>
    generate(new FakeModel(6, flat), { input_ids: [[0]], config: { do_sample: true, max_new_tokens: 40, seed } });

  it('the same seed reproduces the output, different seeds differ', async () => {
    const first = await run(42);
    expect(await run(42)).toEqual(first);
    expect(await run(43)).not.toEqual(first);
  });

  it('without a seed runs differ', async () => {
    expect(await run()).not.toEqual(await run());
  });

  it('temperature 0 with do_sample is greedy', async () => {
    const model = new FakeModel(6, constant(LOGITS));
    const rows = await generate(model, { input_ids: [[3]], config: { do_sample: true, temperature: 0, max_new_tokens: 4 } });
    expect(rows).toEqual([[3, 0, 0, 0, 0]]);
  });
});
