import { describe, expect, it } from 'vitest';
import { generate, TextIteratorStreamer, TextStreamer } from '../../src/generation/index.js';
import { chain, FakeModel } from './fake-model.js';

/** Byte-level vocabulary like GPT-2's: 😀 (F0 9F 98 80) and 你 (E4 BD A0) are split across tokens. */
const TOKEN_BYTES: number[][] = [
  [], // 0: eos, decodes to nothing here
  [0x48, 0x69], // 1: "Hi"
  [0x20, 0xf0, 0x9f], // 2: " " + first half of 😀
  [0x98], // 3: third byte of 😀
  [0x80, 0x21], // 4: last byte of 😀 + "!"
  [0xe4], // 5: first byte of 你
  [0xbd, 0xa0], // 6: rest of 你
];
const decodeBytes = (ids: number[]) => Uint8Array.from(ids.flatMap((id) => TOKEN_BYTES[id]));
const SEQUENCE = [1, 2, 3, 4, 5, 6];
const FULL_TEXT = 'Hi 😀!你';

function isWellFormed(text: string): boolean {
  return !text.includes('\uFFFD') && !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(text);
}

describe('TextStreamer', () => {
  it('never emits part of a character split across tokens', () => {
    const pieces: string[] = [];
    const streamer = new TextStreamer(decodeBytes, (text) => pieces.push(text));
    for (const id of SEQUENCE) streamer.put([id]);
    streamer.end();
    expect(pieces).toEqual(['Hi', ' ', '😀!', '你']);
    for (const piece of pieces) expect(isWellFormed(piece)).toBe(true);
    expect(pieces.join('')).toBe(FULL_TEXT);
  });

  it('skips special ids and flushes an unfinished character as U+FFFD at the end', () => {
    const pieces: string[] = [];
    const streamer = new TextStreamer(decodeBytes, (text) => pieces.push(text), { skipSpecialIds: new Set([0]) });
    streamer.put([1, 0]);
    streamer.put([5]);
    streamer.end();
    expect(pieces).toEqual(['Hi', '\uFFFD']);
  });
});

describe('TextIteratorStreamer', () => {
  it('yields the same pieces as TextStreamer', async () => {
    const streamer = new TextIteratorStreamer(decodeBytes);
    const collected = (async () => {
      const pieces: string[] = [];
      for await (const piece of streamer) pieces.push(piece);
      return pieces;
    })();
    for (const id of SEQUENCE) {
      streamer.put([id]);
      await Promise.resolve();
    }
    streamer.end();
    expect(await collected).toEqual(['Hi', ' ', '😀!', '你']);
  });

  it('streams generate() output while it runs and ends with it', async () => {
    const model = new FakeModel(7, chain(7, { 1: 2, 2: 3, 3: 4, 4: 5, 5: 6, 6: 0 }));
    const streamer = new TextIteratorStreamer(decodeBytes, { skipSpecialIds: new Set([0]) });
    const running = generate(model, { input_ids: [[1]], config: { max_new_tokens: 10, eos_token_id: 0 }, streamer });
    const pieces: string[] = [];
    for await (const piece of streamer) pieces.push(piece);
    const [row] = await running;
    expect(row).toEqual([1, 2, 3, 4, 5, 6, 0]);
    expect(pieces).toEqual([' ', '😀!', '你']);
    expect(pieces.join('')).toBe(new TextDecoder().decode(decodeBytes(row.slice(1))));
  });

  it('rethrows a generation failure to the consumer', async () => {
    const streamer = new TextIteratorStreamer(decodeBytes);
    const model = new FakeModel(7, chain(7, {}));
    const running = generate(model, { input_ids: [[1]], config: { top_p: 2 }, streamer });
    await expect(running).rejects.toThrow(/top_p/);
    await expect(
      (async () => {
        for await (const piece of streamer) void piece;
      })(),
    ).rejects.toThrow(/top_p/);
  });
});
