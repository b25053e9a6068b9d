/**
 * The tokenizer's tokens as byte strings in a trie laid out in preorder, so the mask of a configuration is
 * one pass over an array: a byte the grammar refuses skips the node's whole subtree (every token that
 * starts with that prefix) at once, instead of testing 50,257 strings.
 */
export interface TokenBytesSource {
  /** Token ids 0..vocabSize-1. */
  readonly vocabSize: number;
  /** A token's bytes, or null for a special token (never text: only eos may be allowed, when output is complete). */
  bytesOf(token: number): Uint8Array | null;
}

export class TokenVocabulary {
  readonly size: number;
  /** Per preorder node (node 0 = the empty prefix): its last byte, its depth, where its subtree ends. */
  readonly byte: Uint8Array;
  readonly depth: Uint16Array;
  readonly subtreeEnd: Int32Array;
  /** Tokens spelled by node i: tokens[tokenStart[i] .. tokenStart[i + 1]). */
  readonly tokenStart: Int32Array;
  readonly tokens: Int32Array;
  readonly maxDepth: number;
  private readonly bytes: (Uint8Array | null)[];

  constructor(source: TokenBytesSource) {
    this.size = source.vocabSize;
    this.bytes = Array.from({ length: source.vocabSize }, (_, id) => source.bytesOf(id));
    const order = this.bytes
      .map((bytes, id) => ({ bytes, id }))
      .filter((entry): entry is { bytes: Uint8Array; id: number } => entry.bytes !== null && entry.bytes.length > 0)
      .sort((a, b) => compareBytes(a.bytes, b.bytes));
    const byte: number[] = [0];
    const depth: number[] = [0];
    const nodeTokens: number[][] = [[]];
    const path: number[] = [0];
    let previous: Uint8Array = new Uint8Array(0);
    for (const { bytes, id } of order) {
      let common = 0;
      while (common < previous.length && common < bytes.length && previous[common] === bytes[common]) common++;
      path.length = common + 1;
      for (let d = common; d < bytes.length; d++) {
        byte.push(bytes[d]!);
        depth.push(d + 1);
        nodeTokens.push([]);
        path.push(byte.length - 1);
      }
      nodeTokens[path[bytes.length]!]!.push(id);
      previous = bytes;
    }
    this.byte = Uint8Array.from(byte);
    this.depth = Uint16Array.from(depth);
    this.maxDepth = Math.max(...depth);
    this.subtreeEnd = new Int32Array(byte.length);
    const open: number[] = [];
    for (let node = 0; node < byte.length; node++) {
      while (open.length > 0 && depth[open.at(-1)!]! >= depth[node]!) this.subtreeEnd[open.pop()!] = node;
      open.push(node);
    }
    for (const node of open) this.subtreeEnd[node] = byte.length;
    this.tokenStart = new Int32Array(byte.length + 1);
    nodeTokens.forEach((ids, node) => (this.tokenStart[node + 1] = this.tokenStart[node]! + ids.length));
    this.tokens = Int32Array.from(nodeTokens.flat());
  }

  get nodeCount(): number {
    return this.byte.length;
  }

  bytesOf(token: number): Uint8Array | null {
    return this.bytes[token] ?? null;
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}

/** What a byte-level tokenizer offers (GPT2Tokenizer does): its special tokens decode to nothing when skipped. */
export interface ByteTokenizer {
  readonly vocab_size: number;
  decodeBytes(ids: readonly number[], opts?: { skip_special_tokens?: boolean }): Uint8Array;
}

const vocabularies = new WeakMap<object, Map<number, TokenVocabulary>>();

/**
 * The tokenizer's vocabulary for a model of `vocabSize` tokens (ids past the tokenizer's are never allowed),
 * built once per tokenizer (the trie takes about 0.2 s for GPT-2's 50,257 tokens).
 */
export function tokenizerVocabulary(tokenizer: ByteTokenizer, vocabSize: number): TokenVocabulary {
  let bySize = vocabularies.get(tokenizer);
  if (!bySize) vocabularies.set(tokenizer, (bySize = new Map()));
  let vocabulary = bySize.get(vocabSize);
  if (!vocabulary) {
    const bytesOf = (id: number) => (id < tokenizer.vocab_size ? tokenizer.decodeBytes([id], { skip_special_tokens: true }) : null);
    bySize.set(vocabSize, (vocabulary = new TokenVocabulary({ vocabSize, bytesOf })));
  }
  return vocabulary;
}
