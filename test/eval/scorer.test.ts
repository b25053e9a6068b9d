import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rollingWindows, type TokenRequest } from '../../src/eval/requests.js';
import { isFirstArgmax, scoreRequests } from '../../src/eval/scorer.js';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { fixture } from '../helpers/fixtures.js';
import { FakeModel, referenceScore } from './helpers.js';

/** Deterministic pseudo-random ids. */
function ids(count: number, seed: number, vocab: number): number[] {
  return Array.from({ length: count }, (_, i) => (seed * 7919 + i * 104729 + ((i * i) % 13)) % vocab);
}

/** The continuation the model itself would produce greedily after `context`. */
async function greedyContinuation(model: FakeModel | GPTNeoForCausalLM, context: number[], length: number): Promise<number[]> {
  const tokens = [...context];
  const V = model.config.vocab_size;
  for (let i = 0; i < length; i++) {
    const { logits } = await model.forward({ input_ids: [tokens] });
    const last = logits.data.subarray((tokens.length - 1) * V, tokens.length * V);
    let best = 0;
    last.forEach((x, v) => {
      if (x > last[best]!) best = v;
    });
    tokens.push(best);
  }
  return tokens.slice(context.length);
}

/**
 * A mix that exercises every path: multiple-choice groups with continuations of different lengths (shared
 * context + reorder), single-token continuations only (no second pass), lone requests of very different
 * lengths (left padding), rolling windows that fill the whole context, and greedy continuations.
 */
async function requestMix(model: FakeModel | GPTNeoForCausalLM): Promise<TokenRequest[]> {
  const V = model.config.vocab_size;
  const M = model.config.max_position_embeddings;
  const sharedContext = ids(9, 1, V);
  const greedy = await greedyContinuation(model, ids(5, 4, V), 3);
  return [
    { contextIds: sharedContext, continuationIds: ids(3, 2, V) },
    { contextIds: sharedContext, continuationIds: ids(1, 3, V) },
    { contextIds: sharedContext, continuationIds: ids(6, 5, V) },
    { contextIds: ids(5, 4, V), continuationIds: greedy },
    { contextIds: ids(5, 4, V), continuationIds: [...greedy.slice(0, 2), (greedy[2]! + 1) % V] },
    { contextIds: ids(2, 6, V), continuationIds: ids(1, 7, V) },
    { contextIds: ids(2, 6, V), continuationIds: ids(1, 8, V) },
    { contextIds: ids(1, 9, V), continuationIds: ids(4, 10, V) },
    { contextIds: ids(M - 3, 11, V), continuationIds: ids(2, 12, V) },
    ...rollingWindows(ids(M + 10, 13, V), M),
  ];
}

async function expectScorerMatchesReference(model: FakeModel | GPTNeoForCausalLM, batchSize: number, tolerance: number) {
  const requests = await requestMix(model);
  const scores = await scoreRequests(model, requests, { batchSize });
  expect(scores).toHaveLength(requests.length);
  for (const [i, request] of requests.entries()) {
    const expected = await referenceScore(model, request);
    expect(Math.abs(scores[i]!.logLikelihood - expected.logLikelihood), `request ${i}`).toBeLessThan(tolerance);
    expect(scores[i]!.isGreedy, `request ${i}`).toBe(expected.isGreedy);
    expect(scores[i]!.tokenCount).toBe(request.continuationIds.length);
  }
  // The greedy continuation is greedy; changing its last token makes it not.
  expect(scores[3]!.isGreedy).toBe(true);
  expect(scores[4]!.isGreedy).toBe(false);
  return scores;
}

describe('isFirstArgmax', () => {
  it('is true only for the largest logit, the lowest id on ties (like torch.argmax)', () => {
    const rows = new Float32Array([1, 3, 3, 0, /* second row: */ 2, 0, 5, 5]);
    expect([0, 1, 2, 3].map((t) => isFirstArgmax(rows, 0, 4, t))).toEqual([false, true, false, false]);
    expect([0, 1, 2, 3].map((t) => isFirstArgmax(rows, 4, 4, t))).toEqual([false, false, true, false]);
  });
});

describe('scoreRequests on a fake model', () => {
  it.each([1, 3, 16])('equals an unbatched forward per request (batch size %i)', async (batchSize) => {
    await expectScorerMatchesReference(new FakeModel(), batchSize, 1e-9);
  });

  it('runs a shared context once and reuses its cache for every choice', async () => {
    const model = new FakeModel();
    const context = ids(20, 1, 40);
    const requests = [1, 2, 3, 4].map((seed) => ({ contextIds: context, continuationIds: ids(3, seed + 1, 40) }));
    await scoreRequests(model, requests, { batchSize: 8 });
    // One pass over the context (last position only), one over the four continuations.
    expect(model.forwardCalls).toEqual([
      { batch: 1, width: 20, allPositions: false },
      { batch: 4, width: 2, allPositions: true },
    ]);
  });

  it('needs no second pass when every continuation is one token', async () => {
    const model = new FakeModel();
    const context = ids(12, 1, 40);
    await scoreRequests(model, [3, 5, 7].map((t) => ({ contextIds: context, continuationIds: [t] })), { batchSize: 8 });
    expect(model.forwardCalls).toEqual([{ batch: 1, width: 12, allPositions: false }]);
  });

  it('runs the longest requests first and reports progress in fed tokens', async () => {
    const model = new FakeModel();
    const requests = [3, 30, 10].map((n, i) => ({ contextIds: ids(n, i, 40), continuationIds: ids(2, i + 5, 40) }));
    const progress: [number, number][] = [];
    await scoreRequests(model, requests, { batchSize: 1, onProgress: (done, total) => progress.push([done, total]) });
    expect(model.forwardCalls.filter((c) => !c.allPositions).map((c) => c.width)).toEqual([30, 10, 3]);
    // 3+1, 30+1, 10+1 tokens fed.
    expect(progress).toEqual([
      [0, 46],
      [31, 46],
      [42, 46],
      [46, 46],
    ]);
  });

  it('never exceeds the model context when batching a long context with a long continuation', async () => {
    const model = new FakeModel(32);
    const requests = [
      { contextIds: ids(30, 1, 40), continuationIds: ids(2, 2, 40) },
      { contextIds: ids(1, 3, 40), continuationIds: ids(32, 4, 40) },
    ];
    const scores = await scoreRequests(model, requests, { batchSize: 8 });
    for (const [i, request] of requests.entries()) {
      expect(scores[i]!.logLikelihood).toBeCloseTo((await referenceScore(model, request)).logLikelihood, 9);
    }
  });

  it('splits passes, even the choices of one context, to keep the returned logits under the cap', async () => {
    const model = new FakeModel();
    const context = ids(10, 1, 40);
    const requests = [1, 2, 3, 4].map((seed) => ({ contextIds: context, continuationIds: ids(5, seed + 1, 40) }));
    const scores = await scoreRequests(model, requests, { batchSize: 8, maxLogitElements: 2 * 4 * 40 });
    expect(model.forwardCalls).toEqual([
      { batch: 1, width: 10, allPositions: false },
      { batch: 2, width: 4, allPositions: true },
      { batch: 1, width: 10, allPositions: false },
      { batch: 2, width: 4, allPositions: true },
    ]);
    for (const [i, request] of requests.entries()) {
      expect(scores[i]!.logLikelihood).toBeCloseTo((await referenceScore(model, request)).logLikelihood, 9);
    }
  });

  it('rejects a request that cannot fit the context', async () => {
    const model = new FakeModel(16);
    await expect(scoreRequests(model, [{ contextIds: ids(10, 1, 40), continuationIds: ids(8, 2, 40) }], { batchSize: 1 })).rejects.toThrow(
      /does not fit the model's 16 positions/,
    );
  });
});

describe('scoreRequests on tiny-gpt2vocab', () => {
  let model: GPTNeoForCausalLM;
  beforeAll(async () => {
    model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-gpt2vocab'));
  });
  afterAll(() => model.dispose());

  it.each([1, 5])('log-likelihoods and greedy flags equal plain model.forward() (batch size %i)', async (batchSize) => {
    // Float32 logits from different batch shapes differ by rounding only.
    await expectScorerMatchesReference(model, batchSize, 2e-4);
  });
});
