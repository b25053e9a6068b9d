import type { GPT2Tokenizer } from '../tokenizer/index.js';

/** Tokenizes each text; an empty one is refused, since GPT-Neo needs at least one token to read. */
export function encodeTexts(tokenizer: GPT2Tokenizer, texts: string[], noun: string, purpose: string): number[][] {
  if (texts.length === 0) throw new Error(`no ${noun} given: pass a string or a non-empty list of strings`);
  return texts.map((text, i) => {
    if (typeof text !== 'string') throw new Error(`${noun} ${i} is ${typeof text}, not a string`);
    const ids = tokenizer.encode(text);
    if (ids.length === 0) throw new Error(`${texts.length > 1 ? `${noun} ${i}` : noun} is empty: GPT-Neo needs at least one token ${purpose}`);
    return ids;
  });
}

/** Rows of one length: `padId` on the given side, attention_mask 0 there. */
export function padRows(rows: number[][], padId: number, side: 'left' | 'right') {
  const width = Math.max(...rows.map((ids) => ids.length));
  const fill = <T>(value: T, row: number[]) => new Array<T>(width - row.length).fill(value);
  const join = <T>(padding: T[], values: T[]) => (side === 'left' ? [...padding, ...values] : [...values, ...padding]);
  return {
    input_ids: rows.map((ids) => join(fill(padId, ids), ids)),
    attention_mask: rows.map((ids) => join(fill(0, ids), ids.map(() => 1))),
  };
}

/**
 * Attention scores per head that one pass of a batch may hold: those of one text of 2048 tokens (GPT-Neo's
 * context). The whole batch runs in one pass, so eight long texts would otherwise need eight times the memory.
 */
export const MAX_SCORES_PER_HEAD = 2048 * 2048;

/**
 * Runs `run` over consecutive batches of token rows, at most `size` rows each and fewer where their longest row
 * would make the attention scores exceed MAX_SCORES_PER_HEAD, and joins the results in order.
 */
export async function inBatches<R>(rows: number[][], size: number, run: (batch: number[][]) => Promise<R[]>): Promise<R[]> {
  if (!Number.isInteger(size) || size < 1) throw new Error(`batch_size must be a positive integer, got ${size}`);
  const results: R[] = [];
  for (let start = 0; start < rows.length; ) {
    let end = start + 1;
    let longest = rows[start]!.length;
    for (; end < rows.length && end - start < size; end++) {
      const next = Math.max(longest, rows[end]!.length);
      if ((end - start + 1) * next * next > MAX_SCORES_PER_HEAD) break;
      longest = next;
    }
    results.push(...(await run(rows.slice(start, end))));
    start = end;
  }
  return results;
}
