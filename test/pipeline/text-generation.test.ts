// The pipeline as the model card uses it, on the small trained model (whose config, like the 1.3B's,
// asks the pipeline to sample: do_sample true, max_length 50, temperature 0.9).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline, type TextGenerationPipeline } from '../../src/pipeline/index.js';
import { fixture, readReference } from '../helpers/fixtures.js';

const ref = readReference('tiny-trained');
const greedyCase = ref.greedy.cases[0];

describe('pipeline("text-generation")', () => {
  let generator: TextGenerationPipeline;
  beforeAll(async () => {
    generator = await pipeline('text-generation', fixture('tiny-trained'));
  });
  afterAll(() => generator.dispose());

  it('returns [{ generated_text }] with the prompt, and the reference text when greedy', async () => {
    const out = await generator(greedyCase.prompt, { do_sample: false, max_new_tokens: 30 });
    expect(out).toEqual([{ generated_text: greedyCase.full_text }]);
    const continuation = await generator(greedyCase.prompt, { do_sample: false, max_new_tokens: 30, return_full_text: false });
    expect(continuation).toEqual([{ generated_text: greedyCase.new_text }]);
  });

  it("applies the config's task_specific_params: samples up to max_length 50 by default", async () => {
    const a = await generator(greedyCase.prompt, { seed: 7 });
    const b = await generator(greedyCase.prompt, { seed: 7 });
    const c = await generator(greedyCase.prompt, { seed: 8 });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
    const tokens = generator.tokenizer.encode(a[0]!.generated_text);
    expect(tokens.length).toBeGreaterThan(40);
    expect(tokens.length).toBeLessThanOrEqual(52); // 50 tokens, give or take re-tokenization at the seam
    expect(a[0]!.generated_text).not.toBe(greedyCase.full_text);
  });

  it('returns one list per prompt with num_return_sequences entries, left-padding the batch', async () => {
    const prompts = [ref.greedy.cases[1].prompt, 'In the morning we'];
    const out = await generator(prompts, { do_sample: false, max_new_tokens: 30, num_beams: 2, num_return_sequences: 2 });
    expect(out).toHaveLength(2);
    expect(out.map((o) => o.length)).toEqual([2, 2]);
    out.forEach((sequences, p) => sequences.forEach((s) => expect(s.generated_text.startsWith(prompts[p]!)).toBe(true)));
    const greedy = await generator(prompts, { do_sample: false, max_new_tokens: 30 });
    expect(greedy[0]).toEqual([{ generated_text: ref.greedy.cases[1].full_text }]);
    expect(greedy[1]).toEqual([{ generated_text: ref.greedy.cases[4].full_text }]);
  });

  it('stops at a stop string and leaves it out', async () => {
    const [out] = await generator(greedyCase.prompt, { do_sample: false, max_new_tokens: 30, stop: ['\n'] });
    expect(out!.generated_text).toBe(greedyCase.full_text.slice(0, greedyCase.full_text.indexOf('\n')));
  });

  it('cuts the text exactly before a stop string that begins inside a token, streamed or not', async () => {
    const { tokenizer, model } = generator;
    const prompt = tokenizer.encode(greedyCase.prompt);
    const [sequence] = await model.generate({ input_ids: [prompt], max_new_tokens: 30, do_sample: false });
    const newTokens = sequence!.slice(prompt.length);
    const text = tokenizer.decode(newTokens);
    // A stop string made of a token's text without its first character: it begins inside that token.
    const { stop, at } = stopInsideToken(newTokens.map((id) => tokenizer.decode([id])), text);
    const options = { do_sample: false, max_new_tokens: 30, stop: [stop], return_full_text: false };
    expect(await generator(greedyCase.prompt, options)).toEqual([{ generated_text: text.slice(0, at) }]);
    const pieces: string[] = [];
    for await (const piece of generator.stream(greedyCase.prompt, options)) pieces.push(piece);
    expect(pieces.join('')).toBe(text.slice(0, at));
  });

  it('streams the same text piece by piece', async () => {
    const pieces: string[] = [];
    for await (const piece of generator.stream(greedyCase.prompt, { do_sample: false, max_new_tokens: 30 })) pieces.push(piece);
    expect(pieces.length).toBeGreaterThan(5);
    expect(pieces.join('')).toBe(greedyCase.new_text);
  });

  it('rejects invalid options with a clear error', async () => {
    await expect(generator('Hi', { do_sample: true, top_p: 1.5 })).rejects.toThrow('top_p');
    await expect(generator('Hi', { max_new_tokens: 300 })).rejects.toThrow(/256/);
  });
});

/** A stop string that begins one character into a token of at least 3 characters and occurs nowhere earlier. */
function stopInsideToken(tokenTexts: string[], text: string): { stop: string; at: number } {
  let offset = 0;
  for (const piece of tokenTexts) {
    const stop = piece.slice(1);
    if (piece.length >= 3 && text.indexOf(stop) === offset + 1) return { stop, at: offset + 1 };
    offset += piece.length;
  }
  throw new Error('no token of 3 or more characters in the generated text');
}
