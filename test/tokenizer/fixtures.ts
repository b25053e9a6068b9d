import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const fixturesRoot = fileURLToPath(new URL('../fixtures/gpt-neo/', import.meta.url));

/** Folder with the real GPT-2 vocab.json / merges.txt and GPT-Neo tokenizer_config / special_tokens_map. */
export const GPT2_VOCAB_DIR = `${fixturesRoot}tiny-gpt2vocab`;
export const TINY_TRAINED_DIR = `${fixturesRoot}tiny-trained`;

export interface TokenizerCase {
  category: string;
  text: string;
  /** OpenAI encoder ids; `<|endoftext|>` is plain text there. */
  ids: number[];
  /** Hugging Face ids, present only where they differ from `ids`. */
  hf_ids?: number[];
  tokens: string[];
  utf8_hex: string;
}

export interface TokenizerCases {
  cases: TokenizerCase[];
  decode_cases: Array<{ ids: number[]; text: string }>;
  bytes_to_unicode: Record<string, string>;
}

export function readJsonFixture<T>(relativePath: string): T {
  return JSON.parse(readFileSync(`${fixturesRoot}${relativePath}`, 'utf8')) as T;
}

export const tokenizerCases = readJsonFixture<TokenizerCases>('tokenizer/cases.json');

/** Cases grouped by category, as [category, cases] rows for it.each. */
export function casesByCategory(): Array<[string, TokenizerCase[]]> {
  const groups = new Map<string, TokenizerCase[]>();
  for (const testCase of tokenizerCases.cases) {
    const group = groups.get(testCase.category) ?? [];
    group.push(testCase);
    groups.set(testCase.category, group);
  }
  return [...groups];
}

/** A mismatch message that shows the text, so a failing category points at the string that broke. */
export function describeCase(testCase: TokenizerCase): string {
  return `${testCase.category}: ${JSON.stringify(testCase.text).slice(0, 80)}`;
}
