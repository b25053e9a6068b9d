import { describe, expect, it } from 'vitest';
import { topK, topP, typicalP } from '../../src/generation/logits-process.js';
import { createRandom } from '../../src/generation/sampling.js';
import { kthLargest, largestIndices, weightedThreshold } from '../../src/generation/select.js';

describe('selection helpers', () => {
  it('kthLargest matches a sort, with ties and -Infinity', () => {
    const random = createRandom(3);
    for (let trial = 0; trial < 50; trial++) {
      const values = Array.from({ length: 1 + (trial % 17) * 13 }, () =>
        random.nextFloat() < 0.1 ? -Infinity : Math.floor(random.nextFloat() * 20),
      );
      const sorted = [...values].sort((a, b) => b - a);
      for (const k of [1, Math.ceil(values.length / 2), values.length]) expect(kthLargest(values, k)).toBe(sorted[k - 1]);
    }
  });

  it('largestIndices returns the head of the order, ties by index', () => {
    expect(largestIndices([1, 5, 3, 5, 0], 3)).toEqual([1, 3, 2]);
    expect(largestIndices([2, 2, 2], 2)).toEqual([0, 1]);
    expect(largestIndices([1, 2], 5)).toEqual([1, 0]);
  });

  it('weightedThreshold finds the smallest value whose cumulative weight passes the target', () => {
    const values = [0.4, 0.1, 0.3, 0.2];
    expect(weightedThreshold(values, values, 0.25, false)).toEqual({ value: 0.2, weightBelow: 0.1 });
    const third = weightedThreshold(values, values, 0.35, false);
    expect(third?.value).toBe(0.3);
    expect(third?.weightBelow).toBeCloseTo(0.3, 15);
    expect(weightedThreshold([3, 1, 2], [0.2, 0.5, 0.3], 0.8, true)?.value).toBe(2);
    expect(weightedThreshold([1, 2], [0.2, 0.3], 0.9, true)).toBeNull();
  });
});

/** transformers' TopPLogitsWarper, transcribed literally: ascending sort, cumulative sum, cut. */
function referenceTopP(scores: number[], p: number, minKeep: number): Set<number> {
  const order = scores.map((_, i) => i).sort((a, b) => scores[a] - scores[b] || b - a);
  const max = Math.max(...scores);
  const exps = order.map((i) => Math.exp(scores[i] - max));
  const total = exps.reduce((a, b) => a + b, 0);
  const kept = new Set<number>();
  let cumulative = 0;
  order.forEach((index, rank) => {
    cumulative += exps[rank] / total;
    if (cumulative > 1 - p || rank >= order.length - minKeep) kept.add(index);
  });
  return kept;
}

/** transformers' TypicalLogitsWarper, transcribed literally. */
function referenceTypical(scores: number[], mass: number, minKeep: number): Set<number> {
  const max = Math.max(...scores);
  const exps = scores.map((s) => Math.exp(s - max));
  const total = exps.reduce((a, b) => a + b, 0);
  const probs = exps.map((e) => e / total);
  const entropy = -probs.reduce((sum, p) => sum + (p > 0 ? p * Math.log(p) : 0), 0);
  const distance = probs.map((p) => Math.abs(-Math.log(p) - entropy));
  const order = scores.map((_, i) => i).sort((a, b) => distance[a] - distance[b] || a - b);
  let lastIndex = 0;
  let cumulative = 0;
  for (const index of order) {
    cumulative += probs[index];
    if (cumulative < mass) lastIndex++;
  }
  const cutoff = distance[order[Math.min(lastIndex, order.length - 1)]];
  return new Set(order.filter((index, rank) => distance[index] <= cutoff || rank < minKeep));
}

function keptBy(processor: (scores: Float64Array) => void, scores: number[]): Set<number> {
  const array = Float64Array.from(scores);
  processor(array);
  return new Set(scores.flatMap((_, i) => (array[i] === -Infinity ? [] : [i])));
}

describe('fast warpers equal the sort-based transformers algorithms', () => {
  const random = createRandom(2024);
  const vocabulary = (size: number, spread: number) =>
    Array.from({ length: size }, () => (random.nextFloat() - 0.5) * spread);
  const history = { tokens: [], currentLength: 1 };

  it('top_p, on peaked and flat 5000-token distributions', () => {
    for (const spread of [30, 4, 0.5]) {
      const scores = vocabulary(5000, spread);
      for (const p of [0.05, 0.5, 0.9, 0.99]) {
        for (const minKeep of [1, 3]) {
          const fast = keptBy((s) => topP(p, minKeep)(s, history), scores);
          expect(fast).toEqual(referenceTopP(scores, p, minKeep));
        }
      }
    }
  });

  it('typical_p, on peaked and flat 5000-token distributions', () => {
    for (const spread of [30, 4, 0.5]) {
      const scores = vocabulary(5000, spread);
      for (const mass of [0.05, 0.5, 0.9, 0.99]) {
        for (const minKeep of [1, 3]) {
          const fast = keptBy((s) => typicalP(mass, minKeep)(s, history), scores);
          expect(fast).toEqual(referenceTypical(scores, mass, minKeep));
        }
      }
    }
  });

  it('top_k keeps exactly the k best of distinct scores', () => {
    const scores = vocabulary(5000, 10);
    const best = new Set(scores.map((_, i) => i).sort((a, b) => scores[b] - scores[a]).slice(0, 40));
    expect(keptBy((s) => topK(40, 1)(s, history), scores)).toEqual(best);
  });
});
