import { describe, expect, it } from 'vitest';
import { GPT2Tokenizer } from '../../src/tokenizer/index.js';
import { BYTE_TO_CHAR } from '../../src/tokenizer/byte-level.js';

/** A tokenizer whose vocab is the 256 byte symbols (id = byte) plus the tokens the given merges build. */
function tokenizerWithMerges(merges: string[]): GPT2Tokenizer {
  const vocab: Record<string, number> = Object.fromEntries(BYTE_TO_CHAR.map((char, byte) => [char, byte]));
  for (const merge of merges) vocab[merge.replace(' ', '')] ??= Object.keys(vocab).length;
  return GPT2Tokenizer.fromFiles({ vocab, merges, config: { bos_token: null, eos_token: null, unk_token: null } });
}

describe('BPE merge order', () => {
  it('applies the lowest-ranked merge first, wherever it is in the word', () => {
    const tokenizer = tokenizerWithMerges(['b c', 'a b', 'a bc']);
    expect(tokenizer.convert_ids_to_tokens(tokenizer.encode('abc'))).toEqual(['abc']);
    // With "a b" first the word would end as ["ab", "c"].
    const other = tokenizerWithMerges(['a b', 'b c', 'a bc']);
    expect(other.convert_ids_to_tokens(other.encode('abc'))).toEqual(['ab', 'c']);
  });

  it('merges overlapping equal pairs from the left', () => {
    const tokenizer = tokenizerWithMerges(['a a']);
    expect(tokenizer.convert_ids_to_tokens(tokenizer.encode('aaaaa'))).toEqual(['aa', 'aa', 'a']);
  });

  it('keeps merging the tokens that merges produced', () => {
    const tokenizer = tokenizerWithMerges(['a a', 'aa aa', 'aa a']);
    expect(tokenizer.convert_ids_to_tokens(tokenizer.encode('aaaaaaaaaaa'))).toEqual(['aaaa', 'aaaa', 'aaa']);
  });

  it('works on bytes, so a character can be split across tokens', () => {
    const tokenizer = tokenizerWithMerges([`${BYTE_TO_CHAR[0xc3]} ${BYTE_TO_CHAR[0xa9]}`]);
    expect(tokenizer.convert_ids_to_tokens(tokenizer.encode('é€'))).toEqual(['Ã©', 'â', 'Ĥ', '¬']);
    expect(tokenizer.decode(tokenizer.encode('é€'))).toBe('é€');
  });

  it('encodes one byte per token without merges', () => {
    const tokenizer = tokenizerWithMerges([]);
    expect(tokenizer.encode('hi \n')).toEqual([0x68, 0x69, 0x20, 0x0a]);
  });
});
