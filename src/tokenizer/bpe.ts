import { BYTE_TO_CHAR } from './byte-level.js';
import { TokenizerError } from './errors.js';

/** Marks a symbol slot that was merged into its left neighbour. */
const MERGED_AWAY = -1;
const NONE = -1;

/**
 * Byte-pair encoding over token ids: a word starts as one id per byte and adjacent pairs are merged by rank
 * (lowest first, leftmost first among equal ranks), exactly like HF tokenizers' `Word::merge_all`. A heap keeps
 * long words (a megabyte without spaces) at O(n log n) instead of GPT-2's quadratic rescans.
 */
export class BytePairEncoder {
  private readonly idSpan: number;
  private readonly rankByPair = new Map<number, number>();
  private readonly mergedIdByRank: number[] = [];
  /** Vocab id of each byte's single-character entry, or NONE when the vocab lacks it. */
  private readonly byteIds = new Int32Array(256).fill(NONE);

  /** `merges` in rank order; every merge, and the token it produces, must be in `vocab` (HF refuses otherwise). */
  constructor(vocab: ReadonlyMap<string, number>, merges: ReadonlyArray<readonly [string, string]>) {
    let largestId = 0;
    for (const id of vocab.values()) largestId = Math.max(largestId, id);
    this.idSpan = largestId + 1;

    merges.forEach(([left, right], rank) => {
      const idOf = (token: string) => {
        const id = vocab.get(token);
        if (id === undefined) {
          throw new TokenizerError(
            `merge ${rank + 1} ("${left} ${right}") needs "${token}", which is not in the vocabulary`,
          );
        }
        return id;
      };
      // Later duplicates overwrite earlier ones, as in both HF implementations.
      this.rankByPair.set(this.pairKey(idOf(left), idOf(right)), rank);
      this.mergedIdByRank.push(idOf(left + right));
    });

    BYTE_TO_CHAR.forEach((char, byte) => {
      this.byteIds[byte] = vocab.get(char) ?? NONE;
    });
  }

  /** Token ids of one pre-tokenized word given as UTF-8 bytes. */
  encodeWord(bytes: Uint8Array): number[] {
    const symbolCount = bytes.length;
    const ids = new Int32Array(symbolCount);
    for (let i = 0; i < symbolCount; i++) {
      const id = this.byteIds[bytes[i]!]!;
      if (id === NONE) {
        throw new TokenizerError(
          `byte 0x${bytes[i]!.toString(16).padStart(2, '0')} ("${BYTE_TO_CHAR[bytes[i]!]}") is not in the vocabulary`,
        );
      }
      ids[i] = id;
    }
    if (symbolCount < 2) return Array.from(ids);

    const previous = new Int32Array(symbolCount);
    const next = new Int32Array(symbolCount);
    for (let i = 0; i < symbolCount; i++) {
      previous[i] = i - 1;
      next[i] = i + 1 < symbolCount ? i + 1 : NONE;
    }

    // Heap keys order by (rank, position) in one number: rank * symbolCount + position.
    const queue = new MinHeap();
    const enqueuePairAt = (position: number) => {
      const rank = this.rankOf(ids[position]!, ids[next[position]!]!);
      if (rank !== undefined) queue.push(rank * symbolCount + position);
    };
    for (let i = 0; i + 1 < symbolCount; i++) enqueuePairAt(i);

    while (queue.size > 0) {
      const key = queue.pop();
      const position = key % symbolCount;
      const rank = (key - position) / symbolCount;
      const right = next[position]!;
      // Entries go stale when a neighbour was merged since they were queued.
      if (ids[position] === MERGED_AWAY || right === NONE) continue;
      if (this.rankOf(ids[position]!, ids[right]!) !== rank) continue;

      ids[position] = this.mergedIdByRank[rank]!;
      ids[right] = MERGED_AWAY;
      const afterRight = next[right]!;
      next[position] = afterRight;
      if (afterRight !== NONE) {
        previous[afterRight] = position;
        enqueuePairAt(position);
      }
      if (previous[position] !== NONE) enqueuePairAt(previous[position]!);
    }

    const result: number[] = [];
    for (let i = 0; i !== NONE; i = next[i]!) result.push(ids[i]!);
    return result;
  }

  private pairKey(leftId: number, rightId: number): number {
    return leftId * this.idSpan + rightId;
  }

  private rankOf(leftId: number, rightId: number): number | undefined {
    return this.rankByPair.get(this.pairKey(leftId, rightId));
  }
}

class MinHeap {
  private readonly items: number[] = [];

  get size(): number {
    return this.items.length;
  }

  push(value: number): void {
    const items = this.items;
    let index = items.length;
    items.push(value);
    while (index > 0) {
      const parent = (index - 1) >> 1;
      if (items[parent]! <= value) break;
      items[index] = items[parent]!;
      index = parent;
    }
    items[index] = value;
  }

  /** Removes and returns the smallest value; only call when size > 0. */
  pop(): number {
    const items = this.items;
    const smallest = items[0]!;
    const last = items.pop()!;
    const count = items.length;
    if (count === 0) return smallest;
    let index = 0;
    for (;;) {
      let child = 2 * index + 1;
      if (child >= count) break;
      if (child + 1 < count && items[child + 1]! < items[child]!) child++;
      if (items[child]! >= last) break;
      items[index] = items[child]!;
      index = child;
    }
    items[index] = last;
    return smallest;
  }
}
