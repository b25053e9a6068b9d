// Aggregations of the 2021 lm-evaluation-harness (lm_eval/metrics.py) and of GPT-Neo's mesh-tensorflow
// evaluation, as specified in shared/docs/eval-tasks.md. NaN marks a value that is undefined for the
// sample (a standard error of one document, a token metric without a complete batch); JSON shows it as null.

export function mean(values: readonly number[]): number {
  return values.length === 0 ? Number.NaN : values.reduce((sum, v) => sum + v, 0) / values.length;
}

/** Standard deviation with Bessel's correction (ddof = 1), the harness's sample_stddev. */
export function sampleStandardDeviation(values: readonly number[]): number {
  if (values.length < 2) return Number.NaN;
  const mu = mean(values);
  return Math.sqrt(values.reduce((sum, v) => sum + (v - mu) ** 2, 0) / (values.length - 1));
}

/** The harness's mean_stderr: sample standard deviation / sqrt(n). */
export function meanStandardError(values: readonly number[]): number {
  return sampleStandardDeviation(values) / Math.sqrt(values.length);
}

/** Index of the largest value; the lowest index wins ties, like numpy.argmax. */
export function argmax(values: readonly number[]): number {
  let best = 0;
  for (let i = 1; i < values.length; i++) if (values[i]! > values[best]!) best = i;
  return best;
}

export interface AccuracyMetrics {
  acc: number;
  acc_stderr: number;
}

/** Mean of 0/1 per-document outcomes and its standard error. */
export function accuracy(outcomes: readonly boolean[]): AccuracyMetrics {
  const values = outcomes.map(Number);
  return { acc: mean(values), acc_stderr: meanStandardError(values) };
}

/** Multiple choice: the choice with the highest summed log-likelihood is the prediction. */
export function multipleChoiceAccuracy(
  questions: readonly { choiceLogLikelihoods: readonly number[]; gold: number }[],
): AccuracyMetrics {
  return accuracy(questions.map((q) => argmax(q.choiceLogLikelihoods) === q.gold));
}

export interface LambadaMetrics {
  ppl: number;
  ppl_stderr: number;
  acc: number;
  acc_stderr: number;
}

/**
 * LAMBADA: ppl = exp(-mean per-document log-likelihood) — per target word, not per token — and acc = share of
 * documents whose every target token is the arg-max. The perplexity's standard error is the delta method,
 * ppl · stderr(mean log-likelihood): deterministic, and what the harness's later bootstrap of exp(-mean)
 * converges to for thousands of documents.
 */
export function lambadaMetrics(documents: readonly { logLikelihood: number; isGreedy: boolean }[]): LambadaMetrics {
  const logLikelihoods = documents.map((d) => d.logLikelihood);
  const ppl = Math.exp(-mean(logLikelihoods));
  return {
    ppl,
    ppl_stderr: ppl * meanStandardError(logLikelihoods),
    ...accuracy(documents.map((d) => d.isGreedy)),
  };
}

export interface RollingPerplexityMetrics {
  word_perplexity: number;
  byte_perplexity: number;
  bits_per_byte: number;
}

/**
 * The harness's PerplexityTask aggregation over documents (sums, i.e. weighted by length):
 * word_perplexity = exp(-Σll / Σwords), byte_perplexity = exp(-Σll / Σbytes), and bits_per_byte as fixed on
 * 2021-12-25: (-Σll / Σbytes) / ln 2, so that 2^bits_per_byte = byte_perplexity.
 */
export function rollingPerplexityMetrics(
  documents: readonly { logLikelihood: number; words: number; bytes: number }[],
): RollingPerplexityMetrics {
  const logLikelihood = documents.reduce((sum, d) => sum + d.logLikelihood, 0);
  const words = documents.reduce((sum, d) => sum + d.words, 0);
  const bytes = documents.reduce((sum, d) => sum + d.bytes, 0);
  return {
    word_perplexity: Math.exp(-logLikelihood / words),
    byte_perplexity: Math.exp(-logLikelihood / bytes),
    bits_per_byte: -logLikelihood / bytes / Math.LN2,
  };
}

/** GPT-Neo's fixed ratio of GPT-2 tokens to UTF-8 bytes on the Pile, used to turn token loss into BPB. */
export const PILE_TOKENS_PER_BYTE = 0.29335;

export interface TokenLevelMetrics {
  token_perplexity: number;
  token_bits_per_byte: number;
  /** Complete batches evaluated; records of an incomplete last batch are not. */
  batches: number;
}

/**
 * GPT-Neo's mesh-tensorflow evaluation: records are grouped in file order into batches of `batchSize`,
 * the incomplete last batch is dropped, L_b = mean per-token loss of batch b, token_perplexity = mean over
 * batches of exp(L_b) (not exp of the mean), token_bits_per_byte = mean over batches of
 * L_b · PILE_TOKENS_PER_BYTE / ln 2.
 */
export function tokenLevelMetrics(
  records: readonly { loss: number; tokenCount: number }[],
  batchSize: number,
): TokenLevelMetrics {
  const batchLosses: number[] = [];
  for (let start = 0; start + batchSize <= records.length; start += batchSize) {
    const batch = records.slice(start, start + batchSize);
    const loss = batch.reduce((sum, r) => sum + r.loss, 0);
    const tokens = batch.reduce((sum, r) => sum + r.tokenCount, 0);
    batchLosses.push(loss / tokens);
  }
  return {
    token_perplexity: mean(batchLosses.map(Math.exp)),
    token_bits_per_byte: mean(batchLosses.map((loss) => (loss * PILE_TOKENS_PER_BYTE) / Math.LN2)),
    batches: batchLosses.length,
  };
}
