import { describe, expect, it } from 'vitest';
import { resolveGenerationConfig, type GenerationConfig } from '../../src/generation/config.js';
import {
  applyProcessors,
  buildLogitsProcessors,
  buildLogitsWarpers,
  minLength,
  noBadWords,
  noRepeatNgram,
  repetitionPenalty,
  temperature,
  topK,
  topP,
  typicalP,
  type LogitsProcessor,
} from '../../src/generation/logits-process.js';

const NEG = -Infinity;

function run(processor: LogitsProcessor, scores: number[], tokens: number[] = [], currentLength = tokens.length): number[] {
  const array = Float64Array.from(scores);
  processor(array, { tokens, currentLength });
  return Array.from(array);
}

function resolved(config: GenerationConfig) {
  return resolveGenerationConfig(config, { promptLength: 1, maxPositions: 100 });
}

/** Logits ln p for a known distribution. */
const lnP = (probs: number[]) => probs.map(Math.log);
const kept = (scores: number[]) => scores.flatMap((score, i) => (score === NEG ? [] : [i]));

describe('repetition penalty', () => {
  it('divides positive and multiplies negative scores of every token seen, once per token', () => {
    expect(run(repetitionPenalty(2), [2, -1, 0.5, 3], [0, 1, 1])).toEqual([1, -2, 0.5, 3]);
  });
  it('below 1 it encourages repetition', () => {
    expect(run(repetitionPenalty(0.5), [2, -1, 0.5], [0, 1])).toEqual([4, -0.5, 0.5]);
  });
});

describe('no_repeat_ngram_size', () => {
  it('bans the token that would repeat a bigram', () => {
    // history 1 2 3 1: the bigram (1, 2) exists, so after 1 the token 2 is banned.
    expect(run(noRepeatNgram(2), [0, 0, 0, 0], [1, 2, 3, 1])).toEqual([0, 0, NEG, 0]);
  });
  it('bans every continuation seen after the same prefix', () => {
    // trigrams (1,2,3) and (1,2,0) exist; the history ends with 1 2.
    expect(run(noRepeatNgram(3), [0, 0, 0, 0], [1, 2, 3, 1, 2, 0, 1, 2])).toEqual([NEG, 0, 0, NEG]);
  });
  it('does nothing while the history is shorter than n', () => {
    expect(run(noRepeatNgram(3), [0, 0], [1, 1])).toEqual([0, 0]);
  });
});

describe('bad_words_ids', () => {
  const process = noBadWords([[3], [1, 2]]);
  it('always bans single tokens and bans the last token of a sequence whose prefix was just produced', () => {
    expect(run(process, [0, 0, 0, 0], [0, 1])).toEqual([0, 0, NEG, NEG]);
    expect(run(process, [0, 0, 0, 0], [1, 0])).toEqual([0, 0, 0, NEG]);
  });
  it('never bans eos on its own, as transformers filters [eos] out', () => {
    const processors = buildLogitsProcessors(resolved({ bad_words_ids: [[0], [2]], eos_token_id: 0 }));
    const scores = Float64Array.from([0, 0, 0]);
    applyProcessors(processors, scores, { tokens: [1], currentLength: 1 });
    expect(Array.from(scores)).toEqual([0, 0, NEG]);
  });
});

describe('min length', () => {
  it('suppresses every eos id while the total length is below the minimum', () => {
    const process = minLength(4, [0, 5]);
    expect(run(process, [1, 1, 1, 1, 1, 1], [], 3)).toEqual([NEG, 1, 1, 1, 1, NEG]);
    expect(run(process, [1, 1, 1, 1, 1, 1], [], 4)).toEqual([1, 1, 1, 1, 1, 1]);
  });
  it('min_new_tokens counts from the padded prompt length and wins over min_length', () => {
    const config = resolveGenerationConfig(
      { min_length: 2, min_new_tokens: 3, eos_token_id: 0 },
      { promptLength: 4, maxPositions: 100 },
    );
    expect(config.minLength).toBe(7);
  });
});

describe('warpers', () => {
  it('temperature divides the logits', () => {
    expect(run(temperature(0.5), [2, 1, -1])).toEqual([4, 2, -2]);
  });

  it('top_k keeps the k best and every tie with the k-th', () => {
    expect(kept(run(topK(2, 1), [1, 3, 2, 3, 0]))).toEqual([1, 3]);
    expect(kept(run(topK(3, 1), [1, 3, 2, 3, 0]))).toEqual([1, 2, 3]);
    expect(kept(run(topK(2, 1), [1, 3, 3, 3, 0]))).toEqual([1, 2, 3]);
    expect(kept(run(topK(1, 2), [1, 3, 2, 0]))).toEqual([1, 2]);
  });

  it('top_p keeps the smallest head whose mass exceeds p', () => {
    const scores = lnP([0.5, 0.3, 0.15, 0.05]);
    // Dropped from the tail while the tail mass is <= 1 - p.
    expect(kept(run(topP(0.75, 1), scores))).toEqual([0, 1]); // tail .05, .20 <= .25
    expect(kept(run(topP(0.9, 1), scores))).toEqual([0, 1, 2]); // tail .05 <= .10
    expect(kept(run(topP(0.4, 1), scores))).toEqual([0]);
    expect(kept(run(topP(0.4, 2), scores))).toEqual([0, 1]);
    expect(run(topP(0.75, 1), scores).slice(0, 2)).toEqual(scores.slice(0, 2));
  });

  it('typical_p keeps the tokens closest to the entropy until their mass reaches typical_p', () => {
    // H = 1.1421; |-ln p - H| = .449 (p .5), .062 (p .3), .755 (p .15), 1.854 (p .05)
    const scores = lnP([0.5, 0.3, 0.15, 0.05]);
    expect(kept(run(typicalP(0.2, 1), scores))).toEqual([1]); // .3 >= .2
    expect(kept(run(typicalP(0.5, 1), scores))).toEqual([0, 1]); // .3 < .5 <= .8
    expect(kept(run(typicalP(0.9, 1), scores))).toEqual([0, 1, 2]); // .8 < .9 <= .95
    expect(kept(run(typicalP(0.2, 2), scores))).toEqual([0, 1]);
  });

  it('apply in the order temperature, top_k, top_p, typical_p', () => {
    const scores = Float64Array.from(lnP([0.5, 0.3, 0.15, 0.05]));
    // Temperature 2 flattens p to [.379, .294, .208, .120] first, so top_p 0.75 keeps three tokens
    // (tail .120 <= .25 < .328); on the untempered distribution it would keep two.
    const warpers = buildLogitsWarpers(resolved({ do_sample: true, temperature: 2, top_p: 0.75, top_k: 0 }), 1);
    applyProcessors(warpers, scores, { tokens: [], currentLength: 1 });
    expect(kept(Array.from(scores))).toEqual([0, 1, 2]);
    expect(scores[0]).toBeCloseTo(Math.log(0.5) / 2, 12);
  });

  it('top_k 50 is the default when sampling, and neutral values add no warper', () => {
    expect(buildLogitsWarpers(resolved({ do_sample: true }), 1)).toHaveLength(1);
    expect(buildLogitsWarpers(resolved({ do_sample: true, top_k: 0 }), 1)).toHaveLength(0);
    expect(buildLogitsProcessors(resolved({ repetition_penalty: 1, no_repeat_ngram_size: 0 }))).toHaveLength(0);
  });
});
