import type { GPTNeoModel } from '../modeling/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import { encodeTexts, inBatches, padRows } from './batch.js';

/** transformers.js' pooling: none (every token), mean (over real tokens), first token (cls) or last token. */
export type Pooling = 'none' | 'mean' | 'cls' | 'first_token' | 'last_token';
const POOLINGS: readonly Pooling[] = ['none', 'mean', 'cls', 'first_token', 'last_token'];

export interface FeatureExtractionOptions {
  pooling?: Pooling;
  /** Scale each vector (each token's, or the pooled one) to unit L2 norm. */
  normalize?: boolean;
  /** Texts per forward pass (default 8, fewer for long texts); rows are right-padded and masked, so the batch does not change a row. */
  batch_size?: number;
}

/**
 * The feature-extraction pipeline: GPT-Neo's last_hidden_state for each text, in Hugging Face's nested layout
 * [text][token][hidden] (each text with its own tokens), or [text][hidden] once pooled.
 */
export interface FeatureExtractionPipeline {
  (input: string | string[], options?: FeatureExtractionOptions & { pooling?: 'none' }): Promise<number[][][]>;
  (input: string | string[], options: FeatureExtractionOptions & { pooling: Exclude<Pooling, 'none'> }): Promise<number[][]>;
  readonly model: GPTNeoModel;
  readonly tokenizer: GPT2Tokenizer;
  dispose(): Promise<void>;
}

export function featureExtractionPipeline(model: GPTNeoModel, tokenizer: GPT2Tokenizer): FeatureExtractionPipeline {
  // Right padding keeps positions 0..n-1 for every text's real tokens; causal attention never reads the padding.
  const pad = tokenizer.pad_token_id ?? tokenizer.eos_token_id ?? 0;

  async function extract(input: string | string[], options: FeatureExtractionOptions = {}): Promise<number[][][] | number[][]> {
    const { pooling = 'none', normalize = false, batch_size = 8 } = options;
    if (!POOLINGS.includes(pooling)) throw new Error(`pooling '${pooling}' is not supported (choose one of ${POOLINGS.join(', ')})`);
    const encoded = encodeTexts(tokenizer, Array.isArray(input) ? input : [input], 'text', 'to read');
    const perText = await inBatches(encoded, batch_size, async (rows) => {
      const { last_hidden_state } = await model.forward(padRows(rows, pad, 'right'));
      const [, T, C] = last_hidden_state.dims as [number, number, number];
      return rows.map((ids, b) => ids.map((_, t) => last_hidden_state.data.subarray((b * T + t) * C, (b * T + t + 1) * C)));
    });
    if (pooling === 'none') return perText.map((tokens) => tokens.map((vector) => finished(vector, normalize)));
    return perText.map((tokens) => pooledVector(tokens, pooling, normalize));
  }

  return Object.assign(extract as FeatureExtractionPipeline, { model, tokenizer, dispose: () => model.dispose() });
}

/** One vector for a text's token vectors (all real tokens), scaled to unit L2 norm when `normalize`. */
export function pooledVector(tokens: ArrayLike<number>[], pooling: Exclude<Pooling, 'none'>, normalize: boolean): number[] {
  return finished(pool(tokens, pooling), normalize);
}

function finished(vector: ArrayLike<number>, normalize: boolean): number[] {
  return normalize ? l2Normalized(Array.from(vector)) : Array.from(vector);
}

/** One vector for a text's token vectors (all real tokens: padding was never kept). */
function pool(tokens: ArrayLike<number>[], pooling: Exclude<Pooling, 'none'>): ArrayLike<number> {
  if (pooling === 'cls' || pooling === 'first_token') return tokens[0]!;
  if (pooling === 'last_token') return tokens.at(-1)!;
  const sum = new Float64Array(tokens[0]!.length);
  for (const token of tokens) for (let i = 0; i < sum.length; i++) sum[i]! += token[i]!;
  return sum.map((value) => value / tokens.length);
}

function l2Normalized(vector: number[]): number[] {
  const norm = Math.hypot(...vector);
  return norm === 0 ? vector : vector.map((value) => value / norm);
}
