/** Choosing one row's next token, and the log-probabilities reported for it (output_scores, OpenAI's logprobs). */
import type { ResolvedGenerationConfig } from './config.js';
import { applyProcessors, buildLogitsProcessors, buildLogitsWarpers, type LogitsProcessor, type RowHistory } from './logits-process.js';
import { argmax, sampleIndex, softmax, type RandomSource } from './sampling.js';
import { largestIndices } from './select.js';

/**
 * Greedy or sampled choice as transformers' _sample makes it: processors, then (sampling) warpers and a draw.
 * `extraProcessors` run first (the server's logit_bias and OpenAI penalties).
 */
export class TokenChooser {
  private readonly processors: LogitsProcessor[];
  private readonly warpers: LogitsProcessor[];

  constructor(
    config: ResolvedGenerationConfig,
    private readonly random: RandomSource | null,
    extraProcessors: LogitsProcessor[] = [],
  ) {
    this.processors = [...extraProcessors, ...buildLogitsProcessors(config)];
    this.warpers = random ? buildLogitsWarpers(config, 1) : [];
  }

  /**
   * `constrain` (a structured output's mask) runs first: penalties, top-k and top-p then act on the tokens it
   * allows. Should the processors ban every one of them (no_repeat_ngram_size, bad_words_ids, min_length's eos
   * ban), the constraint wins: its tokens are scored without the processors.
   */
  choose(logits: ArrayLike<number>, history: RowHistory, constrain?: (scores: Float64Array) => void): number {
    let scores = Float64Array.from(logits);
    constrain?.(scores);
    const constrained = constrain ? scores.slice() : null;
    applyProcessors(this.processors, scores, history);
    if (constrained && !scores.some((score) => score > -Infinity)) scores = constrained;
    if (!this.random) return argmax(scores);
    applyProcessors(this.warpers, scores, history);
    return sampleIndex(softmax(scores), this.random);
  }
}

export interface TokenLogprob {
  token: number;
  /** Natural log of the model's probability of the token (before any processor or warper). */
  logprob: number;
}

/** One generated token with its log-probability and the most likely alternatives at that step. */
export interface TokenScores extends TokenLogprob {
  /** The `topCount` most likely tokens, most likely first. */
  top: TokenLogprob[];
}

/** Log-probabilities from a row's logits and their log(sum(exp)), as the model computes both. */
export function tokenScores(logits: ArrayLike<number>, logsumexp: number, token: number, topCount: number): TokenScores {
  const logprob = (id: number) => logits[id]! - logsumexp;
  return {
    token,
    logprob: logprob(token),
    top: largestIndices(logits, topCount).map((id) => ({ token: id, logprob: logprob(id) })),
  };
}
