/**
 * Logits processors and warpers with the semantics of transformers' LogitsProcessor classes. Each one
 * edits the scores of one row in place; a filtered token gets -Infinity.
 *
 * Order (transformers `GenerationMixin._get_logits_processor`, unchanged from v4.26 through v4.4x and
 * the current main branch; warpers are the former `_get_logits_warper`, appended only when sampling):
 *   1. RepetitionPenaltyLogitsProcessor   repetition_penalty
 *   2. NoRepeatNGramLogitsProcessor       no_repeat_ngram_size
 *   3. NoBadWordsLogitsProcessor          bad_words_ids
 *   4. MinLengthLogitsProcessor           min_length (min_new_tokens is folded into it: transformers sets
 *      min_length = prompt length + min_new_tokens, and its MinNewTokensLengthLogitsProcessor, which
 *      comes right after, then bans exactly the same steps)
 *   then, when sampling:
 *   5. TemperatureLogitsWarper            temperature
 *   6. TopKLogitsWarper                   top_k
 *   7. TopPLogitsWarper                   top_p
 *   8. TypicalLogitsWarper                typical_p
 * The penalties and bans come first because they express hard rules about the sequence; the warpers
 * reshape what is left into the sampling distribution. Temperature precedes the truncations so top-p
 * and typical-p measure mass under the tempered distribution. Each step is skipped at its neutral
 * value (penalty 1, size 0, temperature 1, top_k 0, top_p 1, typical_p 1), as transformers does.
 *
 * Deliberate difference: the token history the processors look at is the row's real tokens (prompt
 * without its left padding, then the generated tokens). transformers passes the padded input_ids, so
 * a padded row is penalised for its pad token (eos for GPT-Neo); skipping padding makes every row
 * generate exactly what it would generate alone. Length limits still count the padded prompt, as in
 * transformers, so all rows of a batch get the same new-token budget.
 */
import type { ResolvedGenerationConfig } from './config.js';
import { softmax } from './sampling.js';
import { kthLargest, largestIndices, weightedThreshold } from './select.js';

export interface RowHistory {
  /** Real tokens of the row: prompt without padding, then the tokens generated so far. */
  tokens: readonly number[];
  /** Padded prompt length + generated tokens: transformers' cur_len = input_ids.shape[-1]. */
  currentLength: number;
}

export type LogitsProcessor = (scores: Float64Array, row: RowHistory) => void;

export function applyProcessors(processors: readonly LogitsProcessor[], scores: Float64Array, row: RowHistory): void {
  for (const process of processors) process(scores, row);
}

/** Processors 1-4 of the order above: applied in every decoding mode. */
export function buildLogitsProcessors(config: ResolvedGenerationConfig): LogitsProcessor[] {
  const processors: LogitsProcessor[] = [];
  if (config.repetitionPenalty !== 1) processors.push(repetitionPenalty(config.repetitionPenalty));
  if (config.noRepeatNgramSize > 0) processors.push(noRepeatNgram(config.noRepeatNgramSize));
  const badWords = config.badWordsIds.filter(
    (sequence) => !(sequence.length === 1 && config.eosTokenIds.includes(sequence[0])),
  );
  if (badWords.length > 0) processors.push(noBadWords(badWords));
  if (config.minLength > 0 && config.eosTokenIds.length > 0) {
    processors.push(minLength(config.minLength, config.eosTokenIds));
  }
  return processors;
}

/**
 * Warpers 5-8, for sampling. minTokensToKeep is 1 for plain sampling; beam sampling keeps at least
 * max(2, eos count + 1) so a beam can always continue past an eos.
 */
export function buildLogitsWarpers(config: ResolvedGenerationConfig, minTokensToKeep: number): LogitsProcessor[] {
  const warpers: LogitsProcessor[] = [];
  if (config.temperature !== 1) warpers.push(temperature(config.temperature));
  if (config.topK !== 0) warpers.push(topK(config.topK, minTokensToKeep));
  if (config.topP < 1) warpers.push(topP(config.topP, minTokensToKeep));
  if (config.typicalP < 1) warpers.push(typicalP(config.typicalP, minTokensToKeep));
  return warpers;
}

/** CTRL's penalty: a seen token's score is divided by the penalty when positive, multiplied when negative. */
export function repetitionPenalty(penalty: number): LogitsProcessor {
  return (scores, row) => {
    for (const token of new Set(row.tokens)) {
      const score = scores[token];
      scores[token] = score < 0 ? score * penalty : score / penalty;
    }
  };
}

/** Bans every token that would complete an n-gram already present in the history. */
export function noRepeatNgram(size: number): LogitsProcessor {
  return (scores, row) => {
    const tokens = row.tokens;
    const prefixLength = size - 1;
    if (tokens.length < prefixLength + 1) return;
    const prefixStart = tokens.length - prefixLength;
    // Every earlier n-gram whose first n-1 tokens equal the last n-1 tokens bans its final token.
    for (let start = 0; start + size <= tokens.length; start++) {
      let matches = true;
      for (let k = 0; k < prefixLength && matches; k++) matches = tokens[start + k] === tokens[prefixStart + k];
      if (matches) scores[tokens[start + prefixLength]] = -Infinity;
    }
  };
}

/** Bans a token when it would complete one of the sequences; single-token sequences are always banned. */
export function noBadWords(badWordsIds: readonly (readonly number[])[]): LogitsProcessor {
  return (scores, row) => {
    const tokens = row.tokens;
    for (const sequence of badWordsIds) {
      const prefixLength = sequence.length - 1;
      if (prefixLength > tokens.length) continue;
      let matches = true;
      for (let k = 0; k < prefixLength && matches; k++) {
        matches = tokens[tokens.length - prefixLength + k] === sequence[k];
      }
      if (matches) scores[sequence[prefixLength]] = -Infinity;
    }
  };
}

/** Suppresses eos while the total length (padded prompt + new tokens) is below minLength. */
export function minLength(minimumLength: number, eosTokenIds: readonly number[]): LogitsProcessor {
  return (scores, row) => {
    if (row.currentLength >= minimumLength) return;
    for (const eos of eosTokenIds) scores[eos] = -Infinity;
  };
}

export function temperature(value: number): LogitsProcessor {
  return (scores) => {
    for (let i = 0; i < scores.length; i++) scores[i] /= value;
  };
}

/** Keeps the k best scores; ties with the k-th score are kept too, as transformers' `scores < kth` test does. */
export function topK(k: number, minTokensToKeep: number): LogitsProcessor {
  return (scores) => {
    const keep = Math.max(k, minTokensToKeep);
    if (keep >= scores.length) return;
    const kth = kthLargest(scores, keep);
    for (let i = 0; i < scores.length; i++) if (scores[i] < kth) scores[i] = -Infinity;
  };
}

/**
 * Nucleus filtering as transformers computes it: walking from the least likely token up, drop tokens
 * while the cumulative probability is <= 1 - top_p; the most likely minTokensToKeep always stay.
 */
export function topP(p: number, minTokensToKeep: number): LogitsProcessor {
  return (scores) => {
    const probs = softmax(scores);
    const tailLimit = 1 - p;
    // Every token less likely than the threshold lies entirely within the dropped tail.
    const threshold = weightedThreshold(probs, probs, tailLimit, false);
    if (!threshold) return;
    const dropped = probs.map((prob) => (prob < threshold.value ? 1 : 0));
    // The walk reaches tokens tied at the threshold one by one: drop them (highest id first) while the tail stays within the limit.
    let tailMass = threshold.weightBelow;
    for (let i = probs.length - 1; i >= 0; i--) {
      if (probs[i] !== threshold.value) continue;
      if (tailMass + probs[i] > tailLimit) break;
      tailMass += probs[i];
      dropped[i] = 1;
    }
    for (const i of largestIndices(probs, minTokensToKeep)) dropped[i] = 0;
    for (let i = 0; i < scores.length; i++) if (dropped[i]) scores[i] = -Infinity;
  };
}

/**
 * Locally typical sampling (Meister et al. 2022) as transformers' TypicalLogitsWarper: rank tokens by
 * how far their information content -log p is from the entropy, keep the closest ones until their
 * mass reaches typical_p (the token that crosses it included, and every token as close as that one),
 * always keeping minTokensToKeep.
 */
export function typicalP(mass: number, minTokensToKeep: number): LogitsProcessor {
  return (scores) => {
    const probs = softmax(scores);
    let entropy = 0;
    for (const p of probs) if (p > 0) entropy -= p * Math.log(p);
    const distance = probs.map((p) => (p > 0 ? Math.abs(-Math.log(p) - entropy) : Infinity));
    const cutoff = weightedThreshold(distance, probs, mass, true)?.value ?? Infinity;
    const alwaysKept = new Set(largestIndices(distance.map((d) => -d), minTokensToKeep));
    for (let i = 0; i < scores.length; i++) {
      if (distance[i] > cutoff && !alwaysKept.has(i)) scores[i] = -Infinity;
    }
  };
}
