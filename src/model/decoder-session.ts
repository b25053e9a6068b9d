import { OrtTensor, type RuntimeSession } from '../runtime/session.js';
import type { GPTNeoConfig } from './config.js';
import { IO } from './gpt-neo.js';
import type { DecoderSession, ForwardInput, LogitsOutput } from './types.js';

export class InputError extends Error {}

/** Additive mask value for hidden keys: finite, so a row with no visible key gives no NaN (as HF's finfo.min). */
const HIDDEN = -3.4028234663852886e38;

/** A batch of sequences and their KV cache, kept in JS memory between steps. */
export class GPTNeoDecoderSession implements DecoderSession {
  private past: { key: Float32Array; value: Float32Array }[];
  private pastLen = 0;
  private rows: number;

  constructor(
    private readonly runtime: RuntimeSession,
    private readonly config: GPTNeoConfig,
    batchSize: number,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError(`batch size must be >= 1, got ${batchSize}`);
    this.rows = batchSize;
    this.past = config.attention_layers.map(() => ({ key: new Float32Array(0), value: new Float32Array(0) }));
  }

  get batchSize(): number {
    return this.rows;
  }

  get pastLength(): number {
    return this.pastLen;
  }

  async forward(input: ForwardInput, options: { allPositions?: boolean } = {}): Promise<LogitsOutput> {
    const { vocab_size: V, num_heads: H, hidden_size, max_position_embeddings } = this.config;
    const D = hidden_size / H;
    const B = this.rows;
    const T = checkRectangle(input.input_ids, 'input_ids', B);
    if (T === 0) throw new InputError('input_ids: every row needs at least one token');
    const total = this.pastLen + T;
    if (total > max_position_embeddings) {
      throw new InputError(
        `sequence length ${total} exceeds max_position_embeddings ${max_position_embeddings} of this model`,
      );
    }
    const ids = new BigInt64Array(B * T);
    input.input_ids.forEach((row, b) =>
      row.forEach((id, t) => {
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new InputError(`input_ids[${b}][${t}] = ${id} is outside the vocabulary (0..${V - 1})`);
        }
        ids[b * T + t] = BigInt(id);
      }),
    );
    const mask = input.attention_mask ?? input.input_ids.map(() => new Array<number>(total).fill(1));
    if (checkRectangle(mask, 'attention_mask', B) !== total) {
      throw new InputError(`attention_mask rows must cover past + new tokens (${total}), got ${mask[0]!.length}`);
    }
    const positions = new BigInt64Array(B * T);
    if (input.position_ids) {
      if (checkRectangle(input.position_ids, 'position_ids', B) !== T) {
        throw new InputError(`position_ids rows must have ${T} entries like input_ids`);
      }
      input.position_ids.forEach((row, b) =>
        row.forEach((p, t) => {
          if (!Number.isInteger(p) || p < 0 || p >= max_position_embeddings) {
            throw new InputError(
              `position_ids[${b}][${t}] = ${p} is outside 0..${max_position_embeddings - 1} (max_position_embeddings)`,
            );
          }
          positions[b * T + t] = BigInt(p);
        }),
      );
    } else {
      for (let i = 0; i < B * T; i++) positions[i] = BigInt(this.pastLen + (i % T));
    }

    const logitRows = options.allPositions
      ? BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i))
      : BigInt64Array.from({ length: B }, (_, b) => BigInt(b * T + T - 1));
    const feeds: Record<string, OrtTensor> = {
      [IO.inputIds]: new OrtTensor('int64', ids, [B, T]),
      [IO.positionIds]: new OrtTensor('int64', positions, [B, T]),
      [IO.logitRows]: new OrtTensor('int64', logitRows, [logitRows.length]),
    };
    for (const kind of new Set(this.config.attention_layers)) {
      const window = kind === 'local' ? this.config.window_size : Infinity;
      feeds[IO.attentionBias(kind)] = new OrtTensor('float32', attentionBias(mask, this.pastLen, T, window), [B, 1, T, total]);
    }
    this.past.forEach((cache, layer) => {
      feeds[IO.pastKey(layer)] = new OrtTensor('float32', cache.key, [B, H, this.pastLen, D]);
      feeds[IO.pastValue(layer)] = new OrtTensor('float32', cache.value, [B, H, this.pastLen, D]);
    });

    const outputs = await this.runtime.run(feeds);
    this.past = this.past.map((_, layer) => ({
      key: outputs[IO.presentKey(layer)]!.data as Float32Array,
      value: outputs[IO.presentValue(layer)]!.data as Float32Array,
    }));
    this.pastLen = total;
    return {
      data: outputs[IO.logits]!.data as Float32Array,
      dims: [B, options.allPositions ? T : 1, V],
      logsumexp: outputs[IO.logSumExp]!.data as Float64Array,
    };
  }

  reorder(rows: readonly number[]): void {
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.rows) {
        throw new InputError(`reorder: row ${r} does not exist (batch size ${this.rows})`);
      }
    }
    const rowSize = (this.config.hidden_size * this.pastLen);
    const gather = (source: Float32Array) => {
      const target = new Float32Array(rows.length * rowSize);
      rows.forEach((r, i) => target.set(source.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
      return target;
    };
    this.past = this.past.map(({ key, value }) => ({ key: gather(key), value: gather(value) }));
    this.rows = rows.length;
  }

  dispose(): void {
    this.past = [];
  }
}

function checkRectangle(rows: number[][], name: string, batch: number): number {
  if (!Array.isArray(rows) || rows.length !== batch) {
    throw new InputError(`${name} must have ${batch} rows, got ${Array.isArray(rows) ? rows.length : typeof rows}`);
  }
  const width = rows[0]!.length;
  rows.forEach((row, b) => {
    if (!Array.isArray(row) || row.length !== width) {
      throw new InputError(`${name} rows must all have the same length (row 0 has ${width}, row ${b} has ${row?.length})`);
    }
  });
  return width;
}

/**
 * [batch, 1, T, past+T] additive bias: query t sits in cache slot past+t and sees key slot j iff
 * j <= slot, slot - window < j (local layers), and the key is not padding. Slots, not position ids,
 * define the window, as in Hugging Face's GPT-Neo.
 */
function attentionBias(mask: number[][], past: number, T: number, window: number): Float32Array {
  const total = past + T;
  const bias = new Float32Array(mask.length * T * total).fill(HIDDEN);
  mask.forEach((row, b) => {
    for (let t = 0; t < T; t++) {
      const slot = past + t;
      const offset = (b * T + t) * total;
      for (let j = Math.max(0, slot - window + 1); j <= slot; j++) if (row[j]) bias[offset + j] = 0;
    }
  });
  return bias;
}
