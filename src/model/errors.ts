/**
 * Bad input to the model (shapes, token ids, positions, lengths) and the checks that find it. Every layer's
 * input errors (generation's, training's) extend InputError, so a caller can catch them as one kind.
 */
import type { GPTNeoConfig } from './config.js';
import type { ForwardInput } from './types.js';

export class InputError extends Error {}

type ErrorClass = new (message: string) => Error;

/**
 * The one token-id check: throws (InputError, or `error`) naming the first entry of `ids` (a list, or rows of
 * one) that is not a whole number in 0..vocabSize-1, as `name[row][t] = id` (`indexed: false`, for ids whose
 * place means nothing: `name token id`). `ignore` is a value allowed besides token ids (labels' -100).
 */
export function checkTokenIds(
  ids: readonly number[] | readonly (readonly number[])[],
  vocabSize: number,
  name: string,
  options: { ignore?: number; error?: ErrorClass; indexed?: boolean } = {},
): void {
  const isToken = (id: unknown) => (Number.isInteger(id) && (id as number) >= 0 && (id as number) < vocabSize) || id === options.ignore;
  const fail = (where: string, id: unknown) => {
    const besides = options.ignore === undefined ? '' : ` and not ${options.ignore}`;
    const entry = options.indexed === false ? `${name} token ${id}` : `${where} = ${id}`;
    throw new (options.error ?? InputError)(`${entry} is outside the vocabulary (0..${vocabSize - 1})${besides}`);
  };
  ids.forEach((entry, i) => {
    if (Array.isArray(entry)) {
      entry.forEach((id, t) => {
        if (!isToken(id)) fail(`${name}[${i}][${t}]`, id);
      });
    } else if (!isToken(entry)) fail(`${name}[${i}]`, entry);
  });
}

/** `rows` must be `batch` rows of equal length; returns that length. */
export function checkRectangle(rows: unknown, name: string, batch: number): number {
  if (!Array.isArray(rows) || rows.length !== batch) {
    throw new InputError(`${name} must have ${batch} rows, got ${Array.isArray(rows) ? rows.length : typeof rows}`);
  }
  const width = Array.isArray(rows[0]) ? rows[0].length : -1;
  rows.forEach((row: unknown, b) => {
    if (!Array.isArray(row) || row.length !== width) {
      throw new InputError(`${name} rows must all have the same length (row 0 has ${width}, row ${b} has ${Array.isArray(row) ? row.length : typeof row})`);
    }
  });
  return width;
}

/** A forward input after its checks, with the defaults filled in. */
export interface CheckedInput {
  batch: number;
  /** New tokens per row. */
  T: number;
  inputIds: number[][];
  /** Covers the `past` cached slots and the T new ones; 1 = real token, 0 = padding. */
  attentionMask: number[][];
  positionIds: number[][];
}

/**
 * Checks a forward input as Hugging Face's forward would (shapes, vocabulary, positions), for a batch that
 * already holds `past` tokens per row (`batch`: the rows it must have, default whatever it has).
 */
export function checkForwardInput(config: GPTNeoConfig, input: ForwardInput, past = 0, batch?: number): CheckedInput {
  const { vocab_size: V, max_position_embeddings: P } = config;
  if (batch === undefined && (!Array.isArray(input.input_ids) || input.input_ids.length === 0)) {
    throw new InputError('input_ids must be a non-empty list of token rows');
  }
  const B = batch ?? input.input_ids.length;
  const T = checkRectangle(input.input_ids, 'input_ids', B);
  if (T === 0) throw new InputError('input_ids: every row needs at least one token');
  const total = past + T;
  if (total > P) throw new InputError(`sequence length ${total} exceeds max_position_embeddings ${P} of this model`);
  checkTokenIds(input.input_ids, V, 'input_ids');
  const attentionMask = input.attention_mask ?? input.input_ids.map(() => new Array<number>(total).fill(1));
  const maskWidth = checkRectangle(attentionMask, 'attention_mask', B);
  if (maskWidth !== total) {
    const what = past === 0 ? `${T} entries like input_ids` : `past + new tokens (${total})`;
    throw new InputError(`attention_mask rows must cover ${what}, got ${maskWidth}`);
  }
  const positionIds = input.position_ids ?? input.input_ids.map(() => Array.from({ length: T }, (_, t) => past + t));
  if (checkRectangle(positionIds, 'position_ids', B) !== T) throw new InputError(`position_ids rows must have ${T} entries like input_ids`);
  positionIds.forEach((row, b) =>
    row.forEach((p, t) => {
      if (!Number.isInteger(p) || p < 0 || p >= P) {
        throw new InputError(`position_ids[${b}][${t}] = ${p} is outside 0..${P - 1} (max_position_embeddings)`);
      }
    }),
  );
  return { batch: B, T, inputIds: input.input_ids, attentionMask, positionIds };
}
