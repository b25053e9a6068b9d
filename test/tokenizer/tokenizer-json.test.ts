import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoTokenizer, GPT2Tokenizer } from '../../src/tokenizer/index.js';
import { GPT2_VOCAB_DIR, casesByCategory, describeCase } from './fixtures.js';

let workDir: string;
let vocab: Record<string, number>;
let mergeLines: string[];

/** A tokenizer.json as HF's GPT2TokenizerFast saves it, built from the fixture's vocab.json + merges.txt. */
function tokenizerJson(merges: Array<string | [string, string]>) {
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: [
      { id: 50256, content: '<|endoftext|>', single_word: false, lstrip: false, rstrip: false, normalized: true, special: true },
    ],
    normalizer: null,
    pre_tokenizer: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true },
    post_processor: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

async function writeTokenizerFolder(name: string, json: unknown, extraFiles: Record<string, string> = {}) {
  const folder = join(workDir, name);
  await mkdir(folder);
  await writeFile(join(folder, 'tokenizer.json'), JSON.stringify(json));
  for (const [file, content] of Object.entries(extraFiles)) await writeFile(join(folder, file), content);
  return folder;
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'gpt-neo-tokenizer-json-'));
  vocab = JSON.parse(await readFile(join(GPT2_VOCAB_DIR, 'vocab.json'), 'utf8'));
  mergeLines = (await readFile(join(GPT2_VOCAB_DIR, 'merges.txt'), 'utf8')).split('\n').slice(1, -1);
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe.each([
  ['strings', () => mergeLines],
  ['pairs', () => mergeLines.map((line) => line.split(' ') as [string, string])],
])('tokenizer.json with merges as %s', (format, merges) => {
  let tokenizer: GPT2Tokenizer;
  beforeAll(async () => {
    const folder = await writeTokenizerFolder(`merges-as-${format}`, tokenizerJson(merges()));
    // Only tokenizer.json and the GPT-Neo configs: no vocab.json / merges.txt to fall back on.
    for (const file of ['tokenizer_config.json', 'special_tokens_map.json']) {
      await copyFile(join(GPT2_VOCAB_DIR, file), join(folder, file));
    }
    tokenizer = await AutoTokenizer.from_pretrained(folder);
  });

  it.each(casesByCategory())('encodes and decodes category %s', (_category, cases) => {
    for (const testCase of cases) {
      expect(tokenizer.encode(testCase.text), describeCase(testCase)).toEqual(testCase.hf_ids ?? testCase.ids);
      expect(tokenizer.decode(testCase.ids), describeCase(testCase)).toBe(testCase.text);
    }
  });

  it('has the GPT-Neo special tokens', () => {
    expect(tokenizer.vocab_size).toBe(50257);
    expect([tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id]).toEqual([50256, 50256, null]);
    expect(tokenizer.decode([15496, 50256], { skip_special_tokens: true })).toBe('Hello');
  });
});

describe('AutoTokenizer file choice', () => {
  it('prefers tokenizer.json over vocab.json + merges.txt, as HF AutoTokenizer (fast) does', async () => {
    const folder = await writeTokenizerFolder('preferred', tokenizerJson(mergeLines), {
      'vocab.json': '{ not json',
      'merges.txt': 'not a merges file at all\n',
    });
    const tokenizer = await AutoTokenizer.from_pretrained(folder);
    expect(tokenizer.encode('Hello, world!<|endoftext|>')).toEqual([15496, 11, 995, 0, 50256]);
  });

  it('takes add_prefix_space from the pre-tokenizer when tokenizer_config.json does not set it', async () => {
    const json = tokenizerJson(mergeLines);
    json.pre_tokenizer.add_prefix_space = true;
    const withoutConfig = await AutoTokenizer.from_pretrained(await writeTokenizerFolder('prefix', json));
    expect(withoutConfig.encode('Hello')).toEqual([18435]);
    const overridden = await AutoTokenizer.from_pretrained(
      await writeTokenizerFolder('prefix-off', json, { 'tokenizer_config.json': '{"add_prefix_space": false}' }),
    );
    expect(overridden.encode('Hello')).toEqual([15496]);
  });
});
