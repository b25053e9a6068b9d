// generate()'s output_scores / return_dict_in_generate: the model's log-probabilities of each chosen token and
// of the best alternatives, per sequence and step, on a Markov model whose log-probabilities are known exactly.
import { describe, expect, it } from 'vitest';
import { generateOutput, GenerationError } from '../../src/generation/index.js';
import { FakeModel, markov } from './fake-model.js';

const EOS = 0;
// 1 -> 2 (0.6) | 3 (0.3) | 0 (0.1); 2 -> 3 (0.5) | 1 (0.5); 3 -> eos (0.9) | 1 (0.1)
const model = () =>
  new FakeModel(4, markov(4, { 1: { 2: 0.6, 3: 0.3, 0: 0.1 }, 2: { 3: 0.5, 1: 0.5 }, 3: { 0: 0.9, 1: 0.1 } }));

describe('output_scores', () => {
  it("gives each greedy step's token log-probability and the top alternatives, most likely first", async () => {
    const out = await generateOutput(model(), {
      input_ids: [[1]],
      config: { max_new_tokens: 5, eos_token_id: EOS, output_scores: true, top_logprobs: 2 },
    });
    expect(out.sequences).toEqual([[1, 2, 1, 2, 1, 2]]);
    const steps = out.scores![0]!;
    expect(steps.map((s) => s.token)).toEqual([2, 1, 2, 1, 2]);
    expect(steps[0]!.logprob).toBeCloseTo(Math.log(0.6), 6);
    expect(steps[0]!.top).toEqual([
      { token: 2, logprob: expect.closeTo(Math.log(0.6), 6) },
      { token: 3, logprob: expect.closeTo(Math.log(0.3), 6) },
    ]);
    // A tie (2 -> 1 or 3 at 0.5 each) lists the lower id first, the one argmax picks.
    expect(steps[1]!.top.map((t) => t.token)).toEqual([1, 3]);
  });

  it('stops the scores where a row finished, and samples the same tokens with or without them', async () => {
    const config = { max_new_tokens: 6, eos_token_id: EOS, do_sample: true, seed: 3, num_return_sequences: 3, top_k: 0 };
    const plain = await generateOutput(model(), { input_ids: [[3]], config });
    const scored = await generateOutput(model(), { input_ids: [[3]], config: { ...config, output_scores: true } });
    expect(plain.scores).toBeUndefined();
    expect(scored.sequences).toEqual(plain.sequences);
    scored.sequences.forEach((sequence, row) => {
      const generated = sequence.slice(1);
      const kept = generated.includes(EOS) ? generated.indexOf(EOS) + 1 : generated.length;
      expect(scored.scores![row]!.map((s) => s.token)).toEqual(generated.slice(0, kept));
      expect(scored.scores![row]!.every((s) => s.top.length === 0)).toBe(true);
    });
  });

  it('is refused with beam search, and top_logprobs is bounded', async () => {
    await expect(
      generateOutput(model(), { input_ids: [[1]], config: { max_new_tokens: 2, num_beams: 2, output_scores: true } }),
    ).rejects.toThrow(GenerationError);
    await expect(generateOutput(model(), { input_ids: [[1]], config: { max_new_tokens: 2, top_logprobs: 21 } })).rejects.toThrow(
      'top_logprobs must be at most 20',
    );
  });
});
