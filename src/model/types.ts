/** A dense float32 tensor in row-major order, shaped like transformers.js tensors. */
export interface Float32Tensor {
  data: Float32Array;
  dims: number[];
}

/** Logits [batch, T, vocab] with log(sum(exp(.))) of every row [batch * T], for log-probabilities. */
export interface LogitsOutput extends Float32Tensor {
  logsumexp: Float64Array;
}

/** Inputs of one forward pass; every row has the same length (pad on the left, mask 0). */
export interface ForwardInput {
  input_ids: number[][];
  /** 1 = real token, 0 = padding. Covers past + new tokens when a KV cache is in use. Default all ones. */
  attention_mask?: number[][];
  /** Absolute positions of the new tokens. Default past_length .. past_length+T-1, like HF forward(). */
  position_ids?: number[][];
}

/**
 * A batch of sequences with its KV cache: each call appends tokens to every row.
 * Generation (sampling, beam search) and evaluation (shared multiple-choice contexts) drive the model
 * through this interface only.
 */
export interface DecoderSession {
  readonly batchSize: number;
  /** Number of cache slots already filled (identical for all rows). */
  readonly pastLength: number;
  /**
   * Runs the new tokens through the model, appending them to the cache.
   * Returns logits [batch, T, vocab] when allPositions is set, else only the last position [batch, 1, vocab].
   */
  forward(input: ForwardInput, options?: { allPositions?: boolean }): Promise<LogitsOutput>;
  /** Rebuilds the batch from existing rows: new row r is old row rows[r] (beam search, expansion). */
  reorder(rows: readonly number[]): void;
  dispose(): void;
}

/** Token embedding rows, looked up on the host and fed to the graph as inputs_embeds. */
export interface TokenEmbeddings {
  /** The rows of `ids` (already checked to be in range), one after another. */
  lookup(ids: ArrayLike<number>): Float32Array;
  close(): void;
}
