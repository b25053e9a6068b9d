/**
 * The one decoding step every decoder shares (generate()'s greedy and sampled rows, beam search's candidates, the
 * server's continuous batching): choose a token, append it, decide whether the sequence ends (eos, a stop
 * string, the length limit) and which of its tokens are final, so they can be streamed.
 */
import type { ConstraintState } from '../constraints/index.js';
import { TokenChooser, tokenScores, type TokenScores } from './choose.js';
import type { ResolvedGenerationConfig } from './config.js';
import type { StopStringMatcher } from './stopping.js';

export type FinishReason = 'stop' | 'length';

/**
 * How a sequence ends: at an eos token (kept) or at a stop string, cut before the token it begins in ('token') or
 * kept through the token that completes it, for a caller that cuts the text there ('text'; see stopping.ts).
 */
export type StopCut = 'token' | 'text';

export class FinishRule {
  private readonly eos: Set<number>;

  constructor(
    config: ResolvedGenerationConfig,
    readonly stops: StopStringMatcher,
    private readonly cut: StopCut = 'token',
  ) {
    this.eos = new Set(config.eosTokenIds);
  }

  /** How many of the new tokens a sequence keeps if its last token ends it, else null. */
  keptCount(newTokens: readonly number[]): number | null {
    if (newTokens.length > 0 && this.eos.has(newTokens.at(-1)!)) return newTokens.length;
    const kept = this.stops.findStop(newTokens);
    return kept !== null && this.cut === 'text' ? newTokens.length : kept;
  }

  /** How many leading new tokens no later token can cut (see StopStringMatcher.settledCount). */
  settledCount(newTokens: readonly number[]): number {
    return this.stops.settledCount(newTokens);
  }
}

/** What one step of a sequence gave. */
export interface StepOutput {
  token: number;
  /** Tokens that became final at this step (none while a stop string may still cut them), with their scores. */
  tokens: number[];
  scores: TokenScores[];
  finishReason: FinishReason | null;
}

export interface DecodingSequenceOptions {
  /** The prompt's real tokens (no padding). */
  prompt: readonly number[];
  /** The prompt's length as the length limits count it (with left padding, the padded length). */
  countedPromptLength?: number;
  config: ResolvedGenerationConfig;
  chooser: TokenChooser;
  finish: FinishRule;
  /** Log-probabilities with this many alternatives per token, or null for none. */
  topLogprobs: number | null;
  /** This sequence's own place in its output constraint (structured outputs), if any. */
  constraint?: ConstraintState;
}

/** One sequence being decoded. */
export class DecodingSequence {
  /** Prompt, then generated tokens: the history the logits processors read. */
  readonly history: number[];
  readonly scores: TokenScores[] = [];
  finishReason: FinishReason | null = null;
  /** Generated tokens already handed out as final. */
  private sent = 0;
  /** Generated tokens kept once finished (a stop string drops the tokens it begins in). */
  private kept: number | null = null;
  private readonly promptLength: number;

  constructor(private readonly options: DecodingSequenceOptions) {
    this.history = [...options.prompt];
    this.promptLength = options.prompt.length;
  }

  get finished(): boolean {
    return this.finishReason !== null;
  }

  /** The generated tokens the sequence keeps (all of them while it runs). */
  get newTokens(): number[] {
    return this.history.slice(this.promptLength, this.kept === null ? undefined : this.promptLength + this.kept);
  }

  /** The kept tokens' scores. */
  get newScores(): TokenScores[] {
    return this.scores.slice(0, this.kept ?? undefined);
  }

  /** Chooses the next token from this step's logits, appends it, and settles what became final. */
  step(logits: Float32Array, logsumexp: number): StepOutput {
    const { config, chooser, finish, topLogprobs } = this.options;
    const counted = (this.options.countedPromptLength ?? this.promptLength) + this.history.length - this.promptLength;
    const constraint = this.options.constraint;
    const constrain = constraint && ((scores: Float64Array) => constraint.mask(scores, config.maxLength - counted));
    const token = chooser.choose(logits, { tokens: this.history, currentLength: counted }, constrain);
    constraint?.advance(token);
    this.history.push(token);
    if (topLogprobs !== null) this.scores.push(tokenScores(logits, logsumexp, token, topLogprobs));
    const generated = this.history.slice(this.promptLength);
    this.kept = finish.keptCount(generated);
    if (this.kept !== null) this.finishReason = 'stop';
    else if (counted + 1 >= config.maxLength) [this.finishReason, this.kept] = ['length', generated.length];
    const ready = this.kept ?? finish.settledCount(generated);
    const from = this.sent;
    this.sent = Math.max(this.sent, ready);
    return {
      token,
      tokens: generated.slice(from, this.sent),
      scores: this.scores.slice(from, Math.min(this.sent, this.scores.length)),
      finishReason: this.finishReason,
    };
  }
}
