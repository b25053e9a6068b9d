import type { GPTNeoConfig } from '../model/config.js';
import { checkForwardInput, InputError } from '../model/errors.js';
import type { DecoderSession, ForwardInput, LogitsOutput, TokenEmbeddings } from '../model/types.js';
import type { InferenceRunner } from '../runtime/tensor.js';
import { KVCache } from './cache.js';

/**
 * A batch of rows that advance together over one KV cache (Hugging Face's past_key_values): what generate(),
 * beam search and evaluation drive. Padding is the attention mask's business, so rows keep one length.
 */
export class KVSession implements DecoderSession {
  private readonly cache: KVCache;

  constructor(
    runtime: InferenceRunner,
    private readonly config: GPTNeoConfig,
    embeddings: TokenEmbeddings,
    batchSize: number,
    /** Tokens per row the session will hold: the cache is sized for it once (a longer input grows it). */
    maxLength = 1,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError(`batch size must be >= 1, got ${batchSize}`);
    const length = Math.max(1, Math.min(maxLength, config.max_position_embeddings));
    this.cache = new KVCache(runtime, config, embeddings, { rows: batchSize, length });
    for (let b = 0; b < batchSize; b++) this.cache.acquire(length);
  }

  get batchSize(): number {
    return this.cache.rows.length;
  }

  get pastLength(): number {
    return this.cache.rows[0]?.length ?? 0;
  }

  async forward(input: ForwardInput, options: { allPositions?: boolean } = {}): Promise<LogitsOutput> {
    const checked = checkForwardInput(this.config, input, this.pastLength, this.batchSize);
    const rows = this.cache.rows.map((row, b) => ({
      row,
      tokens: checked.inputIds[b]!,
      positions: checked.positionIds[b]!,
      mask: checked.attentionMask[b]!,
    }));
    return this.cache.forward(rows, options);
  }

  reorder(rows: readonly number[]): void {
    this.cache.reorder(rows);
  }

  dispose(): void {
    this.cache.dispose();
  }
}
