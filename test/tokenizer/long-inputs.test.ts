import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AutoTokenizer, GPT2Tokenizer } from '../../src/tokenizer/index.js';
import { GPT2_VOCAB_DIR, TINY_TRAINED_DIR } from './fixtures.js';

const MEGABYTE = 1_000_000;
let tokenizer: GPT2Tokenizer;
let englishText: string;

beforeAll(async () => {
  tokenizer = await AutoTokenizer.from_pretrained(GPT2_VOCAB_DIR);
  const valid = await readFile(join(TINY_TRAINED_DIR, 'valid.txt'), 'utf8');
  englishText = '';
  while (Buffer.byteLength(englishText) < MEGABYTE) englishText += `${valid}\n`;
});

// Speed is measured by `npm run bench`; these check that long inputs round-trip and stay exact.
describe('long inputs', () => {
  it('round-trips 1 MB of English prose', () => {
    expect(tokenizer.decode(tokenizer.encode(englishText))).toBe(englishText);
  });

  // GPT-2's rescanning BPE is quadratic in the word length; the heap-based merge keeps these linear.
  it.each([
    ['a', 'a'.repeat(MEGABYTE)],
    ['ab', 'ab'.repeat(MEGABYTE / 2)],
    ['space', `${' '.repeat(MEGABYTE)}x`],
    ['digit', '7'.repeat(MEGABYTE)],
  ])('handles a 1 MB run of "%s"', (_name, text) => {
    expect(tokenizer.decode(tokenizer.encode(text))).toBe(text);
  });

  it('gives the same ids for long runs as for short ones (ids from OpenAI encoder.py)', () => {
    expect(tokenizer.encode('a'.repeat(37))).toEqual([...Array(9).fill(24794), 64]);
    expect(tokenizer.encode('a'.repeat(MEGABYTE))).toEqual(Array(MEGABYTE / 4).fill(24794));
    expect(tokenizer.encode('!'.repeat(33))).toEqual([34635, 34635, 34635, 13896, 50184]);
    expect(tokenizer.encode('1'.repeat(25))).toEqual([26259, 26259, 26259, 26259, 26259, 1157, 16243]);
    expect(tokenizer.encode(`${' '.repeat(20)}x`)).toEqual([...Array(19).fill(220), 2124]);
  });
});
