/**
 * A constraint compiled once for a vocabulary, and the per-sequence state that walks it. The state is one
 * integer (a configuration of the matcher), so beam search copies it for free.
 *
 * Outputs close within their token budget: once the tokens left are few, only tokens after which the
 * output can still be completed in time (and ended with eos) are allowed. Every byte is a token of a
 * byte-level vocabulary, so the shortest completion in bytes bounds it in tokens. When even the shortest
 * output does not fit, the mask falls back to every valid token and the output is cut at the limit.
 */
import { GrammarMatcher, DEAD, UNKNOWN } from './matcher.js';
import type { CompiledGrammar } from './grammar.js';
import { ConstraintError } from './grammar.js';
import type { TokenVocabulary } from './vocabulary.js';

interface TokenMask {
  bits: Uint32Array;
  /** The longest shortest-completion after any allowed token: budgets below it need a mask of their own. */
  longestCompletion: number;
  /** The shortest: budgets below it fit no token, and the output will be cut at the limit whatever is chosen. */
  shortestCompletion: number;
  /**
   * Allowed tokens whose shortest completion exceeds NEAR, so a budget above NEAR just clears some of them; null
   * when there are more than MAX_FAR (then short budgets walk the trie, as budgets up to NEAR do).
   */
  farTokens: Int32Array | null;
  farDistances: Int32Array | null;
}

/** Masks one constraint keeps (6 KB each for GPT-2): about 50 MB at most. */
const MAX_CACHED_MASKS = 8192;

/** Budgets up to this many bytes get masks of their own (a trie walk each); above it, far tokens are cleared from the full mask. */
const NEAR = 8;
const MAX_FAR = 2048;

export class Constraint {
  private readonly matcher: GrammarMatcher;
  /** Allowed tokens by configuration, built on first use. */
  private readonly masks: (TokenMask | undefined)[] = [];
  /** Masks for short budgets, by configuration and budget. */
  private readonly budgetMasks = new Map<string, TokenMask>();
  private maskCount = 0;
  private readonly walk: Int32Array;
  private readonly tables: Int32Array[] = [];
  private readonly farTokens = new Int32Array(MAX_FAR);
  private readonly farDistances = new Int32Array(MAX_FAR);

  constructor(
    grammar: CompiledGrammar,
    readonly vocabulary: TokenVocabulary,
    /** What the constraint says, for error messages. */
    readonly description: string,
  ) {
    this.matcher = new GrammarMatcher(grammar);
    this.walk = new Int32Array(vocabulary.maxDepth + 1);
  }

  /** A fresh state at the start of the output; `eosTokenIds` are allowed only once the output is complete. */
  start(eosTokenIds: readonly number[]): ConstraintState {
    return new ConstraintState(this, this.matcher.initial, new Set(eosTokenIds));
  }

  isComplete(configuration: number): boolean {
    return this.matcher.isComplete(configuration);
  }

  /** The configuration after a token's bytes, or DEAD. */
  afterToken(configuration: number, token: number): number {
    const bytes = this.vocabulary.bytesOf(token);
    if (bytes === null || bytes.length === 0) return DEAD;
    let at = configuration;
    for (let i = 0; i < bytes.length && at !== DEAD; i++) at = this.matcher.step(at, bytes[i]!);
    return at;
  }

  /**
   * Bit t is set when token t's bytes can continue the output from `configuration` and, with `budget`, leave
   * an output that at most `budget` more bytes complete (when some token does).
   */
  allowedTokens(configuration: number, budget = Infinity): Uint32Array {
    let mask = this.masks[configuration];
    if (!mask) {
      if (++this.maskCount > MAX_CACHED_MASKS) this.forgetMasks();
      this.masks[configuration] = mask = this.computeMask(configuration, Infinity);
    }
    if (budget >= mask.longestCompletion || budget < mask.shortestCompletion) return mask.bits;
    const { farTokens, farDistances } = mask;
    if (budget > NEAR && farTokens && farDistances) {
      const bits = mask.bits.slice();
      for (let i = 0; i < farTokens.length; i++) if (farDistances[i]! > budget) bits[farTokens[i]! >>> 5]! &= ~(1 << (farTokens[i]! & 31));
      return bits;
    }
    const key = `${configuration}:${budget}`;
    let short = this.budgetMasks.get(key);
    if (!short) this.budgetMasks.set(key, (short = this.computeMask(configuration, budget)));
    return short.bits;
  }

  /** Past the cache's size (long strings, deep nesting), masks are made again as they are needed. */
  private forgetMasks(): void {
    this.masks.length = 0;
    this.budgetMasks.clear();
    this.maskCount = 1;
  }

  /** One preorder pass over the vocabulary's trie; a refused byte skips every token under it. longestCompletion -1: no token fits. */
  private computeMask(configuration: number, budget: number): TokenMask {
    const { byte, depth, subtreeEnd, tokenStart, tokens, nodeCount, size } = this.vocabulary;
    const bits = new Uint32Array((size + 31) >>> 5);
    const walk = this.walk;
    // Each depth's transition table, so most nodes cost one array read.
    const tables: Int32Array[] = this.tables;
    walk[0] = configuration;
    tables[0] = this.matcher.transitions(configuration);
    let longestCompletion = -1;
    let shortestCompletion = Infinity;
    let farCount = 0;
    for (let node = 1; node < nodeCount; ) {
      const d = depth[node]!;
      let next = tables[d - 1]![byte[node]!]!;
      if (next === UNKNOWN) next = this.matcher.step(walk[d - 1]!, byte[node]!);
      if (next === DEAD) {
        node = subtreeEnd[node]!;
        continue;
      }
      if (walk[d] !== next || tables[d] === undefined) {
        walk[d] = next;
        tables[d] = this.matcher.transitions(next);
      }
      if (tokenStart[node]! < tokenStart[node + 1]!) {
        const completion = this.matcher.distance(next);
        if (completion <= budget) {
          longestCompletion = Math.max(longestCompletion, completion);
          shortestCompletion = Math.min(shortestCompletion, completion);
          for (let t = tokenStart[node]!; t < tokenStart[node + 1]!; t++) {
            bits[tokens[t]! >>> 5]! |= 1 << (tokens[t]! & 31);
            if (completion > NEAR && farCount++ < MAX_FAR) {
              this.farTokens[farCount - 1] = tokens[t]!;
              this.farDistances[farCount - 1] = completion;
            }
          }
        }
      }
      node++;
    }
    const keepFar = farCount <= MAX_FAR;
    return {
      bits,
      longestCompletion,
      shortestCompletion,
      farTokens: keepFar ? this.farTokens.slice(0, farCount) : null,
      farDistances: keepFar ? this.farDistances.slice(0, farCount) : null,
    };
  }
}

/** Where one sequence is in its constraint. */
export class ConstraintState {
  constructor(
    private readonly constraint: Constraint,
    private configuration: number,
    private readonly eos: ReadonlySet<number>,
  ) {}

  /** The output so far is a whole match: eos may end it. */
  isComplete(): boolean {
    return this.constraint.isComplete(this.configuration);
  }

  /**
   * Bit t set when token t may come next (eos when the output is complete). With `tokensLeft` (this one
   * included), tokens after which the output could not be completed and ended in time are left out.
   */
  allowedMask(tokensLeft = Infinity): Uint32Array {
    const mask = this.constraint.allowedTokens(this.configuration, Math.max(0, tokensLeft - 2));
    if (!this.isComplete() || this.eos.size === 0) return mask;
    const withEos = mask.slice();
    for (const id of this.eos) if (id < this.constraint.vocabulary.size) withEos[id >>> 5]! |= 1 << (id & 31);
    return withEos;
  }

  /** Sets every score the constraint forbids to -Infinity. */
  mask(scores: Float64Array, tokensLeft = Infinity): void {
    const mask = this.allowedMask(tokensLeft);
    for (let id = 0; id < scores.length; id++) if (!((mask[id >>> 5]! >>> (id & 31)) & 1)) scores[id] = -Infinity;
  }

  /** Moves past a chosen token; eos leaves the state as it is (the sequence ends there). */
  advance(token: number): void {
    if (!this.tryAdvance(token)) {
      throw new ConstraintError(`token ${token} cannot continue output constrained by ${this.constraint.description}`);
    }
  }

  /** advance(), returning false (and staying put) for a token the constraint refuses. */
  tryAdvance(token: number): boolean {
    if (this.eos.has(token) && this.isComplete()) return true;
    const next = this.constraint.afterToken(this.configuration, token);
    if (next === DEAD) return false;
    this.configuration = next;
    return true;
  }

  clone(): ConstraintState {
    return new ConstraintState(this.constraint, this.configuration, this.eos);
  }
}
