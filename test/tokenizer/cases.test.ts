import { readFile } from 'node:fs/promises';
import { beforeAll, describe, expect, it } from 'vitest';
import { AutoTokenizer, GPT2Tokenizer } from '../../src/tokenizer/index.js';
import { BYTE_TO_CHAR } from '../../src/tokenizer/byte-level.js';
import {
  GPT2_VOCAB_DIR,
  TINY_TRAINED_DIR,
  casesByCategory,
  describeCase,
  readJsonFixture,
  tokenizerCases,
} from './fixtures.js';

let tokenizer: GPT2Tokenizer;
beforeAll(async () => {
  tokenizer = await AutoTokenizer.from_pretrained(GPT2_VOCAB_DIR);
});

describe('tokenizer/cases.json with vocab.json + merges.txt', () => {
  it('covers every case', () => {
    expect(tokenizerCases.cases).toHaveLength(276);
    expect(tokenizerCases.decode_cases).toHaveLength(36);
  });

  it.each(casesByCategory())('encodes category %s exactly as Hugging Face', (_category, cases) => {
    for (const testCase of cases) {
      expect(tokenizer.encode(testCase.text), describeCase(testCase)).toEqual(testCase.hf_ids ?? testCase.ids);
    }
  });

  it.each(casesByCategory())('decodes category %s back to the text', (_category, cases) => {
    for (const testCase of cases) {
      expect(tokenizer.decode(testCase.ids), describeCase(testCase)).toBe(testCase.text);
      if (testCase.hf_ids) expect(tokenizer.decode(testCase.hf_ids), describeCase(testCase)).toBe(testCase.text);
      const utf8Hex = Buffer.from(tokenizer.decodeBytes(testCase.ids)).toString('hex');
      expect(utf8Hex, describeCase(testCase)).toBe(testCase.utf8_hex);
    }
  });

  it.each(casesByCategory())('gives the byte-level tokens of category %s', (_category, cases) => {
    for (const testCase of cases) {
      expect(tokenizer.convert_ids_to_tokens(testCase.ids), describeCase(testCase)).toEqual(testCase.tokens);
    }
  });

  it.each(tokenizerCases.decode_cases)('decode_cases: $ids -> $text', ({ ids, text }) => {
    expect(tokenizer.decode(ids)).toBe(text);
  });

  it('uses GPT-2 bytes_to_unicode', () => {
    const expected = Object.entries(tokenizerCases.bytes_to_unicode).map(([byte, char]) => [Number(byte), char]);
    expect(BYTE_TO_CHAR.map((char, byte) => [byte, char])).toEqual(expected);
  });

  // Strings that tell Python `regex`'s \s (Unicode White_Space) from JavaScript's \s: U+0085 is whitespace only
  // in the former, U+FEFF only in the latter. Expected ids from OpenAI's encoder.py algorithm run with the
  // Python `regex` module on these vocab files.
  it.each([
    ['a\ufeff\ufeff b', [64, 171, 119, 123, 171, 119, 123, 275]],
    ['x \u0085\u0085y', [87, 1587, 227, 126, 227, 88]],
    ['x\u0085 y', [87, 126, 227, 331]],
    ['\ufeff \ufeffz', [171, 119, 123, 27332, 119, 123, 89]],
    ['a\u0085\u0085\u0085b', [64, 126, 227, 126, 227, 126, 227, 65]],
  ])('splits whitespace like Python regex: %j', (text, ids) => {
    expect(tokenizer.encode(text)).toEqual(ids);
    expect(tokenizer.decode(ids)).toBe(text);
  });
});

describe('model reference files', () => {
  interface TextCase {
    text: string;
    input_ids: number[][];
    greedy_new_ids: number[][];
    greedy_text: string;
  }

  it.each(readJsonFixture<{ text_cases: TextCase[] }>('tiny-gpt2vocab/reference.json').text_cases)(
    'tiny-gpt2vocab text case $text',
    ({ text, input_ids, greedy_new_ids, greedy_text }) => {
      expect(tokenizer.encode(text)).toEqual(input_ids[0]);
      expect(tokenizer.decode(greedy_new_ids[0]!)).toBe(greedy_text);
    },
  );

  it('tiny-trained: valid.txt, greedy prompts and top-10 tokens', async () => {
    const trainedTokenizer = await AutoTokenizer.from_pretrained(TINY_TRAINED_DIR);
    expect(trainedTokenizer.model_max_length).toBe(256);
    const reference = readJsonFixture<{
      valid: { input_ids: number[] };
      greedy: { cases: Array<{ prompt: string; prompt_ids: number[]; new_ids: number[]; new_text: string }> };
      next_token_top10: { cases: Array<{ prompt: string; prompt_ids: number[]; top10_ids: number[]; top10_tokens: string[] }> };
    }>('tiny-trained/reference.json');

    const validText = await readFile(`${TINY_TRAINED_DIR}/valid.txt`, 'utf8');
    const validIds = trainedTokenizer.encode(validText);
    expect(validIds).toHaveLength(19_768);
    expect(validIds).toEqual(reference.valid.input_ids);
    expect(trainedTokenizer.decode(validIds)).toBe(validText);

    for (const { prompt, prompt_ids, new_ids, new_text } of reference.greedy.cases) {
      expect(trainedTokenizer.encode(prompt)).toEqual(prompt_ids);
      expect(trainedTokenizer.decode(new_ids)).toBe(new_text);
    }
    for (const { prompt, prompt_ids, top10_ids, top10_tokens } of reference.next_token_top10.cases) {
      expect(trainedTokenizer.encode(prompt)).toEqual(prompt_ids);
      expect(top10_ids.map((id) => trainedTokenizer.decode([id]))).toEqual(top10_tokens);
    }
  });
});
