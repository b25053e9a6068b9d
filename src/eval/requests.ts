/** GPT-2's <|endoftext|>: stands in for an empty context and starts every rolling window. */
export const END_OF_TEXT = 50256;

/** What the task asks of the model, as text: how likely is `continuation` after `context`. */
export interface LoglikelihoodRequest {
  context: string;
  continuation: string;
}

/**
 * A request in token ids, ready for the scorer: the continuation tokens are scored, each from the model's
 * output at the token before it, so the model is fed `contextIds ++ continuationIds[:-1]`.
 * `contextIds` is never empty (the first token has nothing to be predicted from).
 */
export interface TokenRequest {
  contextIds: number[];
  continuationIds: number[];
}

/** Anything with GPT-2's encode (no special tokens added). */
export interface TokenEncoder {
  encode(text: string): number[];
}

/**
 * The 2021 harness's loglikelihood encoding: context and continuation encoded separately (never
 * `context + continuation` split afterwards), an empty context replaced by <|endoftext|>, and the
 * concatenation cut to its last `maxLength` tokens by dropping context tokens from the left.
 */
export function encodeLoglikelihoodRequest(
  tokenizer: TokenEncoder,
  request: LoglikelihoodRequest,
  maxLength: number,
): TokenRequest {
  const contextIds = request.context === '' ? [END_OF_TEXT] : tokenizer.encode(request.context);
  const continuationIds = tokenizer.encode(request.continuation);
  if (continuationIds.length === 0) {
    throw new Error(`empty continuation after context ${JSON.stringify(request.context.slice(-80))}`);
  }
  if (continuationIds.length >= maxLength) {
    throw new Error(
      `continuation of ${continuationIds.length} tokens leaves no room for context in a ${maxLength}-token window`,
    );
  }
  const overflow = Math.max(0, contextIds.length + continuationIds.length - maxLength);
  return { contextIds: contextIds.slice(overflow), continuationIds };
}

/**
 * The harness's `loglikelihood_rolling` windows over one document's tokens: every token is scored exactly
 * once, the first from <|endoftext|>, and each later window gives its new tokens the longest left context
 * that fits in `maxLength` fed tokens. Each window is a TokenRequest whose continuation is the new tokens.
 */
export function rollingWindows(tokens: readonly number[], maxLength: number): TokenRequest[] {
  if (tokens.length === 0) return [];
  const firstCount = Math.min(maxLength, tokens.length);
  const windows: TokenRequest[] = [{ contextIds: [END_OF_TEXT], continuationIds: tokens.slice(0, firstCount) }];
  for (let scored = firstCount; scored < tokens.length; ) {
    const count = Math.min(tokens.length - scored, maxLength);
    windows.push({
      contextIds: tokens.slice(scored + count - maxLength - 1, scored),
      continuationIds: tokens.slice(scored, scored + count),
    });
    scored += count;
  }
  return windows;
}

/** Final pieces shorter than this are dropped instead of carried over (create_tfrecords.py's minimum_size). */
export const MINIMUM_CARRIED_PIECE = 100;

/**
 * GPT-Neo's create_tfrecords.py packing: each document (already ending in <|endoftext|>) is cut into
 * consecutive records of `recordLength` tokens. A shorter final piece goes to a carry-over buffer if it has at
 * least MINIMUM_CARRIED_PIECE tokens (else it is dropped); when the buffer holds a full record, that record is
 * emitted before the current document's own records. A buffer that never fills is never emitted.
 */
export function packTokenRecords(documents: Iterable<readonly number[]>, recordLength: number): number[][] {
  const records: number[][] = [];
  let carried: number[] = [];
  for (const tokens of documents) {
    const fullCount = Math.floor(tokens.length / recordLength);
    const tail = tokens.slice(fullCount * recordLength);
    if (tail.length >= MINIMUM_CARRIED_PIECE) carried = carried.concat(tail);
    if (carried.length >= recordLength) {
      records.push(carried.slice(0, recordLength));
      carried = carried.slice(recordLength);
    }
    for (let i = 0; i < fullCount; i++) records.push(tokens.slice(i * recordLength, (i + 1) * recordLength));
  }
  return records;
}

/** A packed record scored the mesh-tensorflow way: input record[0:n-1], every position predicts the next token. */
export function recordRequest(record: readonly number[]): TokenRequest {
  return { contextIds: record.slice(0, 1), continuationIds: record.slice(1) };
}
