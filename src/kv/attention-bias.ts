/**
 * The additive attention biases the graph takes, one per attention type: [rows, 1, T, cached + T] over the cached
 * slots then the T new tokens, 0 where a query may look and HIDDEN where it may not. Every caller (decoding with a
 * KV cache, full passes for heads and hidden states, training) builds them here.
 */

/** Additive mask value for hidden keys: finite, so a row with no visible key gives no NaN (as HF's finfo.min). */
export const HIDDEN = -3.4028234663852886e38;

/** One row's queries: they sit in slots past..past+T-1; `visible(slot)` false marks padding (default: none). */
export interface BiasRow {
  past: number;
  visible?: (slot: number) => boolean;
}

/**
 * [rows, 1, T, capacity + T]: query t of a row sits in slot past + t and sees slot j iff j <= past + t,
 * past + t - window < j (local layers: window, else Infinity) and j is visible. Slots, not position ids, define the
 * window, as in Hugging Face's GPT-Neo. A null row sees nothing (a row that rides along in a batch).
 */
export function attentionBias(rows: readonly (BiasRow | null)[], T: number, capacity: number, window: number): Float32Array {
  const width = capacity + T;
  const bias = new Float32Array(rows.length * T * width).fill(HIDDEN);
  rows.forEach((row, b) => {
    if (!row) return;
    const { past } = row;
    const visible = row.visible ?? (() => true);
    const slotAt = cachedSlots(past, capacity, window);
    for (let t = 0; t < T; t++) {
      const query = past + t;
      const offset = (b * T + t) * width;
      for (let i = 0; i < capacity; i++) {
        const j = slotAt[i]!;
        if (j >= 0 && query - j < window && visible(j)) bias[offset + i] = 0;
      }
      for (let k = Math.max(0, t - window + 1); k <= t; k++) if (visible(past + k)) bias[offset + capacity + k] = 0;
    }
  });
  return bias;
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

/** The attention window of a layer type, in slots. */
export function attentionWindow(kind: 'global' | 'local', windowSize: number): number {
  return kind === 'local' ? windowSize : Infinity;
}
