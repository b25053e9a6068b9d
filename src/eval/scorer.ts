import type { DecoderSession, LogitsOutput } from '../model/types.js';
import type { TokenRequest } from './requests.js';

/** What the scorer needs of a model: its context size and batched KV-cache sessions. */
export interface ScoringModel {
  readonly config: { readonly max_position_embeddings: number; readonly vocab_size: number };
  createSession(batchSize: number): DecoderSession | Promise<DecoderSession>;
}

/** The model's verdict on one request's continuation. */
export interface ContinuationScore {
  /** Sum over the continuation tokens of log p(token | everything before it), natural log. */
  logLikelihood: number;
  /** Whether every continuation token was the arg-max of its distribution (ties: the lowest id wins). */
  isGreedy: boolean;
  tokenCount: number;
  /** Sum over the scored positions of logsumexp(logits)², for mesh-tensorflow's z-loss term. */
  logSumExpSquaredSum: number;
}

export interface ScorerOptions {
  /** Most sequences (continuations) in one forward pass. */
  batchSize: number;
  /**
   * Cap on the logits one forward pass may return, in float32 elements; a request that alone exceeds it
   * still runs, on its own. Default 2^26 (256 MiB; ONNX Runtime holds a few times that while computing them).
   */
  maxLogitElements?: number;
  /** Called before the first batch and after every batch with the number of tokens fed so far and in total. */
  onProgress?: (fedTokens: number, totalTokens: number) => void;
}

/** Any in-vocabulary id: padding slots are masked out and their outputs never read. */
const PADDING_ID = 0;

/** Requests with one context, so the context is run once and its KV cache copied for each continuation. */
interface ContextGroup {
  contextIds: number[];
  members: { index: number; continuationIds: number[] }[];
  longestContinuation: number;
}

/**
 * Scores requests with the harness's arithmetic (each continuation token from the output at the token
 * before it) in batched KV-cache passes. Adjacent requests with the same context — the choices of a
 * multiple-choice question — share one context pass: contexts go in left-padded (HF's convention, which
 * keeps every row's tokens in consecutive cache slots, as local attention's slot window needs), the cache
 * is reordered to give every continuation its own row, and the continuations follow right-padded, so
 * padding never precedes a real token in the same row. Longest requests run first, as in the harness,
 * so a batch holds requests of similar length and a request too large for memory fails early.
 */
export async function scoreRequests(
  model: ScoringModel,
  requests: readonly TokenRequest[],
  options: ScorerOptions,
): Promise<ContinuationScore[]> {
  const maxLength = model.config.max_position_embeddings;
  const vocabSize = model.config.vocab_size;
  for (const request of requests) {
    if (request.contextIds.length === 0 || request.continuationIds.length === 0) {
      throw new Error('a scoring request needs at least one context and one continuation token');
    }
    if (request.contextIds.length + request.continuationIds.length - 1 > maxLength) {
      throw new Error(
        `request of ${request.contextIds.length} context + ${request.continuationIds.length} continuation tokens ` +
          `does not fit the model's ${maxLength} positions`,
      );
    }
  }
  const limits: BatchLimits = {
    rows: options.batchSize,
    slots: maxLength,
    logitElements: options.maxLogitElements ?? 2 ** 26,
    vocabSize,
  };
  const groups = groupAdjacentSharedContexts(requests, limits);
  groups.sort((a, b) => fedLength(b) - fedLength(a));
  const totalTokens = groups.reduce((sum, group) => sum + fedTokenCount(group), 0);

  const scores = new Array<ContinuationScore>(requests.length);
  let fedTokens = 0;
  if (groups.length > 0) options.onProgress?.(0, totalTokens);
  for (let start = 0; start < groups.length; ) {
    const batch = takeBatch(groups, start, limits);
    await scoreBatch(model, batch, vocabSize, scores);
    start += batch.length;
    fedTokens += batch.reduce((sum, group) => sum + fedTokenCount(group), 0);
    options.onProgress?.(fedTokens, totalTokens);
  }
  return scores;
}

interface BatchLimits {
  /** Sequences per pass. */
  rows: number;
  /** Cache slots per row: the model's positions. */
  slots: number;
  /** Logits returned by one pass. */
  logitElements: number;
  vocabSize: number;
}

/** Whether a pass over `rows` continuations of up to `longestContinuation` tokens stays within the limits. */
function continuationPassFits(rows: number, longestContinuation: number, limits: BatchLimits): boolean {
  return rows <= limits.rows && rows * Math.max(1, longestContinuation - 1) * limits.vocabSize <= limits.logitElements;
}

function groupAdjacentSharedContexts(requests: readonly TokenRequest[], limits: BatchLimits): ContextGroup[] {
  const groups: ContextGroup[] = [];
  requests.forEach((request, index) => {
    const last = groups[groups.length - 1];
    const member = { index, continuationIds: request.continuationIds };
    const longest = Math.max(last?.longestContinuation ?? 0, request.continuationIds.length);
    if (
      last &&
      sameIds(last.contextIds, request.contextIds) &&
      continuationPassFits(last.members.length + 1, longest, limits)
    ) {
      last.members.push(member);
      last.longestContinuation = longest;
    } else {
      const longestContinuation = request.continuationIds.length;
      groups.push({ contextIds: request.contextIds, members: [member], longestContinuation });
    }
  });
  return groups;
}

function sameIds(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((id, i) => id === b[i]);
}

/** Cache slots a group needs: the context, then every continuation token but the last. */
function fedLength(group: ContextGroup): number {
  return group.contextIds.length + group.longestContinuation - 1;
}

function fedTokenCount(group: ContextGroup): number {
  return group.contextIds.length + group.members.reduce((sum, m) => sum + m.continuationIds.length - 1, 0);
}

/** The groups from `start` that fit one pass: rows, cache slots and returned logits within their limits. */
function takeBatch(groups: readonly ContextGroup[], start: number, limits: BatchLimits): ContextGroup[] {
  const batch = [groups[start]!];
  let rows = groups[start]!.members.length;
  let longestContext = groups[start]!.contextIds.length;
  let longestContinuation = groups[start]!.longestContinuation;
  for (let i = start + 1; i < groups.length; i++) {
    const group = groups[i]!;
    const nextRows = rows + group.members.length;
    const nextContext = Math.max(longestContext, group.contextIds.length);
    const nextContinuation = Math.max(longestContinuation, group.longestContinuation);
    if (nextContext + nextContinuation - 1 > limits.slots || !continuationPassFits(nextRows, nextContinuation, limits)) {
      break;
    }
    batch.push(group);
    rows = nextRows;
    longestContext = nextContext;
    longestContinuation = nextContinuation;
  }
  return batch;
}

async function scoreBatch(
  model: ScoringModel,
  batch: readonly ContextGroup[],
  vocabSize: number,
  scores: ContinuationScore[],
): Promise<void> {
  const session = await model.createSession(batch.length);
  try {
    const contextWidth = Math.max(...batch.map((group) => group.contextIds.length));
    const contextMasks = batch.map((group) => leftPadded(group.contextIds.map(() => 1), contextWidth, 0));
    const lastContextLogits = await session.forward(
      {
        input_ids: batch.map((group) => leftPadded(group.contextIds, contextWidth, PADDING_ID)),
        attention_mask: contextMasks,
        position_ids: batch.map((group) => leftPadded(group.contextIds.map((_, p) => p), contextWidth, 0)),
      },
      { allPositions: false },
    );

    // One row per continuation from here on.
    const rows = batch.flatMap((group, g) => group.members.map((member) => ({ group, member, contextRow: g })));
    const accumulators = rows.map(() => new ScoreAccumulator());
    rows.forEach((row, r) =>
      accumulators[r]!.add(lastContextLogits, row.contextRow, vocabSize, row.member.continuationIds[0]!),
    );

    // The last continuation token is only predicted, never fed.
    const fedContinuations = rows.map((row) => row.member.continuationIds.slice(0, -1));
    const fedWidth = Math.max(...fedContinuations.map((fed) => fed.length));
    if (fedWidth > 0) {
      const contextRows = rows.map((row) => row.contextRow);
      if (contextRows.some((contextRow, r) => contextRow !== r)) session.reorder(contextRows);
      const continuationLogits = await session.forward(
        {
          input_ids: fedContinuations.map((fed) => rightPadded(fed, fedWidth, PADDING_ID)),
          attention_mask: rows.map((row, r) => [
            ...contextMasks[row.contextRow]!,
            ...rightPadded(fedContinuations[r]!.map(() => 1), fedWidth, 0),
          ]),
          position_ids: rows.map((row, r) =>
            rightPadded(fedContinuations[r]!.map((_, t) => row.group.contextIds.length + t), fedWidth, 0),
          ),
        },
        { allPositions: true },
      );
      rows.forEach((row, r) => {
        const continuation = row.member.continuationIds;
        for (let t = 1; t < continuation.length; t++) {
          accumulators[r]!.add(continuationLogits, r * fedWidth + t - 1, vocabSize, continuation[t]!);
        }
      });
    }
    rows.forEach((row, r) => {
      scores[row.member.index] = accumulators[r]!.result();
    });
  } finally {
    session.dispose();
  }
}

function leftPadded<T>(values: readonly T[], width: number, padding: T): T[] {
  return [...new Array<T>(width - values.length).fill(padding), ...values];
}

function rightPadded<T>(values: readonly T[], width: number, padding: T): T[] {
  return [...values, ...new Array<T>(width - values.length).fill(padding)];
}

class ScoreAccumulator {
  private logLikelihood = 0;
  private isGreedy = true;
  private tokenCount = 0;
  private logSumExpSquaredSum = 0;

  /** Scores `target` under the distribution in logits row `row` (rows are [batch × position]). */
  add(logits: LogitsOutput, row: number, vocabSize: number, target: number): void {
    const logSumExp = logits.logsumexp[row]!;
    this.logLikelihood += logits.data[row * vocabSize + target]! - logSumExp;
    // Once one token missed, the continuation is not greedy; skip the scan over the vocabulary.
    this.isGreedy &&= isFirstArgmax(logits.data, row * vocabSize, vocabSize, target);
    this.tokenCount++;
    this.logSumExpSquaredSum += logSumExp * logSumExp;
  }

  result(): ContinuationScore {
    return {
      logLikelihood: this.logLikelihood,
      isGreedy: this.isGreedy,
      tokenCount: this.tokenCount,
      logSumExpSquaredSum: this.logSumExpSquaredSum,
    };
  }
}

/** Whether `target` is the arg-max of the logits row at `offset`, ties going to the lowest id (torch.argmax). */
export function isFirstArgmax(data: Float32Array, offset: number, vocabSize: number, target: number): boolean {
  const logit = data[offset + target]!;
  for (let v = 0; v < target; v++) if (data[offset + v]! >= logit) return false;
  for (let v = target + 1; v < vocabSize; v++) if (data[offset + v]! > logit) return false;
  return true;
}
