/**
 * Automatic prefix caching (vLLM's): the keys and values of recent prompts, kept in blocks of BLOCK_TOKENS tokens,
 * so a prompt that starts like an earlier one (a chat's system prompt, few-shot examples, the n choices of one
 * request) skips the part already computed. A block is found by its own tokens and everything before it: the
 * blocks form a tree whose paths are token prefixes (as SGLang's radix cache), so a match is exact, never a hash
 * that could collide. Least recently used leaves are evicted to stay within a byte budget.
 *
 * A block's keys and values depend only on its tokens, the tokens before it and their positions, and every row
 * starts at position 0, so a restored prefix gives the row exactly what running it would have. Local attention
 * layers keep only a window of slots, so blocks are copied from a row right after the pass that computed them,
 * and a prefix is restored only where its blocks hold the local layers' last window before its end (what the
 * row needs of them).
 */
import type { KVCache, KVRow, SlotBlock } from './cache.js';

/** Tokens per block: a prefix is reused in whole blocks (vLLM's default block size). */
export const BLOCK_TOKENS = 16;

/**
 * The slots of consecutive blocks copied from a row in one read (the blocks one pass completed), shared by their
 * nodes: restoring a run of them copies long runs of slots instead of 16 at a time. Its bytes count until its
 * last block is evicted.
 */
interface Segment {
  slots: SlotBlock[];
  bytes: number;
  blocks: number;
}

interface BlockNode {
  /** The node's tokens, as the key its parent finds it by. */
  key: string;
  parent: BlockNode | null;
  children: Map<string, BlockNode>;
  segment: Segment | null;
  /** The block's first slot in its segment. */
  offset: number;
  /** From this slot on the block holds every layer's keys and values; local layers' older slots were gone. */
  localFrom: number;
  lastUsed: number;
}

export interface PrefixCacheStats {
  /** Prompts looked up. */
  lookups: number;
  /** Prompt tokens whose keys and values came from the cache. */
  hitTokens: number;
  /** Bytes held now. */
  bytes: number;
}

export class PrefixCache {
  private readonly root: BlockNode = { key: '', parent: null, children: new Map(), segment: null, offset: 0, localFrom: 0, lastUsed: 0 };
  private clock = 0;
  readonly stats: PrefixCacheStats = { lookups: 0, hitTokens: 0, bytes: 0 };

  constructor(
    private readonly cache: KVCache,
    /** Most bytes of keys and values kept. */
    readonly maxBytes: number,
  ) {}

  /**
   * Writes the longest cached prefix of `prompt` (in whole blocks, leaving at least its last token to run, whose
   * logits the caller needs) into an empty row; returns how many tokens it wrote.
   */
  restore(row: KVRow, prompt: readonly number[]): number {
    this.stats.lookups++;
    if (row.length !== 0) return 0;
    const nodes: BlockNode[] = [];
    let node = this.root;
    for (let start = 0; start + BLOCK_TOKENS < prompt.length; start += BLOCK_TOKENS) {
      const child = node.children.get(blockKey(prompt, start));
      if (!child) break;
      nodes.push((node = child));
    }
    // The local layers' window before the prefix's end must be whole: shorten the prefix until it is.
    while (nodes.length > 0 && !this.windowComplete(nodes)) nodes.pop();
    if (nodes.length === 0) return 0;
    const now = ++this.clock;
    for (const found of nodes) found.lastUsed = now;
    const tokens = nodes.length * BLOCK_TOKENS;
    // Consecutive blocks of one segment are written as one run.
    for (let first = 0; first < nodes.length; ) {
      let end = first + 1;
      while (end < nodes.length && nodes[end]!.segment === nodes[first]!.segment && nodes[end]!.offset === nodes[end - 1]!.offset + BLOCK_TOKENS) end++;
      const { segment, offset } = nodes[first]!;
      this.cache.writeSlots(row, segment!.slots, { offset, count: (end - first) * BLOCK_TOKENS, windowEnd: tokens });
      first = end;
    }
    this.stats.hitTokens += tokens;
    return tokens;
  }

  /** Whether the blocks hold every layer's slots of the last local window before their end. */
  private windowComplete(nodes: readonly BlockNode[]): boolean {
    const end = nodes.length * BLOCK_TOKENS;
    const needed = Math.max(0, end - this.cache.localWindow);
    return nodes.every((node, i) => node.localFrom <= Math.max(i * BLOCK_TOKENS, needed));
  }

  /**
   * Keeps the whole blocks of `prompt` that the row now holds and the cache does not, up to `fed` tokens. Called
   * after each pass over the prompt, while its slots are still in every layer's window.
   */
  store(row: KVRow, prompt: readonly number[], fed: number): void {
    if (this.maxBytes <= 0) return;
    const now = ++this.clock;
    let node = this.root;
    let start = 0;
    for (; start + BLOCK_TOKENS <= fed; start += BLOCK_TOKENS) {
      const child = node.children.get(blockKey(prompt, start));
      if (!child) break;
      child.lastUsed = now;
      node = child;
    }
    const blocks = Math.floor((fed - start) / BLOCK_TOKENS);
    if (blocks === 0) return;
    const { slots, localFrom } = this.cache.readSlots(row, start, blocks * BLOCK_TOKENS);
    const segment: Segment = { slots, bytes: slots.reduce((sum, block) => sum + block.keysT.byteLength + block.values.byteLength, 0), blocks: 0 };
    if (!this.makeRoom(segment.bytes, node)) return;
    this.stats.bytes += segment.bytes;
    for (let i = 0; i < blocks; i++, start += BLOCK_TOKENS) {
      const key = blockKey(prompt, start);
      const child: BlockNode = { key, parent: node, children: new Map(), segment, offset: i * BLOCK_TOKENS, localFrom: Math.max(start, localFrom), lastUsed: now };
      node.children.set(key, child);
      segment.blocks++;
      node = child;
    }
  }

  /** Evicts least recently used leaves (never `keep`, the node new blocks hang from) until `bytes` more fit. */
  private makeRoom(bytes: number, keep: BlockNode): boolean {
    if (bytes > this.maxBytes) return false;
    while (this.stats.bytes + bytes > this.maxBytes) {
      let oldest: BlockNode | null = null;
      const visit = (node: BlockNode) => {
        for (const child of node.children.values()) {
          if (child.children.size > 0) visit(child);
          else if (child !== keep && (!oldest || child.lastUsed < oldest.lastUsed)) oldest = child;
        }
      };
      visit(this.root);
      const leaf = oldest as BlockNode | null;
      if (!leaf) return false;
      leaf.parent!.children.delete(leaf.key);
      // A segment's memory is freed with its last block.
      if (--leaf.segment!.blocks === 0) this.stats.bytes -= leaf.segment!.bytes;
    }
    return true;
  }
}

function blockKey(prompt: readonly number[], start: number): string {
  return prompt.slice(start, start + BLOCK_TOKENS).join(',');
}
