import { hugePageFloat32Array } from '../runtime/huge-pages.js';
import { type InferenceRunner, OrtTensor } from '../runtime/tensor.js';
import type { AttentionType, GPTNeoConfig } from './config.js';
import type { TokenEmbeddings } from './embeddings.js';
import { IO } from './gpt-neo.js';
import type { DecoderSession, ForwardInput, LogitsOutput } from './types.js';

export class InputError extends Error {}

/** Additive mask value for hidden keys: finite, so a row with no visible key gives no NaN (as HF's finfo.min). */
export const HIDDEN = -3.4028234663852886e38;

/** Inputs longer than this many tokens per row run through the graph in chunks of at most this size... */
const PREFILL_CHUNK = 256;
/**
 * ...halved while one chunk's attention scores [batch, heads, chunk, capacity + chunk] in float32 would take
 * more bytes than this: ONNX Runtime holds a few tensors of that size per pass, and at 1,900 tokens 256-token
 * chunks raised the peak RSS by 0.2 GB over 128-token ones.
 */
const CHUNK_SCORES_BYTES = 16 * 2 ** 20;

/** The data of an empty cache tensor. */
const NO_FLOATS = new Float32Array(0);

/** Cache capacity grows in steps of this many slots, so growing copies the cache rarely. */
const CAPACITY_STEP = 64;

/**
 * One layer's cache: keys transposed [batch, heads, head_dim, capacity], values [batch, heads, capacity, head_dim].
 * Global layers keep every slot (index = slot); local layers keep a ring of their window (index = slot % window).
 */
export interface LayerCache {
  keysT: Float32Array;
  values: Float32Array;
}

/** A batch of sequences and their KV cache, kept in JS buffers that the graph reads without copying. */
export class GPTNeoDecoderSession implements DecoderSession {
  private caches: LayerCache[] = [];
  private capacity: Record<AttentionType, number> = { global: 0, local: 0 };
  private pastLen = 0;
  private rows: number;
  private readonly headDim: number;

  constructor(
    private readonly runtime: InferenceRunner,
    private readonly config: GPTNeoConfig,
    private readonly embeddings: TokenEmbeddings,
    batchSize: number,
    maxLength = CAPACITY_STEP,
  ) {
    if (!Number.isInteger(batchSize) || batchSize < 1) throw new InputError(`batch size must be >= 1, got ${batchSize}`);
    this.rows = batchSize;
    this.headDim = config.hidden_size / config.num_heads;
    // Growing copies the whole cache into new buffers (at 1,900 tokens, 0.4 GB and ~0.6 s), so a session that
    // knows its length, as generation does, allocates it once.
    this.resize(slotsFor(Math.min(maxLength, config.max_position_embeddings)));
  }

  get batchSize(): number {
    return this.rows;
  }

  get pastLength(): number {
    return this.pastLen;
  }

  async forward(input: ForwardInput, options: { allPositions?: boolean } = {}): Promise<LogitsOutput> {
    const { vocab_size: V, max_position_embeddings } = this.config;
    const B = this.rows;
    const T = checkRectangle(input.input_ids, 'input_ids', B);
    if (T === 0) throw new InputError('input_ids: every row needs at least one token');
    const total = this.pastLen + T;
    if (total > max_position_embeddings) {
      throw new InputError(
        `sequence length ${total} exceeds max_position_embeddings ${max_position_embeddings} of this model`,
      );
    }
    const ids = new Int32Array(B * T);
    input.input_ids.forEach((row, b) =>
      row.forEach((id, t) => {
        if (!Number.isInteger(id) || id < 0 || id >= V) {
          throw new InputError(`input_ids[${b}][${t}] = ${id} is outside the vocabulary (0..${V - 1})`);
        }
        ids[b * T + t] = id;
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

    this.reserve(total);
    const chunk = this.chunkLength();
    if (T <= chunk) return this.run(ids, positions, mask, T, options.allPositions ?? false);

    // Long inputs run in chunks: attention over a chunk needs [heads, chunk, past + chunk] scores, not
    // [heads, T, T], which for 2048 tokens would take more memory than the float32 weights of the MLP.
    const chunks: LogitsOutput[] = [];
    for (let start = 0; start < T; start += chunk) {
      const length = Math.min(chunk, T - start);
      // Columns start..start+length of every row of a [B, T] array.
      const inChunk = (_: unknown, i: number) => i % T >= start && i % T < start + length;
      const slice = { ids: ids.filter(inChunk), positions: positions.filter(inChunk) };
      const visible = mask.map((row) => row.slice(0, this.pastLen + length));
      const logits = await this.run(slice.ids, slice.positions, visible, length, options.allPositions ?? false);
      if (options.allPositions || start + length === T) chunks.push(logits);
    }
    return options.allPositions ? concatPositions(chunks, B, V) : chunks[chunks.length - 1]!;
  }

  /** Tokens per row in one pass of a long input (see CHUNK_SCORES_BYTES). */
  private chunkLength(): number {
    const scoresBytes = (chunk: number) => 4 * this.rows * this.config.num_heads * chunk * (this.capacity.global + chunk);
    let chunk = PREFILL_CHUNK;
    while (chunk > 16 && scoresBytes(chunk) > CHUNK_SCORES_BYTES) chunk /= 2;
    return chunk;
  }

  /** One pass of the graph over T new tokens per row (already validated), appending them to the cache. */
  private async run(ids: Int32Array, positions: BigInt64Array, mask: number[][], T: number, allPositions: boolean) {
    const B = this.rows;
    const V = this.config.vocab_size;
    const logitRows = allPositions
      ? BigInt64Array.from({ length: B * T }, (_, i) => BigInt(i))
      : BigInt64Array.from({ length: B }, (_, b) => BigInt(b * T + T - 1));
    const feeds: Record<string, OrtTensor> = {
      [IO.inputsEmbeds]: new OrtTensor('float32', this.embeddings.lookup(ids), [B, T, this.config.hidden_size]),
      [IO.positionIds]: new OrtTensor('int64', positions, [B, T]),
      [IO.logitRows]: new OrtTensor('int64', logitRows, [logitRows.length]),
    };
    // With nothing cached yet (a prompt, or its first chunk) the graph gets empty caches: attention over
    // reserved but unused slots would only cost time.
    const attended = (kind: AttentionType) => (this.pastLen === 0 && this.runtime.zeroSizedTensors !== false ? 0 : this.capacity[kind]);
    for (const kind of new Set(this.config.attention_layers)) {
      const bias = this.attentionBias(kind, attended(kind), mask, T);
      feeds[IO.attentionBias(kind)] = new OrtTensor('float32', bias, [B, 1, T, attended(kind) + T]);
    }
    const { num_heads: H } = this.config;
    const D = this.headDim;
    this.caches.forEach((cache, layer) => {
      const capacity = attended(this.config.attention_layers[layer]!);
      feeds[IO.cachedKeys(layer)] = new OrtTensor('float32', capacity === 0 ? NO_FLOATS : cache.keysT, [B, H, D, capacity]);
      feeds[IO.cachedValues(layer)] = new OrtTensor('float32', capacity === 0 ? NO_FLOATS : cache.values, [B, H, capacity, D]);
    });

    const outputs = await this.runtime.run(feeds);
    this.store(outputs, T);
    return {
      data: outputs[IO.logits]!.data as Float32Array,
      dims: [B, allPositions ? T : 1, V],
      logsumexp: outputs[IO.logSumExp]!.data as Float64Array,
    };
  }

  reorder(rows: readonly number[]): void {
    for (const r of rows) {
      if (!Number.isInteger(r) || r < 0 || r >= this.rows) {
        throw new InputError(`reorder: row ${r} does not exist (batch size ${this.rows})`);
      }
    }
    this.caches = this.caches.map((cache, layer) => {
      const rowSize = this.config.hidden_size * this.capacity[this.config.attention_layers[layer]!];
      const gather = (source: Float32Array) => {
        const target = new Float32Array(rows.length * rowSize);
        rows.forEach((r, i) => target.set(source.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
        return target;
      };
      return { keysT: gather(cache.keysT), values: gather(cache.values) };
    });
    this.rows = rows.length;
  }

  dispose(): void {
    this.caches = [];
  }

  /** Writes this step's keys and values into the cache (room was reserved before the run). */
  private store(outputs: Record<string, OrtTensor>, T: number): void {
    this.caches.forEach((cache, layer) => {
      const kind = this.config.attention_layers[layer]!;
      storeNewTokens(cache, this.capacity[kind], newKeysAndValues(outputs, layer), {
        T,
        headDim: this.headDim,
        heads: this.rows * this.config.num_heads,
        fedHead: 0,
        cachedHead: 0,
        past: this.pastLen,
        window: kind === 'local' ? this.config.window_size : null,
      });
    });
    this.pastLen += T;
  }

  /** Makes room for `total` slots at once, so a long input grows (and copies) the cache once, not per chunk. */
  private reserve(total: number): void {
    const needed = slotsFor(total);
    if (needed > this.capacity.global) this.resize(needed);
  }

  /** Grows every layer's cache to `capacity` slots (local layers to at most their window), keeping contents. */
  private resize(capacity: number): void {
    const next = { global: capacity, local: Math.min(capacity, this.config.window_size) };
    const { num_heads: H } = this.config;
    const D = this.headDim;
    const BH = this.rows * H;
    this.caches = this.config.attention_layers.map((kind, layer) => {
      const old = this.caches[layer];
      const from = this.capacity[kind];
      const to = next[kind];
      if (old && from === to) return old;
      const keysT = hugePageFloat32Array(BH * D * to);
      const values = hugePageFloat32Array(BH * to * D);
      if (old) {
        for (let row = 0; row < BH * D; row++) keysT.set(old.keysT.subarray(row * from, (row + 1) * from), row * to);
        for (let bh = 0; bh < BH; bh++) values.set(old.values.subarray(bh * from * D, (bh + 1) * from * D), bh * to * D);
      }
      return { keysT, values };
    });
    this.capacity = next;
  }

  /**
   * [batch, 1, T, capacity + T] additive bias over [cached slots, new tokens] (capacity 0: nothing cached).
   * Query t sits in slot past+t and sees slot j iff j <= slot, slot - window < j (local layers) and j is not
   * padding. Slots, not position ids, define the window, as in Hugging Face's GPT-Neo.
   */
  private attentionBias(kind: AttentionType, capacity: number, mask: number[][], T: number): Float32Array {
    const past = this.pastLen;
    const window = kind === 'local' ? this.config.window_size : Infinity;
    const bias = new Float32Array(mask.length * T * (capacity + T)).fill(HIDDEN);
    const slotAt = cachedSlots(past, capacity, window);
    mask.forEach((row, b) => writeRowBias(bias, b, { past, T, capacity, window }, slotAt, (slot) => row[slot] === 1));
    return bias;
  }
}

/**
 * The slot each cache index holds (or -1 when empty): the latest past slot that maps to that index (index = slot,
 * or slot % window in a local layer's ring).
 */
export function cachedSlots(past: number, capacity: number, window: number): Int32Array {
  const slotAt = new Int32Array(capacity).fill(-1);
  for (let slot = Math.max(0, past - Math.min(window, capacity)); slot < past; slot++) slotAt[slot % window] = slot;
  return slotAt;
}

/**
 * Opens row b of a [rows, 1, T, capacity + T] bias (filled with HIDDEN): query t sits in slot past + t and sees
 * slot j iff j <= past + t, past + t - window < j, and j is not padding (`visible`).
 */
export function writeRowBias(
  bias: Float32Array,
  b: number,
  at: { past: number; T: number; capacity: number; window: number },
  slotAt: Int32Array,
  visible: (slot: number) => boolean,
): void {
  const { past, T, capacity, window } = at;
  const width = capacity + T;
  for (let t = 0; t < T; t++) {
    const query = past + t;
    const offset = (b * T + t) * width;
    for (let i = 0; i < capacity; i++) {
      const j = slotAt[i]!;
      if (j >= 0 && query - j < window && visible(j)) bias[offset + i] = 0;
    }
    for (let k = Math.max(0, t - window + 1); k <= t; k++) if (visible(past + k)) bias[offset + capacity + k] = 0;
  }
}

/** A layer's keys [batch, heads, head_dim, T] and values [batch, heads, T, head_dim] of the tokens just run. */
export function newKeysAndValues(outputs: Record<string, OrtTensor>, layer: number): LayerCache {
  return { keysT: outputs[IO.newKeys(layer)]!.data as Float32Array, values: outputs[IO.newValues(layer)]!.data as Float32Array };
}

/**
 * Copies the T new tokens of `heads` consecutive (row, head) pairs of a layer's outputs, from pair `fedHead` on,
 * into the cache from pair `cachedHead` on, the first token at position `past`. New tokens fill consecutive cache
 * indices, in one run (global layers) or two where a local layer's ring of `window` wraps around; a local layer
 * only needs the last `window` of them.
 */
export function storeNewTokens(
  cache: LayerCache,
  capacity: number,
  fresh: LayerCache,
  at: { T: number; headDim: number; heads: number; fedHead: number; cachedHead: number; past: number; window: number | null },
): void {
  const { T, headDim: D, window } = at;
  for (let t = window === null ? 0 : Math.max(0, T - window); t < T; ) {
    const index = window === null ? at.past + t : (at.past + t) % window;
    const length = Math.min(T - t, capacity - index);
    for (let h = 0; h < at.heads; h++) {
      const fed = at.fedHead + h;
      const cached = at.cachedHead + h;
      copy(fresh.values, (fed * T + t) * D, cache.values, (cached * capacity + index) * D, length * D);
      for (let d = 0; d < D; d++) copy(fresh.keysT, (fed * D + d) * T + t, cache.keysT, (cached * D + d) * capacity + index, length);
    }
    t += length;
  }
}

/** Cache slots for `total` tokens: whole steps of CAPACITY_STEP. */
export function slotsFor(total: number): number {
  return Math.max(1, Math.ceil(total / CAPACITY_STEP)) * CAPACITY_STEP;
}

/** Copies `length` floats; TypedArray.set costs more than a loop for the few floats of one decoding step. */
function copy(source: Float32Array, from: number, target: Float32Array, to: number, length: number): void {
  if (length < 32) {
    for (let i = 0; i < length; i++) target[to + i] = source[from + i]!;
  } else {
    target.set(source.subarray(from, from + length), to);
  }
}

export function checkRectangle(rows: number[][], name: string, batch: number): number {
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

/** Joins per-chunk logits [B, t_i, V] into [B, sum t_i, V], row by row. */
function concatPositions(chunks: LogitsOutput[], B: number, V: number): LogitsOutput {
  const T = chunks.reduce((sum, chunk) => sum + chunk.dims[1]!, 0);
  const data = new Float32Array(B * T * V);
  const logsumexp = new Float64Array(B * T);
  let offset = 0;
  for (const chunk of chunks) {
    const t = chunk.dims[1]!;
    for (let b = 0; b < B; b++) {
      data.set(chunk.data.subarray(b * t * V, (b + 1) * t * V), (b * T + offset) * V);
      logsumexp.set(chunk.logsumexp.subarray(b * t, (b + 1) * t), b * T + offset);
    }
    offset += t;
  }
  return { data, dims: [B, T, V], logsumexp };
}
