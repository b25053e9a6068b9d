import { BytePairEncoder } from './bpe.js';
import { byteLevelTokenToBytes, splitIntoWords } from './byte-level.js';
import { TokenizerError } from './errors.js';

/** Words are encoded by their UTF-8 bytes (TextEncoder: in Node and browsers alike). */
const UTF8 = new TextEncoder();

/** A special token as tokenizer_config.json / special_tokens_map.json write it: a string or an AddedToken dict. */
export type SpecialTokenSpec = string | { content: string };

/** The tokenizer_config.json / special_tokens_map.json keys this tokenizer uses (others are ignored). */
export interface TokenizerConfig {
  bos_token?: SpecialTokenSpec | null;
  eos_token?: SpecialTokenSpec | null;
  unk_token?: SpecialTokenSpec | null;
  pad_token?: SpecialTokenSpec | null;
  additional_special_tokens?: SpecialTokenSpec[];
  /** Keyed by id, as transformers >= 4.34 writes it. */
  added_tokens_decoder?: Record<string, Omit<AddedToken, 'id' | 'special'> & { special?: boolean }>;
  add_prefix_space?: boolean;
  model_max_length?: number;
}

export interface AddedToken {
  id: number;
  content: string;
  special: boolean;
  /** Also takes the whitespace before it (tokenizers' `lstrip`). */
  lstrip?: boolean;
  /** Also takes the whitespace after it (`rstrip`). */
  rstrip?: boolean;
  /** Only matches where no letter, digit or underscore touches it on either side (`single_word`). */
  single_word?: boolean;
}

export interface DecodeOptions {
  skip_special_tokens?: boolean;
  /**
   * HF's cleanup of spaces before punctuation and contractions (" ." -> ".", " n't" -> "n't"). Off by default,
   * unlike HF: it is lossy (decode(encode(text)) no longer returns text) and it would make streamed pieces
   * disagree with the decoded whole, so generation and the reference fixtures use the raw decoding.
   */
  clean_up_tokenization_spaces?: boolean;
}

/** What HF stores as model_max_length when a tokenizer sets none (transformers' VERY_LARGE_INTEGER). */
const UNLIMITED_MODEL_MAX_LENGTH = 1e30;

/** HF's word cache holds 10 000 words and skips words longer than 256 bytes; the same bounds here. */
const WORD_CACHE_CAPACITY = 10_000;
const LONGEST_CACHED_WORD = 256;

/** ignoreBOM: a U+FEFF produced by the model is text, not a byte-order mark to drop. */
const utf8Decoder = new TextDecoder('utf-8', { ignoreBOM: true });

type SpecialTokenName = 'bos_token' | 'eos_token' | 'unk_token' | 'pad_token';

/**
 * transformers' GPT2Tokenizer defaults, used for keys the config leaves out (an explicit null still means none).
 * Only applied when the vocab has the token: HF would append it as a new id, which no GPT-2 model could embed.
 */
const GPT2_DEFAULT_SPECIAL_TOKENS: Partial<Record<SpecialTokenName, string>> = {
  bos_token: '<|endoftext|>',
  eos_token: '<|endoftext|>',
  unk_token: '<|endoftext|>',
};

/**
 * GPT-2 byte-level BPE tokenizer, giving the ids of Hugging Face's GPT2Tokenizer(Fast) as used by GPT-Neo:
 * added tokens such as `<|endoftext|>` are split out of the text first, the rest goes through GPT-2's regex,
 * byte-level mapping and BPE. No special tokens are added around the text.
 */
export class GPT2Tokenizer {
  /** Number of ids, i.e. largest vocab or added-token id + 1 (HF's `len(tokenizer)`). */
  readonly vocab_size: number;
  readonly model_max_length: number;
  readonly bos_token: string | null;
  readonly eos_token: string | null;
  readonly unk_token: string | null;
  readonly pad_token: string | null;
  readonly bos_token_id: number | null;
  readonly eos_token_id: number | null;
  readonly unk_token_id: number | null;
  readonly pad_token_id: number | null;

  private readonly bpe: BytePairEncoder;
  private readonly addPrefixSpace: boolean;
  /** Token string of every id (sparse if the vocab has gaps). */
  private readonly tokenById: string[] = [];
  /** The bytes each id decodes to, prepared once because streaming decodes token by token. */
  private readonly bytesById: Uint8Array[] = [];
  private readonly specialIds = new Set<number>();
  private readonly addedTokens = new Map<string, AddedToken>();
  /**
   * Matches any added token, longest first so that overlapping tokens split like HF's leftmost-longest;
   * capture group i + 1 is `addedTokenOrder[i]`, whatever whitespace lstrip/rstrip take around it.
   */
  private readonly addedTokenPattern: RegExp | null;
  private readonly addedTokenOrder: AddedToken[];
  private readonly wordCache = new Map<string, readonly number[]>();

  private constructor(
    vocab: ReadonlyMap<string, number>,
    merges: ReadonlyArray<readonly [string, string]>,
    addedTokens: readonly AddedToken[],
    config: TokenizerConfig,
  ) {
    this.bpe = new BytePairEncoder(vocab, merges);
    for (const [token, id] of vocab) {
      this.tokenById[id] = token;
      this.bytesById[id] = byteLevelTokenToBytes(token);
    }

    const encoder = new TextEncoder();
    const addToken = (token: AddedToken) => {
      this.tokenById[token.id] = token.content;
      // Added tokens are literal text, not byte-level strings.
      this.bytesById[token.id] = encoder.encode(token.content);
      this.addedTokens.set(token.content, token);
      if (token.special) this.specialIds.add(token.id);
    };
    addedTokens.forEach(addToken);

    const registerSpecial = (spec: SpecialTokenSpec, description: string) => {
      const content = typeof spec === 'string' ? spec : spec.content;
      const added = this.addedTokens.get(content);
      const id = added?.id ?? vocab.get(content);
      if (id === undefined) throw new TokenizerError(`${description} "${content}" is not in the vocabulary`);
      // HF never splits special tokens into pieces, even when only the vocab lists them.
      addToken({ ...added, id, content, special: true });
      return { content, id };
    };
    const resolveNamedSpecial = (name: SpecialTokenName): [string | null, number | null] => {
      let spec = config[name];
      if (spec === undefined) {
        const fallback = GPT2_DEFAULT_SPECIAL_TOKENS[name];
        const known = fallback !== undefined && (this.addedTokens.has(fallback) || vocab.has(fallback));
        spec = known ? fallback : null;
      }
      if (spec === null) return [null, null];
      const { content, id } = registerSpecial(spec, name);
      return [content, id];
    };
    [this.bos_token, this.bos_token_id] = resolveNamedSpecial('bos_token');
    [this.eos_token, this.eos_token_id] = resolveNamedSpecial('eos_token');
    [this.unk_token, this.unk_token_id] = resolveNamedSpecial('unk_token');
    [this.pad_token, this.pad_token_id] = resolveNamedSpecial('pad_token');
    for (const spec of config.additional_special_tokens ?? []) registerSpecial(spec, 'additional special token');

    this.vocab_size = this.tokenById.length;
    this.model_max_length = config.model_max_length ?? UNLIMITED_MODEL_MAX_LENGTH;
    this.addPrefixSpace = config.add_prefix_space ?? false;
    this.addedTokenOrder = [...this.addedTokens.values()]
      .filter((token) => token.content.length > 0)
      .sort((a, b) => b.content.length - a.content.length);
    this.addedTokenPattern =
      this.addedTokenOrder.length === 0 ? null : new RegExp(this.addedTokenOrder.map(addedTokenRegex).join('|'), 'gu');
  }

  /**
   * Builds a tokenizer from parsed files. `merges` are merges.txt lines ("a b"; `#version` and blank lines are skipped)
   * or tokenizer.json pairs; `addedTokens` come from tokenizer.json `added_tokens`, and
   * `config.added_tokens_decoder` from tokenizer_config.json adds more.
   */
  static fromFiles(opts: {
    vocab: Record<string, number>;
    merges: ReadonlyArray<string | readonly [string, string]>;
    addedTokens?: readonly AddedToken[];
    config?: TokenizerConfig;
  }): GPT2Tokenizer {
    const vocab = new Map<string, number>();
    for (const [token, id] of Object.entries(opts.vocab)) {
      if (!Number.isInteger(id) || id < 0) {
        throw new TokenizerError(`vocab entry "${token}" has id ${JSON.stringify(id)}, not a non-negative integer`);
      }
      vocab.set(token, id);
    }

    const mergePairs: Array<readonly [string, string]> = [];
    for (const merge of opts.merges) {
      if (typeof merge !== 'string') {
        mergePairs.push(merge);
        continue;
      }
      // Blank lines (the file's final newline) carry no merge; transformers' slow tokenizer skips them too.
      if (merge.startsWith('#version') || merge === '') continue;
      const parts = merge.split(' ');
      if (parts.length !== 2 || parts[0] === '' || parts[1] === '') {
        throw new TokenizerError(
          `merge ${mergePairs.length + 1} (${JSON.stringify(merge)}) is not two tokens separated by one space`,
        );
      }
      mergePairs.push([parts[0]!, parts[1]!]);
    }

    const config = opts.config ?? {};
    const addedTokens: AddedToken[] = Object.entries(config.added_tokens_decoder ?? {}).map(([id, token]) => ({
      ...token,
      id: Number(id),
      special: token.special ?? false,
    }));
    addedTokens.push(...(opts.addedTokens ?? []));
    for (const token of addedTokens) {
      if (!Number.isInteger(token.id) || token.id < 0) {
        throw new TokenizerError(`added token "${token.content}" has id ${token.id}, not a non-negative integer`);
      }
    }
    return new GPT2Tokenizer(vocab, mergePairs, addedTokens, config);
  }

  encode(text: string): number[] {
    const ids: number[] = [];
    if (this.addedTokenPattern === null) {
      this.encodeOrdinaryText(text, ids);
      return ids;
    }
    let start = 0;
    for (const match of text.matchAll(this.addedTokenPattern)) {
      this.encodeOrdinaryText(text.slice(start, match.index), ids);
      ids.push(this.addedTokenOrder[match.findIndex((group, i) => i > 0 && group !== undefined) - 1]!.id);
      start = match.index + match[0].length;
    }
    this.encodeOrdinaryText(text.slice(start), ids);
    return ids;
  }

  /** Concatenated bytes of the tokens; a streaming caller holds back an unfinished UTF-8 sequence at the end. */
  decodeBytes(ids: readonly number[], opts: { skip_special_tokens?: boolean } = {}): Uint8Array {
    const pieces: Uint8Array[] = [];
    let length = 0;
    for (const id of ids) {
      this.assertKnownId(id);
      if (opts.skip_special_tokens && this.specialIds.has(id)) continue;
      const bytes = this.bytesById[id]!;
      pieces.push(bytes);
      length += bytes.length;
    }
    const result = new Uint8Array(length);
    let offset = 0;
    for (const piece of pieces) {
      result.set(piece, offset);
      offset += piece.length;
    }
    return result;
  }

  /** Text of the tokens; invalid UTF-8 (a character cut between tokens) becomes U+FFFD, as in HF's errors='replace'. */
  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    const text = utf8Decoder.decode(this.decodeBytes(ids, opts));
    return opts.clean_up_tokenization_spaces ? cleanUpTokenizationSpaces(text) : text;
  }

  /** Vocab strings (byte-level form, e.g. "Ġworld") or added-token contents. */
  convert_ids_to_tokens(ids: readonly number[]): string[] {
    return ids.map((id) => {
      this.assertKnownId(id);
      return this.tokenById[id]!;
    });
  }

  private assertKnownId(id: number): void {
    if (!Number.isInteger(id) || this.tokenById[id] === undefined) {
      throw new TokenizerError(`token id ${JSON.stringify(id)} is not in the vocabulary (vocab size ${this.vocab_size})`);
    }
  }

  private encodeOrdinaryText(text: string, ids: number[]): void {
    if (text === '') return;
    // HF's ByteLevel pre-tokenizer prefixes each piece between added tokens, unless it already starts with a space.
    const prefixed = this.addPrefixSpace && !text.startsWith(' ') ? ` ${text}` : text;
    for (const [word] of splitIntoWords(prefixed)) {
      for (const id of this.encodeWord(word)) ids.push(id);
    }
  }

  private encodeWord(word: string): readonly number[] {
    const cached = this.wordCache.get(word);
    if (cached !== undefined) return cached;
    const bytes = UTF8.encode(word);
    const ids = this.bpe.encodeWord(bytes);
    if (bytes.length <= LONGEST_CACHED_WORD) {
      if (this.wordCache.size >= WORD_CACHE_CAPACITY) {
        this.wordCache.delete(this.wordCache.keys().next().value!);
      }
      this.wordCache.set(word, ids);
    }
    return ids;
  }
}

/** transformers' `clean_up_tokenization`. */
function cleanUpTokenizationSpaces(text: string): string {
  return text
    .replaceAll(' .', '.')
    .replaceAll(' ?', '?')
    .replaceAll(' !', '!')
    .replaceAll(' ,', ',')
    .replaceAll(" ' ", "'")
    .replaceAll(" n't", "n't")
    .replaceAll(" 'm", "'m")
    .replaceAll(" 's", "'s")
    .replaceAll(" 've", "'ve")
    .replaceAll(" 're", "'re");
}

/** One added token as a regex alternative: its text in a capture group, with what its flags let it take. */
function addedTokenRegex(token: AddedToken): string {
  const wordCharacter = '[\\p{L}\\p{N}_]';
  const text = token.content.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const word = token.single_word ? `(?<!${wordCharacter})${text}(?!${wordCharacter})` : text;
  return `${token.lstrip ? '\\s*' : ''}(${word})${token.rstrip ? '\\s*' : ''}`;
}
