import { describe, expect, it } from 'vitest';
import { generate, GenerationError, type TokenStreamer } from '../../src/generation/index.js';
import { StopStringMatcher } from '../../src/generation/stopping.js';
import { chain, FakeModel, markov } from './fake-model.js';

const VOCAB = ['<eos>', 'Hello', ' world', '\n', 'Bye', 'c\n', 'x', '\n', '!', ' END', ' again'];
const decode = (ids: number[]) => ids.map((id) => VOCAB[id]).join('');
const EOS = 0;

class RecordingStreamer implements TokenStreamer {
  readonly puts: number[][] = [];
  ends = 0;
  put(tokenIds: number[]): void {
    this.puts.push([...tokenIds]);
  }
  end(): void {
    this.ends++;
  }
}

describe('stop strings', () => {
  const model = () => new FakeModel(VOCAB.length, chain(VOCAB.length, { 6: 2, 2: 3, 3: 7, 7: 8, 1: 5, 5: 8 }));

  it('a stop string spanning two tokens ends the row and is cut from the output', async () => {
    const fake = model();
    const streamer = new RecordingStreamer();
    // x -> " world" -> "\n" -> "\n": the text " world\n\n" contains "\n\n" from the second new token on.
    const rows = await generate(fake, {
      input_ids: [[6]],
      config: { max_new_tokens: 8, stop: ['\n\n'], eos_token_id: EOS },
      decode,
      streamer,
    });
    expect(rows).toEqual([[6, 2]]);
    expect(decode(rows[0].slice(1))).toBe(' world');
    expect(fake.lastSession.calls).toHaveLength(3); // stopped right after the third new token
    // The stream never showed the first "\n": it was held back until the stop string decided its fate.
    expect(streamer.puts).toEqual([[2]]);
    expect(streamer.ends).toBe(1);
  });

  it('drops a token in which the stop string starts', async () => {
    // x -> "Hello" -> "c\n": the stop string "\n" starts inside "c\n", so that token goes and "c" is lost.
    const midToken = await generate(new FakeModel(VOCAB.length, chain(VOCAB.length, { 6: 1, 1: 5, 5: 8 })), {
      input_ids: [[6]],
      config: { max_new_tokens: 8, stop: ['\n'], eos_token_id: EOS },
      decode,
    });
    expect(midToken).toEqual([[6, 1]]);
    // "o w" starts inside the first new token: nothing is kept.
    const firstToken = await generate(new FakeModel(VOCAB.length, chain(VOCAB.length, { 6: 1, 1: 2, 2: 8 })), {
      input_ids: [[6]],
      config: { max_new_tokens: 8, stop: ['o w'], eos_token_id: EOS },
      decode,
    });
    expect(firstToken).toEqual([[6]]);
  });

  it('rows of a batch stop at different steps and are padded on the right', async () => {
    // Row A: x -> " world" -> " END" (stop at step 2). Row B: Bye -> "!" -> "\n" -> " again" -> " END" (step 4).
    const fake = new FakeModel(VOCAB.length, chain(VOCAB.length, { 6: 2, 2: 9, 9: 8, 4: 8, 8: 3, 3: 10, 10: 9 }));
    const streamer = new RecordingStreamer();
    const rows = await generate(fake, {
      input_ids: [[6], [4]],
      config: { max_new_tokens: 6, stop: [' END'], eos_token_id: EOS },
      decode,
      streamer,
    });
    expect(rows).toEqual([
      [6, 2, EOS, EOS],
      [4, 8, 3, 10],
    ]);
    // Row A kept running on pad tokens after its stop; row B was fed its own tokens.
    expect(fake.lastSession.fed().map((row) => row.tokens)).toEqual([
      [6, 2, 9, EOS],
      [4, 8, 3, 10],
    ]);
    expect(streamer.puts.flat()).toEqual([2]);
  });

  it('with beams, a candidate completing a stop string finishes like eos, cut before the stop string', async () => {
    // The length-penalty model of the beam tests: with length_penalty 2 the winner is P B C E, but "c"
    // is a stop string, so B C finishes at step 2 as [B] (score -1.3093 / 2^2) and P A E wins.
    const [E, A, B, C, P] = [0, 1, 2, 3, 4];
    const letters = ['', 'a', 'b', 'c', 'p', '?'];
    const fake = new FakeModel(
      6,
      markov(6, {
        [P]: { [A]: 0.5, [B]: 0.3, [E]: 0.2 },
        [A]: { [E]: 0.9, [A]: 0.05, [B]: 0.05 },
        [B]: { [C]: 0.9, [E]: 0.1 },
        [C]: { [E]: 0.9, [C]: 0.1 },
      }),
    );
    const rows = await generate(fake, {
      input_ids: [[P]],
      config: { num_beams: 2, num_return_sequences: 2, eos_token_id: E, max_new_tokens: 3, length_penalty: 2, stop: ['c'] },
      decode: (ids) => ids.map((id) => letters[id]).join(''),
    });
    expect(rows).toEqual([
      [P, A, E],
      [P, B, E],
    ]);
  });

  it('needs a decode function, and a pad or eos token to fill stopped rows', async () => {
    const request = { input_ids: [[6]], config: { stop: ['\n'] } };
    await expect(generate(model(), { ...request, config: { ...request.config, eos_token_id: EOS } })).rejects.toThrow(
      /decode function/,
    );
    await expect(generate(model(), { ...request, decode })).rejects.toThrow(GenerationError);
    await expect(generate(model(), { ...request, decode })).rejects.toThrow(/pad_token_id or eos_token_id/);
  });
});

describe('StopStringMatcher', () => {
  const matcher = new StopStringMatcher(['\n\n', ' END'], decode);

  it('finds the earliest stop string and the tokens before it', () => {
    expect(matcher.findStop([1, 2])).toBeNull();
    expect(matcher.findStop([1, 3, 7, 9])).toBe(1);
    expect(matcher.findStop([1, 9, 3, 7])).toBe(1);
  });

  it('settles only tokens that cannot become part of a stop string', () => {
    expect(matcher.settledCount([1, 2])).toBe(2);
    expect(matcher.settledCount([1, 3])).toBe(1); // "\n" may start "\n\n"
    expect(matcher.settledCount([1, 3, 1])).toBe(3);
  });

  it('holds back a character still arriving as bytes', () => {
    // Token 1 decodes alone to a replacement character; with token 2 it is "é".
    const bytesDecode = (ids: number[]) => new TextDecoder().decode(Uint8Array.from(ids.flatMap((id) => [[0x61], [0xc3], [0xa9]][id])));
    const accent = new StopStringMatcher(['é!'], bytesDecode);
    expect(accent.settledCount([0, 1])).toBe(1);
    expect(accent.settledCount([0, 1, 2])).toBe(1); // "aé" ends with the start of "é!"
    expect(accent.findStop([0, 1, 2, 0])).toBeNull();
  });
});
