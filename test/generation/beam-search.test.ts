/**
 * Beam search against Markov fakes whose logits are ln p, so every beam score below is a sum of
 * logarithms of the table entries. Token names: E = eos (0), A = 1, B = 2, C = 3, P = 4 (prompt).
 */
import { describe, expect, it } from 'vitest';
import { generate } from '../../src/generation/index.js';
import { BeamHypotheses } from '../../src/generation/beam-search.js';
import { FakeModel, markov, type NextLogits } from './fake-model.js';

const [E, A, B, C, P, D] = [0, 1, 2, 3, 4, 5];

/**
 * P -> A .5, B .3, E .2;  A -> E .9, A .05, B .05;  B -> C .9, E .1;  C -> E .9, C .1
 *
 * num_beams 2, max_new_tokens 3:
 * step 1: A -0.6931, B -1.2040 run (E is rank 2, never looked at)
 * step 2: AE -0.7985 (rank 0) -> hypothesis of length 2; BC -1.3093 runs; BE -3.5066 is rank 2 and
 *         is dropped; AA -3.6889 runs (ties with AB, the lower token id ranks first)
 * step 3: BCE -1.4147 (rank 0) -> hypothesis of length 3; BCC -3.6119 and AAA -6.6846 run
 * length_penalty 1: AE -0.7985/2 = -0.399 beats BCE -1.4147/3 = -0.472
 * length_penalty 2: AE -0.7985/4 = -0.200 loses to BCE -1.4147/9 = -0.157
 */
const lengthModel = markov(6, {
  [P]: { [A]: 0.5, [B]: 0.3, [E]: 0.2 },
  [A]: { [E]: 0.9, [A]: 0.05, [B]: 0.05 },
  [B]: { [C]: 0.9, [E]: 0.1 },
  [C]: { [E]: 0.9, [C]: 0.1 },
});

/**
 * P -> A .6, B .4;  A -> E .7, C .3;  B -> E .7, D .3;  C -> E .99, C .01;  D -> E .99, D .01
 *
 * num_beams 2, length_penalty 2, max_new_tokens 3:
 * step 2: AE -0.8675 and BE -1.2730 are ranks 0 and 1 -> hypotheses -0.2169 and -0.3183 (length 2);
 *         AC -1.7148 and BD -2.1203 run. Two hypotheses = num_beams:
 *         early_stopping true stops here with AE.
 *         early_stopping false: the best candidate can still reach -0.8675/2^2 = -0.2169 > worst -0.3183: go on.
 * step 3: ACE -1.7249/9 = -0.1917 enters and evicts BE; BDE -2.1303/9 = -0.2367 < worst -0.2169 is rejected.
 *         ACE wins.
 */
const earlyModel = markov(6, {
  [P]: { [A]: 0.6, [B]: 0.4 },
  [A]: { [E]: 0.7, [C]: 0.3 },
  [B]: { [E]: 0.7, [D]: 0.3 },
  [C]: { [E]: 0.99, [C]: 0.01 },
  [D]: { [E]: 0.99, [D]: 0.01 },
});

/**
 * Two eos ids, E (0) and F (5).  P -> E .46, F .44, A .05, B .05;  A -> C .9, E .1;  B -> B .85, E .15;
 * C -> C .9, E .1.   num_beams 2, length_penalty 1, max_new_tokens 6 (6 candidates per step: (1 + 2 eos) * 2).
 * step 1: E -0.7765 and F -0.8210 finish at length 1 (worst -0.8210); A, B run at -2.9957.
 * step 2: AC -3.1011, BB -3.1582 run.
 *   early_stopping false: bound -3.1011/2 = -1.55 <= worst -0.821 -> done, E wins.
 *   early_stopping 'never': bound with the longest possible length, -3.1011/6 = -0.517 > -0.821 -> go on.
 * the beams run to max length: ACCCCC -3.5226/6 = -0.5871 and BBBBBB -3.8083/6 = -0.6347 both beat
 * E and F, so ACCCCC wins.
 */
const F = 5;
const neverModel = markov(6, {
  [P]: { [E]: 0.46, [F]: 0.44, [A]: 0.05, [B]: 0.05 },
  [A]: { [C]: 0.9, [E]: 0.1 },
  [B]: { [B]: 0.85, [E]: 0.15 },
  [C]: { [C]: 0.9, [E]: 0.1 },
});

async function beams(next: NextLogits, config: Parameters<typeof generate>[1]['config'], input_ids = [[P]]) {
  return generate(new FakeModel(6, next), { input_ids, config: { num_beams: 2, eos_token_id: E, ...config } });
}

describe('beam search', () => {
  it('length_penalty 1 prefers the short hypothesis, 2 the long one', async () => {
    expect(await beams(lengthModel, { max_new_tokens: 3, length_penalty: 1 })).toEqual([[P, A, E]]);
    expect(await beams(lengthModel, { max_new_tokens: 3, length_penalty: 2 })).toEqual([[P, B, C, E]]);
    expect(await beams(lengthModel, { max_new_tokens: 3, length_penalty: 0 })).toEqual([[P, A, E]]);
  });

  it('returns the num_return_sequences best hypotheses, padded with eos on the right', async () => {
    expect(await beams(lengthModel, { max_new_tokens: 3, num_return_sequences: 2 })).toEqual([
      [P, A, E, E],
      [P, B, C, E],
    ]);
    expect(await beams(lengthModel, { max_new_tokens: 3, length_penalty: 2, num_return_sequences: 2, pad_token_id: 5 })).toEqual([
      [P, B, C, E],
      [P, A, E, 5],
    ]);
  });

  it('ignores eos candidates ranked below num_beams', async () => {
    // At step 2, BE (-3.5066) ranks 2nd after AE and BC: it is not a hypothesis. With early_stopping true,
    // counting it would complete two hypotheses and stop there; instead BCE completes the pair at step 3.
    expect(await beams(lengthModel, { max_new_tokens: 3, early_stopping: true, num_return_sequences: 2 })).toEqual([
      [P, A, E, E],
      [P, B, C, E],
    ]);
  });

  it('early_stopping true stops at num_beams hypotheses; false keeps going while a beam can do better', async () => {
    expect(await beams(earlyModel, { max_new_tokens: 3, length_penalty: 2, early_stopping: true })).toEqual([[P, A, E]]);
    expect(await beams(earlyModel, { max_new_tokens: 3, length_penalty: 2, early_stopping: false })).toEqual([
      [P, A, C, E],
    ]);
  });

  it("early_stopping 'never' bounds with max_length and finds the better long beam; false stops early", async () => {
    const model = new FakeModel(6, neverModel);
    const config = { num_beams: 2, eos_token_id: [E, F], max_new_tokens: 6, length_penalty: 1 };
    expect(await generate(model, { input_ids: [[P]], config: { ...config, early_stopping: false } })).toEqual([[P, E]]);
    // Done after two steps: the prompt forward and one step with the cache.
    expect(model.lastSession.calls).toHaveLength(2);
    expect(
      await generate(model, { input_ids: [[P]], config: { ...config, early_stopping: 'never', num_return_sequences: 2 } }),
    ).toEqual([
      [P, A, C, C, C, C, C],
      [P, B, B, B, B, B, B],
    ]);
  });

  it('expands beams by reordering the prompt cache and reorders rows as beams move', async () => {
    const model = new FakeModel(6, lengthModel);
    await generate(model, { input_ids: [[P]], config: { num_beams: 2, eos_token_id: E, max_new_tokens: 3 } });
    const session = model.lastSession;
    expect(session.reorders[0]).toEqual([0, 0]);
    // step 2 keeps BC (row 1) and AA (row 0), so the rows swap.
    expect(session.reorders).toContainEqual([1, 0]);
  });

  it('handles a left-padded batch: each prompt gets the beams it gets alone', async () => {
    const alone = await beams(lengthModel, { max_new_tokens: 3, length_penalty: 2 }, [[P]]);
    const together = await generate(new FakeModel(6, lengthModel), {
      input_ids: [
        [E, P],
        [C, P],
      ],
      attention_mask: [
        [0, 1],
        [1, 1],
      ],
      config: { num_beams: 2, eos_token_id: E, max_new_tokens: 3, length_penalty: 2 },
    });
    expect(together).toEqual([
      [E, ...alone[0]],
      [C, ...alone[0]],
    ]);
  });

  it('beam sampling draws distinct continuations and is reproducible with a seed', async () => {
    const config = { do_sample: true, seed: 11, max_new_tokens: 3, num_return_sequences: 2 };
    const first = await beams(lengthModel, config);
    expect(await beams(lengthModel, config)).toEqual(first);
    expect(first).toHaveLength(2);
    for (const row of first) expect(row[0]).toBe(P);
  });
});

describe('BeamHypotheses', () => {
  it('keeps the num_beams best by sum_logprobs / generated_length ** length_penalty', () => {
    const hypotheses = new BeamHypotheses(2, 1, false, 10);
    hypotheses.add([1], -1, 1); // -1
    hypotheses.add([2, 2], -1.5, 2); // -0.75
    hypotheses.add([3, 3, 3], -4, 3); // -1.33: worse than the worst of a full list, rejected
    hypotheses.add([4, 4, 4, 4], -2, 4); // -0.5 evicts -1
    expect(hypotheses.best(2)).toEqual([
      [4, 4, 4, 4],
      [2, 2],
    ]);
  });

  it('is done by the early_stopping rules', () => {
    const full = (earlyStopping: boolean | 'never', lengthPenalty = 1) => {
      const hypotheses = new BeamHypotheses(1, lengthPenalty, earlyStopping, 8);
      hypotheses.add([1], -1, 2); // score -0.5
      return hypotheses;
    };
    expect(new BeamHypotheses(1, 1, true, 8).isDone(0, 1)).toBe(false);
    expect(full(true).isDone(-0.1, 2)).toBe(true);
    // false: best candidate -2 at length 3 can reach -0.667 < -0.5 -> done; -1 could reach -0.333 -> not done
    expect(full(false).isDone(-2, 3)).toBe(true);
    expect(full(false).isDone(-1, 3)).toBe(false);
    // never with length_penalty > 0 bounds with max new length 8: -2/8 = -0.25 > -0.5 -> not done
    expect(full('never').isDone(-2, 3)).toBe(false);
    expect(full('never').isDone(-5, 3)).toBe(true);
  });
});
