/** generate(): transformers' GenerationMixin.generate for a decoder-only model behind a DecoderSession. */
import { compileConstraint, type Constraint, type TokenVocabulary } from '../constraints/index.js';
import { checkTokenIds, type DecoderSession } from '../model/index.js';
import { beamSearch } from './beam-search.js';
import { DecodingBatch, type PromptBatch } from './batch.js';
import {
  fillToken,
  GenerationError,
  resolveGenerationConfig,
  type GenerationConfig,
  type ResolvedGenerationConfig,
} from './config.js';
import { TokenChooser, type TokenScores } from './choose.js';
import { createRandom } from './sampling.js';
import { DecodingSequence, FinishRule, type StopCut } from './sequence.js';
import { type Decode, StopStringMatcher } from './stopping.js';
import type { TokenStreamer } from './streamer.js';

export interface GenerateModel {
  /** A session with an empty cache for batchSize rows. */
  /** `maxLength`: tokens per row the session will hold, so its cache is sized once. */
  createSession(batchSize: number, maxLength?: number): DecoderSession;
  readonly vocabSize: number;
  /** The context window (max_position_embeddings). */
  readonly maxPositions: number;
}

export interface GenerateRequest {
  /** Left-padded prompt rows, all the same length. */
  input_ids: number[][];
  /** 0 = padding (left padding only); default all ones. */
  attention_mask?: number[][];
  config: GenerationConfig;
  /** Needed for `stop`. */
  decode?: Decode;
  /** How a stop string cuts a row (default 'token'; 'text' for callers that return text, see stopping.ts). */
  stopCut?: StopCut;
  /** The tokenizer's tokens as bytes (constraints/tokenizerVocabulary), needed for json_schema / constraint. */
  vocabulary?: TokenVocabulary;
  /**
   * Receives the new tokens of the first returned sequence: step by step when greedy or sampling (tokens
   * a stop string may still cut are held back until decided), all at the end with beams.
   */
  streamer?: TokenStreamer;
}

/** generate()'s result with return_dict_in_generate (transformers' GenerateDecoderOnlyOutput). */
export interface GenerateOutput {
  sequences: number[][];
  /**
   * With output_scores: per returned sequence, one entry per generated token (padding after it finished
   * excluded). transformers returns processed scores per step instead; these are the model's log-probabilities.
   */
  scores?: TokenScores[][];
}

/**
 * Returns prompt + new tokens per returned sequence (batch * num_return_sequences rows, grouped by
 * prompt), as transformers does; rows that finished early are padded on the right with pad_token_id
 * (or the first eos id when there is no pad token).
 */
export async function generate(model: GenerateModel, request: GenerateRequest): Promise<number[][]> {
  return (await generateOutput(model, request)).sequences;
}

/** generate() returning { sequences, scores } (scores with config.output_scores). */
export async function generateOutput(model: GenerateModel, request: GenerateRequest): Promise<GenerateOutput> {
  const { streamer } = request;
  try {
    const prompts = checkPrompts(request, model.vocabSize);
    const promptLength = prompts.inputIds[0].length;
    const config = resolveGenerationConfig(request.config, { promptLength, maxPositions: model.maxPositions });
    checkSpecialTokens(config, model.vocabSize);
    const finish = new FinishRule(config, new StopStringMatcher(config.stop, request.decode), request.stopCut);
    const constraint = outputConstraint(config, request.vocabulary);
    const session = model.createSession(prompts.inputIds.length, config.maxLength);
    let newTokens: number[][];
    let scores: TokenScores[][] | undefined;
    try {
      if (config.numBeams > 1) {
        newTokens = await beamSearch(session, prompts, config, finish, constraint);
        if (newTokens[0].length > 0) streamer?.put(newTokens[0]);
      } else {
        ({ newTokens, scores } = await sampleOrGreedy(session, prompts, config, finish, streamer, constraint));
      }
    } finally {
      session.dispose();
    }
    streamer?.end();
    const sequences = assembleSequences(prompts.inputIds, config.numReturnSequences, newTokens, config);
    return config.outputScores ? { sequences, scores } : { sequences };
  } catch (error) {
    if (streamer?.abort) streamer.abort(error);
    else streamer?.end();
    throw error;
  }
}

/**
 * Greedy decoding and multinomial sampling (transformers' _sample). Returns each row's new tokens
 * without the padding written after it finished, and their scores when config.outputScores. The first row's
 * final tokens go to the streamer as they settle, so the stream shows exactly the tokens returned.
 */
async function sampleOrGreedy(
  session: DecoderSession,
  prompts: PromptBatch,
  config: ResolvedGenerationConfig,
  finish: FinishRule,
  streamer: TokenStreamer | undefined,
  constraint: Constraint | null,
): Promise<{ newTokens: number[][]; scores?: TokenScores[][] }> {
  const batch = await DecodingBatch.start(session, prompts, config.numReturnSequences);
  // One random source for the whole batch, as transformers draws every row's token from one generator.
  const chooser = new TokenChooser(config, config.doSample ? createRandom(config.seed) : null);
  const sequences = batch.history.map(
    (prompt) =>
      new DecodingSequence({
        prompt,
        countedPromptLength: prompts.inputIds[0].length,
        config,
        chooser,
        finish,
        topLogprobs: config.outputScores ? config.topLogprobs : null,
        constraint: constraint?.start(config.eosTokenIds),
      }),
  );
  for (;;) {
    const nextTokens = sequences.map((sequence, row) => {
      if (sequence.finished) return fillToken(config);
      const { token, tokens } = sequence.step(batch.logitsOf(row), batch.logsumexpOf(row));
      if (row === 0 && tokens.length > 0) streamer?.put(tokens);
      return token;
    });
    batch.push(nextTokens);
    if (sequences.every((sequence) => sequence.finished)) break;
    await batch.computeNextLogits();
  }
  const newTokens = sequences.map((sequence) => sequence.newTokens);
  return config.outputScores ? { newTokens, scores: sequences.map((sequence) => sequence.newScores) } : { newTokens };
}

function outputConstraint(config: ResolvedGenerationConfig, vocabulary: TokenVocabulary | undefined): Constraint | null {
  if (config.constraint === null) return null;
  if (!vocabulary) {
    throw new GenerationError(
      "json_schema and constraint need the tokenizer's vocabulary (generate's `vocabulary`: tokenizerVocabulary(tokenizer, vocabSize)); the pipeline and server pass it.",
    );
  }
  return compileConstraint(config.constraint, vocabulary);
}

function assembleSequences(
  inputIds: readonly number[][],
  rowsPerPrompt: number,
  newTokens: readonly number[][],
  config: ResolvedGenerationConfig,
): number[][] {
  const width = Math.max(...newTokens.map((tokens) => tokens.length));
  return newTokens.map((tokens, row) => {
    const sequence = [...inputIds[Math.floor(row / rowsPerPrompt)], ...tokens];
    if (tokens.length < width) sequence.push(...new Array<number>(width - tokens.length).fill(fillToken(config)));
    return sequence;
  });
}

function checkPrompts(request: GenerateRequest, vocabSize: number): PromptBatch {
  const inputIds = request.input_ids;
  if (!Array.isArray(inputIds) || inputIds.length === 0 || !inputIds.every(Array.isArray)) {
    throw new GenerationError('input_ids must be a non-empty list of token id rows.');
  }
  const length = inputIds[0].length;
  if (length === 0) throw new GenerationError('input_ids rows must not be empty: generation needs a prompt token.');
  inputIds.forEach((ids, row) => {
    if (ids.length !== length) {
      throw new GenerationError(
        `input_ids rows must have the same length (left-pad them); row ${row} has ${ids.length} tokens, row 0 has ${length}.`,
      );
    }
  });
  checkTokenIds(inputIds, vocabSize, 'input_ids', { error: GenerationError });
  const attentionMask = request.attention_mask ?? inputIds.map((ids) => ids.map(() => 1));
  if (attentionMask.length !== inputIds.length) {
    throw new GenerationError(`attention_mask has ${attentionMask.length} rows, input_ids ${inputIds.length}.`);
  }
  attentionMask.forEach((mask, row) => {
    if (mask.length !== length || mask.some((bit) => bit !== 0 && bit !== 1)) {
      throw new GenerationError(`attention_mask row ${row} must hold ${length} values of 0 or 1.`);
    }
    const firstReal = mask.indexOf(1);
    if (firstReal < 0) throw new GenerationError(`attention_mask row ${row} has no real token.`);
    if (mask.indexOf(0, firstReal) >= 0) {
      throw new GenerationError(
        `attention_mask row ${row} has padding after a real token; decoder-only generation needs left padding.`,
      );
    }
  });
  return { inputIds, attentionMask };
}

/** The special token ids a config names must be tokens of the model's vocabulary. */
function checkSpecialTokens(config: ResolvedGenerationConfig, vocabSize: number): void {
  const named = { error: GenerationError, indexed: false };
  checkTokenIds(config.eosTokenIds, vocabSize, 'eos_token_id', named);
  if (config.padTokenId !== null) checkTokenIds([config.padTokenId], vocabSize, 'pad_token_id', named);
  checkTokenIds(config.badWordsIds, vocabSize, 'bad_words_ids', { error: GenerationError });
}
