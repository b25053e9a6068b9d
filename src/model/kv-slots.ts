/**
 * The KV cache of a server: a fixed pool of `maxBatch` rows (slots), each holding one sequence with its own
 * length and positions, so sequences join and leave a running batch between steps (continuous batching).
 *
 * Layout is the graph's: keys transposed [rows, heads, head_dim, capacity], values [rows, heads, capacity,
 * head_dim], local layers a ring of their window. The buffers for `maxBatch` full contexts are allocated once
 * (the OS commits pages only as they are written); `capacity`, the stride the graph attends over, follows the
 * longest reservation among the occupied slots, so short sequences do not pay attention over 2,048 slots.
 * Occupied slots are always rows 0..n-1: a slot that leaves is replaced by the last one, so a decoding step
 * feeds one contiguous view of the buffers, and a prompt chunk feeds the view of its own row.
 */
import { type InferenceRunner, OrtTensor } from '../runtime/tensor.js';
import type { AttentionType, GPTNeoConfig } from './config.js';
import {
  cachedSlots,
  HIDDEN,
  InputError,
  type LayerCache,
  newKeysAndValues,
  slotsFor,
  storeNewTokens,
  writeRowBias,
} from './decoder-session.js';
import type { TokenEmbeddings } from './embeddings.js';
import { IO } from './gpt-neo.js';
import type { LogitsOutput } from './types.js';

/** One sequence's place in the pool. */
export class KVSlot {
  /** Tokens in the cache (the next token's position). */
  length = 0;
  /** @internal row of the pool buffers, changed when the pool compacts. */
  row: number;

  constructor(
    row: number,
    /** Most tokens this sequence will hold (prompt + new tokens); the pool sizes its stride for it. */
    readonly reserved: number,
  ) {
    this.row = row;
  }
}

/** One row of a step: the tokens a slot appends. */
export interface SlotInput {
  slot: KVSlot;
  tokens: number[];
}

export class KVSlotPool {
  private readonly layers: LayerCache[];
  private readonly occupied: KVSlot[] = [];
  private capacity: Record<AttentionType, number> = { global: 0, local: 0 };

  constructor(
    private readonly runtime: InferenceRunner,
    private readonly config: GPTNeoConfig,
    private readonly embeddings: TokenEmbeddings,
    readonly maxBatch: number,
    /** Longest sequence a slot may hold (default and maximum: the context window). */
    readonly maxLength = config.max_position_embeddings,
  ) {
    if (!Number.isInteger(maxBatch) || maxBatch < 1) throw new InputError(`max batch must be an integer >= 1, got ${maxBatch}`);
    if (!Number.isInteger(maxLength) || maxLength < 1 || maxLength > config.max_position_embeddings) {
      throw new InputError(`slot length must be 1..${config.max_position_embeddings} (max_position_embeddings), got ${maxLength}`);
    }
    const full = slotsFor(maxLength);
    const rowFloats = (kind: AttentionType) =>
      config.hidden_size * (kind === 'local' ? Math.min(full, config.window_size) : full);
    this.layers = config.attention_layers.map((kind) => ({
      keysT: new Float32Array(maxBatch * rowFloats(kind)),
      values: new Float32Array(maxBatch * rowFloats(kind)),
    }));
  }

  get freeSlots(): number {
    return this.maxBatch - this.occupied.length;
  }

  get occupiedSlots(): number {
    return this.occupied.length;
  }

  /** A free slot for a sequence of at most `reserved` tokens; null when every slot is taken. */
  acquire(reserved: number): KVSlot | null {
    if (!Number.isInteger(reserved) || reserved < 1 || reserved > this.maxLength) {
      throw new InputError(`a slot holds 1..${this.maxLength} tokens, ${reserved} were asked for`);
    }
    if (this.freeSlots === 0) return null;
    const slot = new KVSlot(this.occupied.length, reserved);
    this.occupied.push(slot);
    this.fitCapacity();
    return slot;
  }

  /** Frees a slot at once; the last occupied row moves into its place. */
  release(slot: KVSlot): void {
    if (this.occupied[slot.row] !== slot) return;
    const last = this.occupied.pop()!;
    if (last !== slot) {
      for (const [layer, buffers] of this.layers.entries()) {
        const size = this.config.hidden_size * this.capacity[this.config.attention_layers[layer]!];
        buffers.keysT.copyWithin(slot.row * size, last.row * size, (last.row + 1) * size);
        buffers.values.copyWithin(slot.row * size, last.row * size, (last.row + 1) * size);
      }
      last.row = slot.row;
      this.occupied[slot.row] = last;
    }
    this.fitCapacity();
  }

  /**
   * One pass of the graph. A single input runs on its own row (a prompt chunk, any length); several inputs
   * must each add one token (a decoding step) and run as one batch over the occupied rows, rows without an
   * input riding along fully masked and left unchanged. Returns logits [inputs, T, vocab] in input order for
   * every position when `allPositions`, else [inputs, 1, vocab] for each input's last token.
   */
  async forward(inputs: SlotInput[], allPositions = false): Promise<LogitsOutput> {
    if (inputs.length === 0) throw new InputError('forward needs at least one slot input');
    const T = inputs[0]!.tokens.length;
    for (const { slot, tokens } of inputs) {
      if (this.occupied[slot.row] !== slot) throw new InputError('this slot was released');
      if (tokens.length === 0 || (inputs.length > 1 && tokens.length !== 1)) {
        throw new InputError('a batched step adds exactly one token per slot; a single slot adds one or more');
      }
      if (slot.length + tokens.length > slot.reserved) {
        throw new InputError(`slot holds at most ${slot.reserved} tokens, ${slot.length + tokens.length} were fed`);
      }
      const bad = tokens.find((id) => !Number.isInteger(id) || id < 0 || id >= this.config.vocab_size);
      if (bad !== undefined) throw new InputError(`token id ${bad} is outside the vocabulary (0..${this.config.vocab_size - 1})`);
    }
    // The fed rows: the input's own row alone, or every occupied row for a step.
    const first = inputs.length === 1 ? inputs[0]!.slot.row : 0;
    const rowInputs: (number[] | null)[] =
      inputs.length === 1 ? [inputs[0]!.tokens] : this.occupied.map(() => null);
    if (inputs.length > 1) for (const { slot, tokens } of inputs) rowInputs[slot.row] = tokens;
    const B = rowInputs.length;

    const ids = new Int32Array(B * T);
    const positions = new BigInt64Array(B * T);
    rowInputs.forEach((tokens, b) => {
      const past = this.occupied[first + b]!.length;
      for (let t = 0; t < T; t++) {
        ids[b * T + t] = tokens?.[t] ?? 0;
        positions[b * T + t] = BigInt(tokens ? past + t : 0);
      }
    });
    const logitRows = inputs.flatMap(({ slot }) => {
      const b = slot.row - first;
      return allPositions ? Array.from({ length: T }, (_, t) => b * T + t) : [b * T + T - 1];
    });
    const feeds: Record<string, OrtTensor> = {
      [IO.inputsEmbeds]: new OrtTensor('float32', this.embeddings.lookup(ids), [B, T, this.config.hidden_size]),
      [IO.positionIds]: new OrtTensor('int64', positions, [B, T]),
      [IO.logitRows]: new OrtTensor('int64', BigInt64Array.from(logitRows, BigInt), [logitRows.length]),
    };
    for (const kind of new Set(this.config.attention_layers)) {
      const bias = this.attentionBias(kind, first, rowInputs, T);
      feeds[IO.attentionBias(kind)] = new OrtTensor('float32', bias, [B, 1, T, this.capacity[kind] + T]);
    }
    const H = this.config.num_heads;
    const D = this.config.hidden_size / H;
    this.layers.forEach((buffers, layer) => {
      const capacity = this.capacity[this.config.attention_layers[layer]!];
      const view = (data: Float32Array) => data.subarray(first * H * D * capacity, (first + B) * H * D * capacity);
      feeds[IO.cachedKeys(layer)] = new OrtTensor('float32', view(buffers.keysT), [B, H, D, capacity]);
      feeds[IO.cachedValues(layer)] = new OrtTensor('float32', view(buffers.values), [B, H, capacity, D]);
    });

    const outputs = await this.runtime.run(feeds);
    rowInputs.forEach((tokens, b) => {
      if (tokens) this.store(outputs, this.occupied[first + b]!, b, T);
    });
    return {
      data: outputs[IO.logits]!.data as Float32Array,
      dims: [inputs.length, allPositions ? T : 1, this.config.vocab_size],
      logsumexp: outputs[IO.logSumExp]!.data as Float64Array,
    };
  }

  /** Writes fed row b's new keys and values into its slot's cache. */
  private store(outputs: Record<string, OrtTensor>, slot: KVSlot, b: number, T: number): void {
    const H = this.config.num_heads;
    this.layers.forEach((buffers, layer) => {
      const kind = this.config.attention_layers[layer]!;
      storeNewTokens(buffers, this.capacity[kind], newKeysAndValues(outputs, layer), {
        T,
        headDim: this.config.hidden_size / H,
        heads: H,
        fedHead: b * H,
        cachedHead: slot.row * H,
        past: slot.length,
        window: kind === 'local' ? this.config.window_size : null,
      });
    });
    slot.length += T;
  }

  /**
   * [rows, 1, T, capacity + T] additive bias: query t of a row sits at its slot's position length + t and sees
   * cached position j iff j <= that position and (local layers) within the window; rows without input see nothing.
   */
  private attentionBias(kind: AttentionType, first: number, rowInputs: (number[] | null)[], T: number): Float32Array {
    const capacity = this.capacity[kind];
    const window = kind === 'local' ? this.config.window_size : Infinity;
    const bias = new Float32Array(rowInputs.length * T * (capacity + T)).fill(HIDDEN);
    rowInputs.forEach((tokens, b) => {
      if (!tokens) return;
      const past = this.occupied[first + b]!.length;
      writeRowBias(bias, b, { past, T, capacity, window }, cachedSlots(past, capacity, window), () => true);
    });
    return bias;
  }

  /**
   * Sets the stride to the longest reservation among the occupied slots, moving the rows' contents in place:
   * growing walks rows from the last, shrinking from the first, so no row overwrites one not yet moved.
   */
  private fitCapacity(): void {
    const longest = Math.max(1, ...this.occupied.map((slot) => slot.reserved));
    const global = slotsFor(longest);
    const next = { global, local: Math.min(global, this.config.window_size) };
    const rows = this.occupied.length;
    const H = this.config.num_heads;
    const D = this.config.hidden_size / H;
    this.layers.forEach((buffers, layer) => {
      const kind = this.config.attention_layers[layer]!;
      const from = this.capacity[kind];
      const to = next[kind];
      if (from === to || from === 0) return;
      // keysT: rows*H*D lines of `capacity` floats; values: rows*H lines of capacity*D floats.
      const move = (data: Float32Array, lines: number, unit: number) => {
        const keep = Math.min(from, to) * unit;
        for (let k = 0; k < lines; k++) {
          const line = to > from ? lines - 1 - k : k;
          data.copyWithin(line * to * unit, line * from * unit, line * from * unit + keep);
        }
      };
      move(buffers.keysT, rows * H * D, 1);
      move(buffers.values, rows * H, D);
    });
    this.capacity = next;
  }
}
