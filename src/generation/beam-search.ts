/**
 * Beam search with transformers' BeamSearchScorer / BeamHypotheses semantics (v4.35 - v4.4x, the
 * versions that score finished beams by generated length; the vectorised rewrite that followed keeps
 * the same scores):
 * - Scores are log_softmax of the logits, then the logits processors (so a repetition penalty acts on
 *   log-probabilities), summed over the beam. At the first step only beam 0 is live (the others start
 *   at -1e9), so the beams do not all pick the same token.
 * - Per prompt the best max(2, 1 + number of eos ids) * num_beams continuations are ranked. A
 *   continuation ending in eos (or completing a stop string, see below) becomes a finished hypothesis
 *   when its rank is < num_beams; the others fill the num_beams running beams in rank order.
 * - A finished hypothesis scores sum_logprobs / generated_length ** length_penalty, where
 *   generated_length counts the new tokens including the eos (transformers' cur_len - prompt length
 *   with cur_len = input_ids.shape[-1] + 1). Beams still running at max_length are scored the same
 *   way with their full new length. At most num_beams hypotheses are kept per prompt.
 * - A prompt is done once it holds num_beams hypotheses and: early_stopping true -> at once;
 *   false -> when the best running candidate score divided by (current new length) ** length_penalty
 *   cannot beat the worst hypothesis; 'never' -> the same bound but, for length_penalty > 0, with the
 *   largest possible new length (max_length - prompt length) in the denominator.
 * - Done prompts keep feeding pad tokens; generation ends when every prompt is done or at max_length.
 *
 * Extensions: a candidate whose decoded new text contains a stop string finishes like an eos
 * candidate, with its tokens cut before the stop string. The finished hypothesis keeps the token that
 * ended it (transformers re-appends eos_token_id[0] instead, which differs only with several eos ids).
 *
 * Beam sampling (num_beams > 1 with do_sample) follows the current transformers implementation: the
 * warpers run on each step's processed log-probabilities (keeping at least max(2, eos count + 1)
 * tokens), and the ranked continuations are drawn without replacement from softmax of the
 * accumulated scores, then ordered by score.
 */
import { fillToken, type ResolvedGenerationConfig } from './config.js';
import { DecodingBatch, type PromptBatch } from './batch.js';
import { applyProcessors, buildLogitsProcessors, buildLogitsWarpers } from './logits-process.js';
import { createRandom, logSoftmax, sampleIndex, softmax, type RandomSource } from './sampling.js';
import type { FinishRule } from './sequence.js';
import type { DecoderSession } from '../model/types.js';
import type { Constraint, ConstraintState } from '../constraints/index.js';

/** Score of beams that must not be extended at the first step (transformers uses the same constant). */
const INACTIVE_BEAM_SCORE = -1e9;

interface Hypothesis {
  score: number;
  newTokens: number[];
}

/** The best finished sequences of one prompt (transformers' BeamHypotheses). */
export class BeamHypotheses {
  private readonly hypotheses: Hypothesis[] = [];
  private worstScore = 1e9;

  constructor(
    private readonly numBeams: number,
    private readonly lengthPenalty: number,
    private readonly earlyStopping: boolean | 'never',
    private readonly maxNewTokens: number,
  ) {}

  get size(): number {
    return this.hypotheses.length;
  }

  add(newTokens: number[], sumLogprobs: number, generatedLength: number): void {
    const score = sumLogprobs / generatedLength ** this.lengthPenalty;
    if (this.hypotheses.length >= this.numBeams && score <= this.worstScore) return;
    this.hypotheses.push({ score, newTokens });
    if (this.hypotheses.length > this.numBeams) {
      let worst = 0;
      for (let i = 1; i < this.hypotheses.length; i++) {
        if (this.hypotheses[i].score < this.hypotheses[worst].score) worst = i;
      }
      this.hypotheses.splice(worst, 1);
      this.worstScore = Math.min(...this.hypotheses.map((h) => h.score));
    } else {
      this.worstScore = Math.min(score, this.worstScore);
    }
  }

  /** bestSumLogprobs: the best candidate score of this step; generatedLength: new tokens including this step's. */
  isDone(bestSumLogprobs: number, generatedLength: number): boolean {
    if (this.hypotheses.length < this.numBeams) return false;
    if (this.earlyStopping === true) return true;
    const bestLength =
      this.earlyStopping === 'never' && this.lengthPenalty > 0 ? this.maxNewTokens : generatedLength;
    return this.worstScore >= bestSumLogprobs / bestLength ** this.lengthPenalty;
  }

  /** The n best, best first; among equal scores the later one first (transformers pops a stable ascending sort). */
  best(n: number): number[][] {
    return this.hypotheses
      .map((hypothesis, order) => ({ hypothesis, order }))
      .sort((a, b) => b.hypothesis.score - a.hypothesis.score || b.order - a.order)
      .slice(0, n)
      .map(({ hypothesis }) => hypothesis.newTokens);
  }
}

interface Candidate {
  /** Batch row of the beam being extended. */
  row: number;
  token: number;
  /** Accumulated score of the beam with this token. */
  score: number;
}

/**
 * The continuations of one prompt's beams in the order they are considered. Ranking is lazy: usually
 * only the first max(2, 1 + eos count) * num_beams are needed, more only when many of them finish.
 */
class CandidateRanking {
  /** Accumulated score of every (beam, token), flattened beam-major like transformers' view(batch, beams * vocab). */
  private readonly scores: Float64Array;
  private readonly available: Uint8Array;
  /** Sampling weights, zeroed once drawn; null for deterministic ranking. */
  private readonly weights: Float64Array | null;
  private readonly ranked: Candidate[] = [];

  constructor(
    private readonly firstRow: number,
    private readonly vocabSize: number,
    stepScores: readonly Float64Array[],
    beamScores: ArrayLike<number>,
    private readonly chunkSize: number,
    private readonly random: RandomSource | null,
  ) {
    this.scores = new Float64Array(stepScores.length * vocabSize);
    stepScores.forEach((scores, beam) => {
      for (let token = 0; token < vocabSize; token++) {
        this.scores[beam * vocabSize + token] = scores[token] + beamScores[beam];
      }
    });
    this.available = new Uint8Array(this.scores.length).fill(1);
    this.weights = random ? softmax(this.scores) : null;
  }

  /** The candidate at `rank`, ranking more on demand; null once every continuation has been ranked. */
  at(rank: number): Candidate | null {
    while (this.ranked.length <= rank) {
      const more = this.rankNext();
      if (more.length === 0) return null;
      this.ranked.push(...more);
    }
    return this.ranked[rank];
  }

  private rankNext(): Candidate[] {
    const picked = this.random ? this.draw(this.chunkSize, this.random) : [];
    // Deterministic ranking, or the remainder once the sampling distribution has no mass left.
    picked.push(...this.takeBest(this.chunkSize - picked.length));
    return picked
      .map((index) => ({
        row: this.firstRow + Math.floor(index / this.vocabSize),
        token: index % this.vocabSize,
        score: this.scores[index],
      }))
      .sort((a, b) => b.score - a.score);
  }

  private draw(count: number, random: RandomSource): number[] {
    const weights = this.weights as Float64Array;
    const drawn: number[] = [];
    while (drawn.length < count && weights.some((weight) => weight > 0)) {
      const index = sampleIndex(weights, random);
      weights[index] = 0;
      this.available[index] = 0;
      drawn.push(index);
    }
    return drawn;
  }

  /** The `count` best available continuations, best first, lower index first on ties. */
  private takeBest(count: number): number[] {
    const best: number[] = [];
    if (count <= 0) return best;
    for (let index = 0; index < this.scores.length; index++) {
      if (!this.available[index]) continue;
      const score = this.scores[index];
      if (best.length === count && !(score > this.scores[best[count - 1]])) continue;
      let at = best.length;
      while (at > 0 && this.scores[best[at - 1]] < score) at--;
      best.splice(at, 0, index);
      if (best.length > count) best.pop();
    }
    for (const index of best) {
      this.available[index] = 0;
      if (this.weights) this.weights[index] = 0;
    }
    return best;
  }
}

/**
 * The beams' constraint states after a step: each copies its source beam's and moves past its token. A
 * beam whose token the constraint refuses (only when fewer tokens are allowed than beams are needed) scores
 * -Infinity and never wins, so its state is left as it was.
 */
function advancedStates(states: ConstraintState[], sourceRows: number[], tokens: number[], done: boolean[], numBeams: number): ConstraintState[] {
  return sourceRows.map((source, row) => {
    const state = states[source]!.clone();
    if (!done[Math.floor(row / numBeams)]) state.tryAdvance(tokens[row]!);
    return state;
  });
}

/** Returns the new tokens of the num_return_sequences best hypotheses of each prompt, grouped by prompt. */
export async function beamSearch(
  session: DecoderSession,
  prompts: PromptBatch,
  config: ResolvedGenerationConfig,
  finish: FinishRule,
  constraint: Constraint | null = null,
): Promise<number[][]> {
  const numBeams = config.numBeams;
  const promptCount = prompts.inputIds.length;
  const promptLength = prompts.inputIds[0].length;
  const batch = await DecodingBatch.start(session, prompts, numBeams);
  const processors = buildLogitsProcessors(config);
  const eos = new Set(config.eosTokenIds);
  const warpers = config.doSample ? buildLogitsWarpers(config, Math.max(2, eos.size + 1)) : [];
  const random = config.doSample ? createRandom(config.seed) : null;
  const candidatesPerStep = Math.max(2, 1 + eos.size) * numBeams;
  const maxNewTokens = config.maxLength - promptLength;
  const hypotheses = Array.from(
    { length: promptCount },
    () => new BeamHypotheses(numBeams, config.lengthPenalty, config.earlyStopping, maxNewTokens),
  );
  const done = new Array<boolean>(promptCount).fill(false);
  // Each beam's place in the constraint; candidates copy their source beam's.
  let states: ConstraintState[] | null = constraint ? Array.from({ length: promptCount * numBeams }, () => constraint.start(config.eosTokenIds)) : null;
  let beamScores: number[] = Array.from({ length: promptCount * numBeams }, (_, row) =>
    row % numBeams === 0 ? 0 : INACTIVE_BEAM_SCORE,
  );

  for (let length = promptLength; ; ) {
    const generatedLength = length + 1 - promptLength;
    const sourceRows: number[] = [];
    const nextTokens: number[] = [];
    const nextScores: number[] = [];
    for (let prompt = 0; prompt < promptCount; prompt++) {
      const firstRow = prompt * numBeams;
      if (done[prompt]) {
        for (let beam = 0; beam < numBeams; beam++) {
          sourceRows.push(firstRow + beam);
          nextTokens.push(fillToken(config));
          nextScores.push(0);
        }
        continue;
      }
      const stepScores = Array.from({ length: numBeams }, (_, beam) => {
        const row = firstRow + beam;
        const scores = logSoftmax(batch.logitsOf(row));
        states?.[row]!.mask(scores, config.maxLength - length);
        const history = { tokens: batch.history[row], currentLength: length };
        applyProcessors(processors, scores, history);
        applyProcessors(warpers, scores, history);
        return scores;
      });
      const ranking = new CandidateRanking(
        firstRow,
        batch.vocabSize,
        stepScores,
        beamScores.slice(firstRow, firstRow + numBeams),
        candidatesPerStep,
        random,
      );
      let running = 0;
      for (let rank = 0; running < numBeams; rank++) {
        const candidate = ranking.at(rank);
        if (!candidate) throw new Error('beam search ran out of candidate tokens');
        const newTokens = [...batch.generatedTokens(candidate.row), candidate.token];
        const kept = finish.keptCount(newTokens);
        if (kept === null) {
          sourceRows.push(candidate.row);
          nextTokens.push(candidate.token);
          nextScores.push(candidate.score);
          running++;
        } else if (rank < numBeams) {
          hypotheses[prompt].add(newTokens.slice(0, kept), candidate.score, generatedLength);
        }
      }
      const bestCandidate = ranking.at(0) as Candidate;
      done[prompt] = hypotheses[prompt].isDone(bestCandidate.score, generatedLength);
    }
    batch.reorder(sourceRows);
    batch.push(nextTokens);
    states &&= advancedStates(states, sourceRows, nextTokens, done, numBeams);
    beamScores = nextScores;
    length++;
    if (length >= config.maxLength || done.every(Boolean)) break;
    await batch.computeNextLogits();
  }

  const newTokens: number[][] = [];
  for (let prompt = 0; prompt < promptCount; prompt++) {
    if (!done[prompt]) {
      for (let beam = 0; beam < numBeams; beam++) {
        const row = prompt * numBeams + beam;
        const tokens = batch.generatedTokens(row);
        hypotheses[prompt].add(tokens, beamScores[row], tokens.length);
      }
    }
    newTokens.push(...hypotheses[prompt].best(config.numReturnSequences));
  }
  return newTokens;
}
