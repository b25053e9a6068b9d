import { describe, expect, it } from 'vitest';
import { generate, GenerationError } from '../../src/generation/index.js';
import { chain, FakeModel, markov, type NextLogits } from './fake-model.js';

const EOS = 0;

describe('greedy decoding and lengths', () => {
  // 1 -> 2 -> 3 -> 4 -> 5 -> 1 ... never eos
  const cycle = chain(8, { 1: 2, 2: 3, 3: 4, 4: 5, 5: 1 });

  it('stops at max_length 20 (prompt included) when no limit is given, as transformers', async () => {
    const model = new FakeModel(8, cycle);
    const [row] = await generate(model, { input_ids: [[1, 2, 3]], config: {} });
    expect(row).toHaveLength(20);
    expect(row.slice(0, 8)).toEqual([1, 2, 3, 4, 5, 1, 2, 3]);
  });

  it('max_new_tokens wins over max_length', async () => {
    const model = new FakeModel(8, cycle);
    const [row] = await generate(model, { input_ids: [[1]], config: { max_length: 3, max_new_tokens: 5 } });
    expect(row).toEqual([1, 2, 3, 4, 5, 1]);
  });

  it('max_length counts the prompt', async () => {
    const model = new FakeModel(8, cycle);
    const [row] = await generate(model, { input_ids: [[1, 2]], config: { max_length: 4 } });
    expect(row).toEqual([1, 2, 3, 4]);
    // The last token is never fed: one forward for the prompt, one per further token.
    expect(model.lastSession.calls).toHaveLength(2);
    expect(model.lastSession.disposed).toBe(true);
  });

  it('stops at eos, keeps it, and accepts a list of eos ids', async () => {
    const model = new FakeModel(8, chain(8, { 1: 2, 2: 6, 6: 0 }));
    expect(await generate(model, { input_ids: [[1]], config: { max_new_tokens: 10, eos_token_id: 6 } })).toEqual([
      [1, 2, 6],
    ]);
    expect(
      await generate(model, { input_ids: [[1]], config: { max_new_tokens: 10, eos_token_id: [EOS, 2] } }),
    ).toEqual([[1, 2]]);
  });

  it('pads rows that finished early with pad_token_id, else with the first eos id', async () => {
    // Row [1] reaches eos after 2 tokens, row [3] never does.
    const model = new FakeModel(8, chain(8, { 1: 2, 2: EOS, 3: 4, 4: 5, 5: 3, [EOS]: 7 }));
    const request = { input_ids: [[1], [3]], config: { max_new_tokens: 4, eos_token_id: EOS } };
    expect(await generate(model, request)).toEqual([
      [1, 2, EOS, EOS, EOS],
      [3, 4, 5, 3, 4],
    ]);
    expect(await generate(model, { ...request, config: { ...request.config, pad_token_id: 6 } })).toEqual([
      [1, 2, EOS, 6, 6],
      [3, 4, 5, 3, 4],
    ]);
    // The finished row keeps being fed the pad token, with mask 1 (as transformers does).
    const fed = model.lastSession.fed();
    expect(fed[0].tokens).toEqual([1, 2, EOS, 6]);
    expect(fed[0].mask).toEqual([1, 1, 1, 1]);
  });

  it('returns all rows at the length of the longest when every row finished early', async () => {
    const model = new FakeModel(8, chain(8, { 1: 2, 2: EOS, 3: EOS }));
    expect(await generate(model, { input_ids: [[1], [3]], config: { max_new_tokens: 9, eos_token_id: EOS } })).toEqual([
      [1, 2, EOS],
      [3, EOS, EOS],
    ]);
  });

  it('min_new_tokens and min_length hold eos back', async () => {
    // eos is the favourite (logit 10) after every token; otherwise 3 is preferred (logit 5).
    const eager: NextLogits = () => [10, 0, 0, 5, 0, 0, 0, 0];
    const model = new FakeModel(8, eager);
    expect(await generate(model, { input_ids: [[1, 1]], config: { max_new_tokens: 6, eos_token_id: EOS } })).toEqual([
      [1, 1, EOS],
    ]);
    expect(
      await generate(model, { input_ids: [[1, 1]], config: { max_new_tokens: 6, min_new_tokens: 2, eos_token_id: EOS } }),
    ).toEqual([[1, 1, 3, 3, EOS]]);
    // min_length counts the prompt: total length 5 before eos is allowed.
    expect(
      await generate(model, { input_ids: [[1, 1]], config: { max_new_tokens: 6, min_length: 5, eos_token_id: EOS } }),
    ).toEqual([[1, 1, 3, 3, 3, EOS]]);
  });

  it('repetition_penalty, no_repeat_ngram_size and bad_words_ids steer greedy choices', async () => {
    // Token 1 always has logit 2, token 2 logit 1.5, token 3 logit 1.
    const flat: NextLogits = () => [-5, 2, 1.5, 1];
    const model = new FakeModel(4, flat);
    const base = { input_ids: [[3]], config: { max_new_tokens: 4 } };
    expect(await generate(model, base)).toEqual([[3, 1, 1, 1, 1]]);
    // Penalty 2: seen tokens score 2/2 = 1 and 1.5/2 = .75, so 1, then 2 (1.5 > 1), then 1 (1 > .75) ...
    // prompt token 3 is penalised too (1 -> .5).
    expect(await generate(model, { ...base, config: { max_new_tokens: 4, repetition_penalty: 2 } })).toEqual([
      [3, 1, 2, 1, 1],
    ]);
    // No repeated bigram: 3 1 1 then (1,1) is banned -> 2, then (2,1)? free -> 1, then (1,1) banned, (1,2) banned -> 3.
    expect(await generate(model, { ...base, config: { max_new_tokens: 5, no_repeat_ngram_size: 2 } })).toEqual([
      [3, 1, 1, 2, 1, 3],
    ]);
    expect(await generate(model, { ...base, config: { max_new_tokens: 3, bad_words_ids: [[1]] } })).toEqual([
      [3, 2, 2, 2],
    ]);
  });
});

describe('batches, padding and positions', () => {
  it('feeds position_ids = cumsum(mask) - 1 (pads at 1) and grows the mask by one per step', async () => {
    const model = new FakeModel(8, chain(8, { 3: 4, 4: 5, 5: 6, 6: 7, 7: 3 }));
    const rows = await generate(model, {
      input_ids: [
        [EOS, EOS, 3],
        [1, 2, 3],
      ],
      attention_mask: [
        [0, 0, 1],
        [1, 1, 1],
      ],
      config: { max_new_tokens: 3 },
    });
    expect(rows).toEqual([
      [EOS, EOS, 3, 4, 5, 6],
      [1, 2, 3, 4, 5, 6],
    ]);
    const calls = model.lastSession.calls;
    expect(calls.map((call) => call.position_ids)).toEqual([
      [
        [1, 1, 0],
        [0, 1, 2],
      ],
      [[1], [3]],
      [[2], [4]],
    ]);
    expect(calls.map((call) => call.attention_mask)).toEqual([
      [
        [0, 0, 1],
        [1, 1, 1],
      ],
      [
        [0, 0, 1, 1],
        [1, 1, 1, 1],
      ],
      [
        [0, 0, 1, 1, 1],
        [1, 1, 1, 1, 1],
      ],
    ]);
    expect(calls.map((call) => call.input_ids)).toEqual([
      [
        [EOS, EOS, 3],
        [1, 2, 3],
      ],
      [[4], [4]],
      [[5], [5]],
    ]);
  });

  it('a left-padded row generates what it generates alone (position-dependent model, penalties on)', async () => {
    // The next token depends on the last token and its position, so wrong positions show up.
    const positional: NextLogits = (row) => {
      const last = row.tokens[row.tokens.length - 1];
      const position = row.positions[row.positions.length - 1];
      return Array.from({ length: 9 }, (_, token) => Math.sin(token * 1.7 + last * 0.9 + position * 2.3) * 3);
    };
    const config = { max_new_tokens: 6, repetition_penalty: 1.3, no_repeat_ngram_size: 2 };
    const alone = await generate(new FakeModel(9, positional), { input_ids: [[5, 6]], config });
    const batched = await generate(new FakeModel(9, positional), {
      input_ids: [
        [EOS, EOS, 5, 6],
        [1, 2, 3, 4],
      ],
      attention_mask: [
        [0, 0, 1, 1],
        [1, 1, 1, 1],
      ],
      config,
    });
    expect(batched[0].slice(2)).toEqual(alone[0]);
  });

  it('num_return_sequences expands each prompt by reordering its cache, rows grouped by prompt', async () => {
    const model = new FakeModel(8, () => [0, 1, 1, 1, 1, 1, 1, 1]);
    const rows = await generate(model, {
      input_ids: [[1], [2]],
      config: { do_sample: true, num_return_sequences: 3, max_new_tokens: 4, seed: 3 },
    });
    expect(rows).toHaveLength(6);
    rows.forEach((row, i) => {
      expect(row).toHaveLength(5);
      expect(row[0]).toBe(i < 3 ? 1 : 2);
    });
    const session = model.lastSession;
    expect(session.calls[0].input_ids).toEqual([[1], [2]]); // prompt computed once per prompt
    expect(session.reorders[0]).toEqual([0, 0, 0, 1, 1, 1]);
    expect(session.batchSize).toBe(6);
  });
});

describe('request checks', () => {
  const model = new FakeModel(8, chain(8, {}));
  const cases: [string, Parameters<typeof generate>[1], RegExp][] = [
    ['ragged rows', { input_ids: [[1, 2], [1]], config: {} }, /same length/],
    ['out-of-vocab id', { input_ids: [[9]], config: {} }, /vocabulary/],
    ['right padding', { input_ids: [[1, 2]], attention_mask: [[1, 0]], config: {} }, /left padding/],
    ['empty prompt', { input_ids: [[]], config: {} }, /must not be empty/],
    ['eos outside vocab', { input_ids: [[1]], config: { eos_token_id: 8 } }, /eos_token_id token 8 is outside the vocabulary \(0\.\.7\)/],
    ['too long', { input_ids: [[1]], config: { max_new_tokens: 64 } }, /max_new_tokens \(64\).*context window of 64.*at most 63/],
  ];
  for (const [name, request, message] of cases) {
    it(`rejects ${name}`, async () => {
      await expect(generate(model, request)).rejects.toThrow(GenerationError);
      await expect(generate(model, request)).rejects.toThrow(message);
    });
  }
});

describe('markov helper sanity', () => {
  it('greedy follows the most likely chain', async () => {
    const model = new FakeModel(4, markov(4, { 1: { 2: 0.6, 3: 0.4 }, 2: { 3: 0.9, 0: 0.1 }, 3: { 0: 1 } }));
    expect(await generate(model, { input_ids: [[1]], config: { max_new_tokens: 5, eos_token_id: 0 } })).toEqual([
      [1, 2, 3, 0],
    ]);
  });
});
