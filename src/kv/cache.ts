/**
 * The KV cache: the one place that feeds the graph with cached keys and values and stores what it returns.
 * `generate()`, beam search and evaluation use it through a KVSession (a batch of rows that advance together);
 * the server's engine takes and frees rows between steps (continuous batching).
 *
 * Layout is the graph's: per layer, keys transposed [rows, heads, head_dim, capacity] and values [rows, heads,
 * capacity, head_dim]; local layers keep a ring of their window (index = slot % window). Occupied rows are always
 * rows 0..n-1 of the buffers (a row that leaves is replaced by the last one), so a pass feeds one contiguous view.
 * `capacity`, the stride the graph attends over, follows the longest reservation among the rows, so short
 * sequences do not pay attention over 2,048 slots; the buffers are allocated once for the expected length (the OS
 * commits pages only as they are written) and grow, with one copy, only when a row needs more.
 */
import type { AttentionType, GPTNeoConfig } from '../model/config.js';
import { checkTokenIds, InputError } from '../model/errors.js';
import { IO } from '../model/gpt-neo.js';
import type { LogitsOutput, TokenEmbeddings } from '../model/types.js';
import { hugePageFloat32Array } from '../runtime/huge-pages.js';
import { type InferenceRunner, OrtTensor } from '../runtime/tensor.js';
import { attentionBias, attentionWindow } from './attention-bias.js';

/** Inputs longer than this many tokens per row run through the graph in chunks of at most this size... */
const PREFILL_CHUNK = 256;
/**
 * ...halved while one chunk's attention scores [rows, heads, chunk, capacity + chunk] in float32 would take
 * more bytes than this: ONNX Runtime holds a few tensors of that size per pass, and at 1,900 tokens 256-token
 * chunks raised the peak RSS by 0.2 GB over 128-token ones.
 */
const CHUNK_SCORES_BYTES = 16 * 2 ** 20;
/** Capacity grows in steps of this many slots, so growing copies the cache rarely. */
const CAPACITY_STEP = 64;
const NO_FLOATS = new Float32Array(0);

/** The keys and values of some slots of one row, per layer: keys [heads, head_dim, slots], values [heads, slots, head_dim]. */
export interface SlotBlock {
  keysT: Float32Array;
  values: Float32Array;
}

/** One layer's buffers (see the layout above). */
interface LayerCache {
  keysT: Float32Array;
  values: Float32Array;
}

/** One sequence's row of the cache. */
export class KVRow {
  /** Tokens in the cache (the next token's slot). */
  length = 0;
  /** @internal row of the buffers, changed when rows move. */
  index: number;

  constructor(
    index: number,
    /** Most tokens this row expects to hold; the stride is sized for it (a longer input extends it). */
    public reserved: number,
  ) {
    this.index = index;
  }
}

/** One row of a pass: the tokens it appends. */
export interface RowInput {
  row: KVRow;
  tokens: readonly number[];
  /** Position ids of the new tokens (default row.length + t). */
  positions?: readonly number[];
  /** Over the row's cached slots and the new ones: 0 = padding, hidden from every query (default all 1). */
  mask?: readonly number[];
}

export interface KVCacheOptions {
  /** Most rows held at once. */
  rows: number;
  /** Tokens per row to allocate for up front. */
  length: number;
}

export class KVCache {
  private layers: LayerCache[] = [];
  private readonly occupied: KVRow[] = [];
  /** The stride the graph attends over now, per attention type. */
  private capacity: Record<AttentionType, number> = { global: 0, local: 0 };
  /** The buffers' geometry: rows and global slots per row. */
  private allocated: { rows: number; slots: number };
  readonly heads: number;
  private readonly headDim: number;

  constructor(
    private readonly runtime: InferenceRunner,
    private readonly config: GPTNeoConfig,
    private readonly embeddings: TokenEmbeddings,
    options: KVCacheOptions,
  ) {
    if (!Number.isInteger(options.rows) || options.rows < 1) throw new InputError(`a KV cache needs an integer number of rows >= 1, got ${options.rows}`);
    this.heads = config.num_heads;
    this.headDim = config.hidden_size / config.num_heads;
    this.allocated = { rows: options.rows, slots: slotsFor(Math.min(options.length, config.max_position_embeddings)) };
    this.layers = this.allocate(this.allocated);
  }

  get rows(): readonly KVRow[] {
    return this.occupied;
  }

  /** Slots a local attention layer keeps: its window. */
  get localWindow(): number {
    return this.config.window_size;
  }

  get freeRows(): number {
    return this.allocated.rows - this.occupied.length;
  }

  /** A new empty row for a sequence of about `reserved` tokens; null when every row is taken. */
  acquire(reserved: number): KVRow | null {
    const limit = this.config.max_position_embeddings;
    if (!Number.isInteger(reserved) || reserved < 1 || reserved > limit) {
      throw new InputError(`a row holds 1..${limit} tokens (max_position_embeddings), ${reserved} were asked for`);
    }
    if (this.freeRows === 0) return null;
    const row = new KVRow(this.occupied.length, reserved);
    this.occupied.push(row);
    this.fitCapacity();
    return row;
  }

  /** Frees a row at once; the last occupied row moves into its place. */
  release(row: KVRow): void {
    if (this.occupied[row.index] !== row) return;
    const last = this.occupied.pop()!;
    if (last !== row) {
      this.layers.forEach((buffers, layer) => {
        const size = this.config.hidden_size * this.capacity[this.kindOf(layer)];
        buffers.keysT.copyWithin(row.index * size, last.index * size, (last.index + 1) * size);
        buffers.values.copyWithin(row.index * size, last.index * size, (last.index + 1) * size);
      });
      last.index = row.index;
      this.occupied[row.index] = last;
    }
    this.fitCapacity();
  }

  /** Rebuilds the rows so that new row r continues old row sources[r] (beam search, expanding a prompt). */
  reorder(sources: readonly number[]): void {
    for (const r of sources) {
      if (!Number.isInteger(r) || r < 0 || r >= this.occupied.length) {
        throw new InputError(`reorder: row ${r} does not exist (${this.occupied.length} rows)`);
      }
    }
    this.allocated = { rows: Math.max(1, sources.length), slots: this.allocated.slots };
    const next = this.allocate(this.allocated);
    this.layers.forEach((buffers, layer) => {
      const rowSize = this.config.hidden_size * this.capacity[this.kindOf(layer)];
      const gather = (source: Float32Array, target: Float32Array) =>
        sources.forEach((r, i) => target.set(source.subarray(r * rowSize, (r + 1) * rowSize), i * rowSize));
      gather(buffers.keysT, next[layer]!.keysT);
      gather(buffers.values, next[layer]!.values);
    });
    this.layers = next;
    const rows = sources.map((r, i) => Object.assign(new KVRow(i, this.occupied[r]!.reserved), { length: this.occupied[r]!.length }));
    this.occupied.splice(0, this.occupied.length, ...rows);
  }

  /**
   * Runs the inputs' tokens through the model and appends them to their rows. Every input adds the same number
   * of tokens T; the pass covers the buffer rows from the first input's to the last's, rows between them without
   * an input riding along fully masked and unchanged. Returns logits [inputs, T, vocab] in input order when
   * `allPositions`, else [inputs, 1, vocab] for each input's last token. Long inputs run in chunks.
   */
  async forward(inputs: readonly RowInput[], options: { allPositions?: boolean } = {}): Promise<LogitsOutput> {
    const T = this.check(inputs);
    const allPositions = options.allPositions ?? false;
    const chunk = this.chunkLength(inputs);
    if (T <= chunk) return this.run(inputs, T, allPositions);
    // Attention over a chunk needs [heads, chunk, past + chunk] scores, not [heads, T, T], which for 2,048
    // tokens would take more memory than the float32 weights of the MLP.
    const chunks: LogitsOutput[] = [];
    for (let start = 0; start < T; start += chunk) {
      const length = Math.min(chunk, T - start);
      const part = inputs.map((input) => ({
        row: input.row,
        tokens: input.tokens.slice(start, start + length),
        positions: input.positions?.slice(start, start + length) ?? Array.from({ length }, (_, t) => input.row.length + t),
        mask: input.mask?.slice(0, input.row.length + length),
      }));
      const logits = await this.run(part, length, allPositions);
      if (allPositions || start + length === T) chunks.push(logits);
    }
    return allPositions ? concatPositions(chunks, inputs.length, this.config.vocab_size) : chunks.at(-1)!;
  }

  /**
   * A copy of the keys and values of `count` slots of a row from slot `from` on, per layer (keys [heads, head_dim,
   * count], values [heads, count, head_dim]). Local layers hold only their last window of slots: their older slots
   * are left zero, and `localFrom` says from which slot on every layer was copied.
   */
  readSlots(row: KVRow, from: number, count: number): { slots: SlotBlock[]; localFrom: number } {
    this.checkSlots(row, from, count, row.length);
    const slots = this.layers.map((cache, layer) => {
      const block = { keysT: new Float32Array(this.heads * this.headDim * count), values: new Float32Array(this.heads * count * this.headDim) };
      for (const run of this.slotRuns(layer, from, count, row.length)) this.copyRun(cache, block, row, layer, run, count, 'read');
      return block;
    });
    const local = this.config.attention_layers.includes('local');
    return { slots, localFrom: local ? Math.max(from, row.length - this.localWindow) : from };
  }

  /**
   * Writes slots read by readSlots (of the same tokens at the same positions) at the end of a row, and extends the
   * row over them: it continues as if it had run those tokens. `offset` and `count` pick slots of the blocks (default
   * all); slots that a local layer's window will not reach from `windowEnd` (where the caller's writes end) are left
   * out of that layer.
   */
  writeSlots(row: KVRow, blocks: readonly SlotBlock[], part: { offset?: number; count?: number; windowEnd?: number } = {}): void {
    const from = row.length;
    const stored = blocks[0] ? blocks[0].keysT.length / (this.heads * this.headDim) : 0;
    const offset = part.offset ?? 0;
    const count = part.count ?? stored - offset;
    if (offset < 0 || offset + count > stored) throw new InputError(`slots ${offset}..${offset + count - 1} are outside the ${stored} slots given`);
    this.checkSlots(row, from, count, this.config.max_position_embeddings);
    row.reserved = Math.max(row.reserved, from + count);
    this.fitCapacity();
    this.layers.forEach((cache, layer) => {
      for (const run of this.slotRuns(layer, from, count, Math.max(part.windowEnd ?? 0, from + count))) {
        this.copyRun(cache, blocks[layer]!, row, layer, { ...run, slot: run.slot + offset }, stored, 'write');
      }
    });
    row.length = from + count;
  }

  dispose(): void {
    this.layers = [];
    this.occupied.splice(0);
  }

  /** Checks the inputs and extends reservations the new tokens exceed; returns T. */
  private check(inputs: readonly RowInput[]): number {
    if (inputs.length === 0) throw new InputError('a pass needs at least one row input');
    const T = inputs[0]!.tokens.length;
    const seen = new Set<KVRow>();
    for (const { row, tokens, positions, mask } of inputs) {
      if (this.occupied[row.index] !== row) throw new InputError('this row of the KV cache was released');
      if (seen.has(row)) throw new InputError('a row appears twice in one pass');
      seen.add(row);
      if (tokens.length === 0 || tokens.length !== T) throw new InputError(`every row of a pass adds the same number (>= 1) of tokens, got ${tokens.length} and ${T}`);
      checkTokenIds(tokens, this.config.vocab_size, 'tokens');
      const total = row.length + T;
      if (total > this.config.max_position_embeddings) {
        throw new InputError(`sequence length ${total} exceeds max_position_embeddings ${this.config.max_position_embeddings} of this model`);
      }
      if (positions && positions.length !== T) throw new InputError(`positions must have ${T} entries like the tokens`);
      if (mask && mask.length !== total) throw new InputError(`a row's mask must cover its ${total} slots, got ${mask.length}`);
    }
    let grown = false;
    for (const { row } of inputs) {
      if (row.length + T > row.reserved) [row.reserved, grown] = [row.length + T, true];
    }
    if (grown) this.fitCapacity();
    return T;
  }

  /** Tokens per row in one pass of a long input (see CHUNK_SCORES_BYTES). */
  private chunkLength(inputs: readonly RowInput[]): number {
    const rows = this.fedRange(inputs).count;
    const scoresBytes = (chunk: number) => 4 * rows * this.heads * chunk * (this.capacity.global + chunk);
    let chunk = PREFILL_CHUNK;
    while (chunk > 16 && scoresBytes(chunk) > CHUNK_SCORES_BYTES) chunk /= 2;
    return chunk;
  }

  private fedRange(inputs: readonly RowInput[]): { first: number; count: number } {
    const indices = inputs.map((input) => input.row.index);
    const first = Math.min(...indices);
    return { first, count: Math.max(...indices) - first + 1 };
  }

  /** One pass of the graph over T new tokens per input (already checked), appending them to the cache. */
  private async run(inputs: readonly RowInput[], T: number, allPositions: boolean): Promise<LogitsOutput> {
    const { first, count: B } = this.fedRange(inputs);
    const byRow: (RowInput | null)[] = new Array(B).fill(null);
    for (const input of inputs) byRow[input.row.index - first] = input;

    const ids = new Int32Array(B * T);
    const positions = new BigInt64Array(B * T);
    byRow.forEach((input, b) => {
      if (!input) return;
      for (let t = 0; t < T; t++) {
        ids[b * T + t] = input.tokens[t]!;
        positions[b * T + t] = BigInt(input.positions?.[t] ?? input.row.length + t);
      }
    });
    const logitRows = inputs.flatMap(({ row }) => {
      const b = row.index - first;
      return allPositions ? Array.from({ length: T }, (_, t) => b * T + t) : [b * T + T - 1];
    });
    const feeds: Record<string, OrtTensor> = {
      [IO.inputsEmbeds]: new OrtTensor('float32', this.embeddings.lookup(ids), [B, T, this.config.hidden_size]),
      [IO.positionIds]: new OrtTensor('int64', positions, [B, T]),
      [IO.logitRows]: new OrtTensor('int64', BigInt64Array.from(logitRows, BigInt), [logitRows.length]),
    };
    // With nothing cached in the fed rows (a prompt, or its first chunk) the graph gets empty caches: attention
    // over reserved but unused slots would only cost time.
    const empty = inputs.every((input) => input.row.length === 0) && this.runtime.zeroSizedTensors !== false;
    const attended = (kind: AttentionType) => (empty ? 0 : this.capacity[kind]);
    const biasRows = byRow.map((input) => {
      if (!input) return null;
      const mask = input.mask;
      return { past: input.row.length, visible: mask ? (slot: number) => mask[slot] === 1 : undefined };
    });
    for (const kind of new Set(this.config.attention_layers)) {
      const bias = attentionBias(biasRows, T, attended(kind), attentionWindow(kind, this.config.window_size));
      feeds[IO.attentionBias(kind)] = new OrtTensor('float32', bias, [B, 1, T, attended(kind) + T]);
    }
    const H = this.heads;
    const D = this.headDim;
    this.layers.forEach((buffers, layer) => {
      const capacity = attended(this.kindOf(layer));
      const view = (data: Float32Array) => (capacity === 0 ? NO_FLOATS : data.subarray(first * H * D * capacity, (first + B) * H * D * capacity));
      feeds[IO.cachedKeys(layer)] = new OrtTensor('float32', view(buffers.keysT), [B, H, D, capacity]);
      feeds[IO.cachedValues(layer)] = new OrtTensor('float32', view(buffers.values), [B, H, capacity, D]);
    });

    const outputs = await this.runtime.run(feeds);
    byRow.forEach((input, b) => {
      if (input) this.store(outputs, input.row, b, T);
    });
    return {
      data: outputs[IO.logits]!.data as Float32Array,
      dims: [inputs.length, allPositions ? T : 1, this.config.vocab_size],
      logsumexp: outputs[IO.logSumExp]!.data as Float64Array,
    };
  }

  /**
   * Copies fed row b's T new keys and values into its row, the first at slot row.length: the graph's outputs for
   * that row ([heads, head_dim, T] keys, [heads, T, head_dim] values) are a block of T slots.
   */
  private store(outputs: Record<string, OrtTensor>, row: KVRow, b: number, T: number): void {
    const size = this.heads * this.headDim * T;
    this.layers.forEach((cache, layer) => {
      const fresh = {
        keysT: (outputs[IO.newKeys(layer)]!.data as Float32Array).subarray(b * size, (b + 1) * size),
        values: (outputs[IO.newValues(layer)]!.data as Float32Array).subarray(b * size, (b + 1) * size),
      };
      for (const run of this.slotRuns(layer, row.length, T, row.length + T)) this.copyRun(cache, fresh, row, layer, run, T, 'write');
    });
    row.length += T;
  }

  /**
   * Sets the stride to the longest reservation among the rows. Within the buffers the rows' contents move in
   * place (growing walks rows from the last, shrinking from the first, so no row overwrites one not yet moved);
   * past them, new buffers take the rows in one copy.
   */
  private fitCapacity(): void {
    const global = slotsFor(Math.max(1, ...this.occupied.map((row) => row.reserved)));
    const next = { global, local: Math.min(global, this.config.window_size) };
    if (next.global === this.capacity.global) return;
    const target = global > this.allocated.slots ? this.allocate((this.allocated = { rows: this.allocated.rows, slots: global })) : this.layers;
    const rows = this.occupied.length;
    const H = this.heads;
    const D = this.headDim;
    this.layers.forEach((buffers, layer) => {
      const kind = this.kindOf(layer);
      const from = this.capacity[kind];
      const to = next[kind];
      if (from === 0 || (from === to && target === this.layers)) return;
      // keysT: rows*H*D lines of `capacity` floats; values: rows*H lines of capacity*D floats.
      const move = (source: Float32Array, destination: Float32Array, lines: number, unit: number) => {
        const keep = Math.min(from, to) * unit;
        for (let k = 0; k < lines; k++) {
          const line = to > from ? lines - 1 - k : k;
          destination.set(source.subarray(line * from * unit, line * from * unit + keep), line * to * unit);
        }
      };
      move(buffers.keysT, target[layer]!.keysT, rows * H * D, 1);
      move(buffers.values, target[layer]!.values, rows * H, D);
    });
    this.layers = target;
    this.capacity = next;
  }

  private allocate(geometry: { rows: number; slots: number }): LayerCache[] {
    return this.config.attention_layers.map((kind) => {
      const slots = kind === 'local' ? Math.min(geometry.slots, this.config.window_size) : geometry.slots;
      const floats = geometry.rows * this.config.hidden_size * slots;
      return { keysT: hugePageFloat32Array(floats), values: hugePageFloat32Array(floats) };
    });
  }

  private checkSlots(row: KVRow, from: number, count: number, end: number): void {
    if (this.occupied[row.index] !== row) throw new InputError('this row of the KV cache was released');
    if (!Number.isInteger(from) || !Number.isInteger(count) || from < 0 || count < 0 || from + count > end) {
      throw new InputError(`slots ${from}..${from + count - 1} are outside the row's ${end} slots`);
    }
  }

  /**
   * Where slots from..from+count-1 sit in a layer, as runs of consecutive cache indices: one run in a global layer,
   * up to two where a local layer's ring wraps. The ring holds the last `window` slots before `end`: older slots
   * are left out.
   */
  private slotRuns(layer: number, from: number, count: number, end: number): { slot: number; index: number; length: number }[] {
    if (this.kindOf(layer) === 'global') return count > 0 ? [{ slot: 0, index: from, length: count }] : [];
    const window = this.config.window_size;
    const first = Math.max(from, end - window);
    const runs = [];
    for (let position = first; position < from + count; ) {
      const index = position % window;
      const length = Math.min(from + count - position, window - index);
      runs.push({ slot: position - from, index, length });
      position += length;
    }
    return runs;
  }

  /** Copies one run of slots between a layer's buffers and a block of `count` slots, either way. */
  private copyRun(cache: LayerCache, block: SlotBlock, row: KVRow, layer: number, run: { slot: number; index: number; length: number }, count: number, mode: 'read' | 'write'): void {
    const capacity = this.capacity[this.kindOf(layer)];
    const D = this.headDim;
    const move = (cached: Float32Array, at: number, blockData: Float32Array, blockAt: number, length: number) =>
      mode === 'read' ? copy(cached, at, blockData, blockAt, length) : copy(blockData, blockAt, cached, at, length);
    for (let h = 0; h < this.heads; h++) {
      const cachedHead = row.index * this.heads + h;
      for (let d = 0; d < D; d++) {
        move(cache.keysT, (cachedHead * D + d) * capacity + run.index, block.keysT, (h * D + d) * count + run.slot, run.length);
      }
      move(cache.values, (cachedHead * capacity + run.index) * D, block.values, (h * count + run.slot) * D, run.length * D);
    }
  }

  private kindOf(layer: number): AttentionType {
    return this.config.attention_layers[layer]!;
  }
}

/** Cache slots for `total` tokens: whole steps of CAPACITY_STEP. */
function slotsFor(total: number): number {
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
