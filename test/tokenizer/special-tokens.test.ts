import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AutoTokenizer, GPT2Tokenizer } from '../../src/tokenizer/index.js';
import type { AddedToken } from '../../src/tokenizer/gpt2-tokenizer.js';
import { GPT2_VOCAB_DIR, tokenizerCases } from './fixtures.js';

const ENDOFTEXT = '<|endoftext|>';
let vocab: Record<string, number>;
let merges: string[];
let gptNeo: GPT2Tokenizer;

beforeAll(async () => {
  vocab = JSON.parse(await readFile(join(GPT2_VOCAB_DIR, 'vocab.json'), 'utf8'));
  merges = (await readFile(join(GPT2_VOCAB_DIR, 'merges.txt'), 'utf8')).split('\n');
  gptNeo = await AutoTokenizer.from_pretrained(GPT2_VOCAB_DIR);
});

describe('GPT-Neo special tokens', () => {
  it('reads them from tokenizer_config.json and special_tokens_map.json', () => {
    expect([gptNeo.bos_token, gptNeo.eos_token, gptNeo.unk_token, gptNeo.pad_token]).toEqual([
      ENDOFTEXT,
      ENDOFTEXT,
      ENDOFTEXT,
      null,
    ]);
    expect([gptNeo.bos_token_id, gptNeo.eos_token_id, gptNeo.unk_token_id, gptNeo.pad_token_id]).toEqual([
      50256,
      50256,
      50256,
      null,
    ]);
    expect(gptNeo.vocab_size).toBe(50257);
    expect(gptNeo.model_max_length).toBe(128);
  });

  it('adds no special tokens around the text', () => {
    expect(gptNeo.encode('Hello')).toEqual([15496]);
    expect(gptNeo.encode('')).toEqual([]);
  });

  it('drops special ids on decode with skip_special_tokens', () => {
    const ids = gptNeo.encode('Hello<|endoftext|> world<|endoftext|>');
    expect(ids).toEqual([15496, 50256, 995, 50256]);
    expect(gptNeo.decode(ids)).toBe('Hello<|endoftext|> world<|endoftext|>');
    expect(gptNeo.decode(ids, { skip_special_tokens: true })).toBe('Hello world');
    expect(Buffer.from(gptNeo.decodeBytes(ids, { skip_special_tokens: true })).toString()).toBe('Hello world');
    expect(gptNeo.convert_ids_to_tokens(ids)).toEqual(['Hello', ENDOFTEXT, 'Ġworld', ENDOFTEXT]);
  });

  it('applies HF clean_up_tokenization_spaces only when asked', () => {
    const text = "Hello , world . Is n't it ? I 'm sure they 're fine !";
    const ids = gptNeo.encode(text);
    expect(gptNeo.decode(ids)).toBe(text);
    expect(gptNeo.decode(ids, { clean_up_tokenization_spaces: true })).toBe(
      "Hello, world. Isn't it? I'm sure they're fine!",
    );
  });

  it('accepts special tokens written as strings or as {content} objects', () => {
    const asStrings = GPT2Tokenizer.fromFiles({ vocab, merges, config: { eos_token: ENDOFTEXT, pad_token: '!' } });
    const asObjects = GPT2Tokenizer.fromFiles({
      vocab,
      merges,
      config: { eos_token: { content: ENDOFTEXT }, pad_token: { content: '!' } },
    });
    for (const tokenizer of [asStrings, asObjects]) {
      expect([tokenizer.eos_token_id, tokenizer.pad_token_id, tokenizer.pad_token]).toEqual([50256, 0, '!']);
      expect(tokenizer.decode([0, 15496, 50256], { skip_special_tokens: true })).toBe('Hello');
    }
  });

  it('splits out <|endoftext|> with only vocab.json + merges.txt, through the GPT2Tokenizer defaults', () => {
    const tokenizer = GPT2Tokenizer.fromFiles({ vocab, merges });
    expect([tokenizer.bos_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id]).toEqual([
      50256,
      50256,
      50256,
      null,
    ]);
    for (const testCase of tokenizerCases.cases) {
      expect(tokenizer.encode(testCase.text)).toEqual(testCase.hf_ids ?? testCase.ids);
    }
  });

  it('encodes <|endoftext|> as plain text, like OpenAI, when no special token is configured', () => {
    const tokenizer = GPT2Tokenizer.fromFiles({
      vocab,
      merges,
      config: { bos_token: null, eos_token: null, unk_token: null },
    });
    expect(tokenizer.eos_token_id).toBeNull();
    for (const testCase of tokenizerCases.cases.filter((c) => c.category === 'special_text')) {
      expect(tokenizer.encode(testCase.text)).toEqual(testCase.ids);
    }
    // The id still decodes: it is in the vocabulary.
    expect(tokenizer.decode([50256])).toBe(ENDOFTEXT);
  });

  it('splits every added token, longest match first, and skips only the special ones', () => {
    const tokenizer = GPT2Tokenizer.fromFiles({
      vocab,
      merges,
      addedTokens: [
        { id: 50257, content: '<tag>', special: false },
        { id: 50258, content: '<tag>!', special: true },
      ],
    });
    expect(tokenizer.vocab_size).toBe(50259);
    expect(tokenizer.encode('a<tag>b <tag>!')).toEqual([64, 50257, 65, 220, 50258]);
    expect(tokenizer.decode([64, 50257, 65, 220, 50258], { skip_special_tokens: true })).toBe('a<tag>b ');
  });

  it('adds a prefix space to each piece between added tokens when add_prefix_space is set', () => {
    const tokenizer = GPT2Tokenizer.fromFiles({ vocab, merges, config: { add_prefix_space: true } });
    expect(tokenizer.encode('Hello')).toEqual([18435]);
    expect(tokenizer.encode(' Hello')).toEqual([18435]);
    expect(tokenizer.encode('Hello<|endoftext|>world')).toEqual([18435, 50256, 995]);
  });
});

// Expected tokens are those of the tokenizers library's own tests for these flags (GPT-2 byte-level vocab).
describe('added-token flags from tokenizer.json', () => {
  const MASK = 50257;
  const tokenizerWith = (token: Omit<AddedToken, 'id' | 'special'> & { id?: number }, addPrefixSpace = false) =>
    GPT2Tokenizer.fromFiles({
      vocab,
      merges,
      addedTokens: [{ id: MASK, special: true, ...token }],
      config: { add_prefix_space: addPrefixSpace },
    });
  const ids = (tokens: string[], added: Record<string, number> = {}) => tokens.map((t) => added[t] ?? vocab[t]!);

  it('lstrip takes the whitespace before the token', () => {
    const tokenizer = tokenizerWith({ content: '<mask>', lstrip: true }, true);
    expect(tokenizer.encode('I saw a <mask> 😺')).toEqual([...ids(['ĠI', 'Ġsaw', 'Ġa']), MASK, ...ids(['ĠðŁĺ', 'º'])]);
  });

  it('rstrip takes the whitespace after the token', () => {
    const expected = (prefix: string) => [...ids([`${prefix}I`, 'Ġsaw', 'Ġa', 'Ġ']), MASK, ...ids([`${prefix}ðŁĺ`, 'º'])];
    expect(tokenizerWith({ content: '<mask>', rstrip: true }).encode('I saw a <mask> 😺')).toEqual(expected(''));
    // With add_prefix_space the piece after the token gets its space back.
    expect(tokenizerWith({ content: '<mask>', rstrip: true }, true).encode('I saw a <mask> 😺')).toEqual(expected('Ġ'));
  });

  it('single_word keeps the token from splitting a word', () => {
    const ing = vocab['ing']!;
    expect(tokenizerWith({ id: ing, content: 'ing', single_word: true }).encode('I like dancing')).toEqual(
      ids(['I', 'Ġlike', 'Ġdancing']),
    );
    expect(tokenizerWith({ id: ing, content: 'ing', single_word: true }).encode('I like ing')).toEqual([
      ...ids(['I', 'Ġlike', 'Ġ']),
      ing,
    ]);
    expect(tokenizerWith({ id: ing, content: 'ing' }).encode('I like dancing')).toEqual(ids(['I', 'Ġlike', 'Ġd', 'anc', 'ing']));
  });

  it('reads the flags from tokenizer_config.json added_tokens_decoder too', () => {
    const tokenizer = GPT2Tokenizer.fromFiles({
      vocab,
      merges,
      config: { added_tokens_decoder: { [MASK]: { content: '<mask>', special: true, lstrip: true } } },
    });
    expect(tokenizer.encode('a <mask>')).toEqual([vocab['a']!, MASK]);
  });
});
