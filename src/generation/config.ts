/**
 * Generation options with Hugging Face transformers' names and defaults, their validation, and the
 * resolved form the decoding loops work with.
 */

import { constraintKind, ConstraintError, type ConstraintSpec } from '../constraints/index.js';
import { InputError } from '../model/index.js';
export interface GenerationConfig {
  /** Total length (padded prompt + new tokens). Default 20, as transformers. Ignored when max_new_tokens is set. */
  max_length?: number;
  max_new_tokens?: number;
  /** Total length (padded prompt + new tokens) before which eos is suppressed. Ignored when min_new_tokens is set. */
  min_length?: number;
  min_new_tokens?: number;
  do_sample?: boolean;
  /** Default 1. With do_sample, 0 means greedy decoding (the limit of temperature -> 0). */
  temperature?: number;
  /** Default 50, as transformers; 0 disables. Only used when sampling. */
  top_k?: number;
  /** In (0, 1]; default 1 (disabled). Only used when sampling. */
  top_p?: number;
  /** In (0, 1]; default 1 (disabled). Only used when sampling. */
  typical_p?: number;
  /** Default 1 (disabled). */
  repetition_penalty?: number;
  /** Default 0 (disabled). */
  no_repeat_ngram_size?: number;
  bad_words_ids?: number[][];
  eos_token_id?: number | number[] | null;
  /** Default: the first eos id, as transformers does when a model has no pad token. */
  pad_token_id?: number | null;
  num_return_sequences?: number;
  num_beams?: number;
  length_penalty?: number;
  early_stopping?: boolean | 'never';
  /** Strings that end generation; they are not included in the output (needs a decode function). */
  stop?: string[];
  /** Makes sampling reproducible run to run. Without it sampling is seeded from crypto randomness. */
  seed?: number;
  /**
   * With return_dict_in_generate: also return, per sequence and step, the log-probability of the chosen token
   * and of the `top_logprobs` most likely ones (greedy and sampling; not beam search).
   */
  output_scores?: boolean;
  /** Return { sequences, scores } instead of the sequences alone, as transformers does. */
  return_dict_in_generate?: boolean;
  /** Alternatives reported per step with output_scores (default 0, at most 20). */
  top_logprobs?: number;
  /**
   * Structured output: every generated text is a JSON text this JSON Schema accepts (see docs/structured-outputs.md).
   * Shorthand for `constraint: { json_schema }`; needs the tokenizer's vocabulary, which the pipeline and server pass.
   */
  json_schema?: unknown;
  /** Structured output: `{ json_schema }`, `{ json_object: true }`, `{ regex }` (a JavaScript pattern) or `{ choice: [...] }`. */
  constraint?: ConstraintSpec;
}

/** A generation option or prompt that cannot run; an InputError, so callers catch every bad input as one kind. */
export class GenerationError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'GenerationError';
  }
}

/** Every option with its default applied and the length limits turned into total lengths. */
export interface ResolvedGenerationConfig {
  /** Total length (padded prompt + new tokens) at which generation stops. */
  maxLength: number;
  /** Total length below which eos is suppressed; 0 = no minimum. */
  minLength: number;
  /** False when do_sample is off or temperature is 0. */
  doSample: boolean;
  temperature: number;
  topK: number;
  topP: number;
  typicalP: number;
  repetitionPenalty: number;
  noRepeatNgramSize: number;
  badWordsIds: number[][];
  eosTokenIds: number[];
  /** Token written after a row has finished (pad_token_id, else the first eos id); null when rows cannot finish early. */
  padTokenId: number | null;
  numReturnSequences: number;
  numBeams: number;
  lengthPenalty: number;
  earlyStopping: boolean | 'never';
  stop: string[];
  seed: number | undefined;
  outputScores: boolean;
  topLogprobs: number;
  /** What every output must match, or null. */
  constraint: ConstraintSpec | null;
}

export interface GenerationContext {
  /** Length of the (left-padded) prompt rows. */
  promptLength: number;
  /** The model's context window (max_position_embeddings). */
  maxPositions: number;
}

const DEFAULT_MAX_LENGTH = 20;
const DEFAULT_TOP_K = 50;
const MAX_TOP_LOGPROBS = 20;

/** The token fed to and written after finished rows. Rows only finish early through eos or stop, which both imply one. */
export function fillToken(config: ResolvedGenerationConfig): number {
  if (config.padTokenId === null) throw new Error('a row finished early without a pad or eos token to fill it');
  return config.padTokenId;
}

/** Throws a GenerationError naming the offending option, its value and the limit it breaks. */
export function validateGenerationConfig(config: GenerationConfig, context: GenerationContext): void {
  resolveGenerationConfig(config, context);
}

export function resolveGenerationConfig(config: GenerationConfig, context: GenerationContext): ResolvedGenerationConfig {
  const { promptLength, maxPositions } = context;
  requireInteger('promptLength', promptLength, 1);
  requireInteger('maxPositions', maxPositions, 1);
  if (promptLength > maxPositions) {
    throw new GenerationError(
      `The prompt has ${promptLength} tokens, more than the model's context window of ${maxPositions} positions.`,
    );
  }

  const { maxLength, minLength } = resolveLengths(config, promptLength, maxPositions);

  const doSampleOption = config.do_sample ?? false;
  if (typeof doSampleOption !== 'boolean') throw invalid('do_sample', doSampleOption, 'must be true or false');
  const temperature = optionalNumber('temperature', config.temperature) ?? 1;
  if (temperature < 0) throw invalid('temperature', temperature, 'must be >= 0 (0 = greedy decoding)');

  const topK = optionalInteger('top_k', config.top_k, 0) ?? DEFAULT_TOP_K;
  const topP = optionalNumber('top_p', config.top_p) ?? 1;
  if (!(topP > 0 && topP <= 1)) throw invalid('top_p', topP, 'must be in (0, 1]');
  const typicalP = optionalNumber('typical_p', config.typical_p) ?? 1;
  if (!(typicalP > 0 && typicalP <= 1)) throw invalid('typical_p', typicalP, 'must be in (0, 1]');
  const repetitionPenalty = optionalNumber('repetition_penalty', config.repetition_penalty) ?? 1;
  if (!(repetitionPenalty > 0)) throw invalid('repetition_penalty', repetitionPenalty, 'must be > 0 (1 = no penalty)');
  const noRepeatNgramSize = optionalInteger('no_repeat_ngram_size', config.no_repeat_ngram_size, 0) ?? 0;
  const badWordsIds = resolveBadWords(config.bad_words_ids);

  const eosTokenIds = resolveEos(config.eos_token_id);
  const padOption = config.pad_token_id ?? null;
  if (padOption !== null) requireInteger('pad_token_id', padOption, 0);
  const padTokenId = padOption ?? eosTokenIds[0] ?? null;

  const stop = config.stop ?? [];
  if (!Array.isArray(stop) || stop.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw invalid('stop', stop, 'must be a list of non-empty strings');
  }
  if (stop.length > 0 && padTokenId === null) {
    throw new GenerationError(
      'stop needs pad_token_id or eos_token_id: rows that stop early are padded with it.',
    );
  }

  const numBeams = optionalInteger('num_beams', config.num_beams, 1) ?? 1;
  const numReturnSequences = optionalInteger('num_return_sequences', config.num_return_sequences, 1) ?? 1;
  const lengthPenalty = optionalNumber('length_penalty', config.length_penalty) ?? 1;
  const earlyStopping = config.early_stopping ?? false;
  if (earlyStopping !== true && earlyStopping !== false && earlyStopping !== 'never') {
    throw invalid('early_stopping', earlyStopping, "must be true, false or 'never'");
  }

  const seed = config.seed;
  if (seed !== undefined && !Number.isSafeInteger(seed)) throw invalid('seed', seed, 'must be a safe integer');
  const outputScores = config.output_scores ?? false;
  if (typeof outputScores !== 'boolean') throw invalid('output_scores', outputScores, 'must be true or false');
  if (outputScores && numBeams > 1) {
    throw new GenerationError('output_scores is available for greedy decoding and sampling, not with num_beams > 1.');
  }
  const topLogprobs = optionalInteger('top_logprobs', config.top_logprobs, 0) ?? 0;
  if (topLogprobs > MAX_TOP_LOGPROBS) throw invalid('top_logprobs', topLogprobs, `must be at most ${MAX_TOP_LOGPROBS}`);

  const constraint = resolveConstraint(config, eosTokenIds);

  // Temperature 0 is the limit of ever sharper sampling: the argmax. Treating it as greedy (instead of
  // transformers' error) lets callers sweep temperatures down to 0 without switching do_sample.
  const doSample = doSampleOption && temperature !== 0;
  if (numBeams === 1 && !doSample && numReturnSequences > 1) {
    const why = doSampleOption ? 'temperature 0 means greedy decoding, which' : 'greedy decoding';
    throw new GenerationError(
      `num_return_sequences (${numReturnSequences}) must be 1: ${why} returns one sequence per prompt; ` +
        'sample (do_sample: true, temperature > 0) or use num_beams >= num_return_sequences.',
    );
  }
  if (numBeams > 1 && numReturnSequences > numBeams) {
    throw new GenerationError(
      `num_return_sequences (${numReturnSequences}) must be <= num_beams (${numBeams}): beam search returns its best beams.`,
    );
  }

  return {
    maxLength,
    minLength,
    doSample,
    temperature,
    topK,
    topP,
    typicalP,
    repetitionPenalty,
    noRepeatNgramSize,
    badWordsIds,
    eosTokenIds,
    padTokenId,
    numReturnSequences,
    numBeams,
    lengthPenalty,
    earlyStopping,
    stop,
    seed,
    outputScores,
    topLogprobs,
    constraint,
  };
}

/** json_schema or constraint (not both), checked for shape; compiling waits for the vocabulary (generate()). */
function resolveConstraint(config: GenerationConfig, eosTokenIds: readonly number[]): ConstraintSpec | null {
  if (config.json_schema !== undefined && config.constraint !== undefined) {
    throw new GenerationError('json_schema and constraint cannot both be set: json_schema is short for constraint: { json_schema }.');
  }
  const constraint = config.json_schema !== undefined ? { json_schema: config.json_schema } : (config.constraint ?? null);
  if (constraint === null) return null;
  try {
    constraintKind(constraint);
  } catch (error) {
    if (error instanceof ConstraintError) throw new GenerationError(error.message);
    throw error;
  }
  if (eosTokenIds.length === 0) throw new GenerationError('a constraint needs eos_token_id: an output ends with eos once it is complete.');
  return constraint;
}

/** max_length / max_new_tokens and min_length / min_new_tokens as total lengths (prompt included). */
function resolveLengths(config: GenerationConfig, promptLength: number, maxPositions: number): { maxLength: number; minLength: number } {
  const maxNewTokens = optionalInteger('max_new_tokens', config.max_new_tokens, 1);
  const maxLengthOption = optionalInteger('max_length', config.max_length, 1);
  const minNewTokens = optionalInteger('min_new_tokens', config.min_new_tokens, 0);
  const minLengthOption = optionalInteger('min_length', config.min_length, 0);

  let maxLength: number;
  if (maxNewTokens !== undefined) {
    maxLength = promptLength + maxNewTokens;
    if (maxLength > maxPositions) {
      throw new GenerationError(
        `max_new_tokens (${maxNewTokens}) plus the prompt length (${promptLength}) exceeds the model's context window ` +
          `of ${maxPositions} positions; at most ${maxPositions - promptLength} new tokens fit.`,
      );
    }
  } else {
    maxLength = maxLengthOption ?? DEFAULT_MAX_LENGTH;
    const origin = maxLengthOption === undefined ? ' (the default)' : '';
    if (maxLength <= promptLength) {
      throw new GenerationError(
        `max_length (${maxLength}${origin}) counts the prompt and must exceed the prompt length (${promptLength}); ` +
          'set max_new_tokens to choose the number of new tokens.',
      );
    }
    if (maxLength > maxPositions) {
      throw new GenerationError(
        `max_length (${maxLength}${origin}) exceeds the model's context window of ${maxPositions} positions.`,
      );
    }
  }
  const minLength = minNewTokens !== undefined ? promptLength + minNewTokens : (minLengthOption ?? 0);
  return { maxLength, minLength };
}

function resolveEos(value: number | number[] | null | undefined): number[] {
  if (value === undefined || value === null) return [];
  const ids = Array.isArray(value) ? value : [value];
  for (const id of ids) requireInteger('eos_token_id', id, 0);
  return [...ids];
}

function resolveBadWords(value: number[][] | undefined): number[][] {
  if (value === undefined) return [];
  const wellFormed =
    Array.isArray(value) &&
    value.every(
      (sequence) =>
        Array.isArray(sequence) && sequence.length > 0 && sequence.every((id) => Number.isInteger(id) && id >= 0),
    );
  if (!wellFormed) throw invalid('bad_words_ids', value, 'must be a list of non-empty lists of token ids');
  return value.map((sequence) => [...sequence]);
}

function invalid(name: string, value: unknown, rule: string): GenerationError {
  return new GenerationError(`${name} ${rule}, got ${JSON.stringify(value)}.`);
}

function requireInteger(name: string, value: unknown, min: number): void {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    throw invalid(name, value, `must be an integer >= ${min}`);
  }
}

function optionalInteger(name: string, value: number | undefined, min: number): number | undefined {
  if (value === undefined) return undefined;
  requireInteger(name, value, min);
  return value;
}

function optionalNumber(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value)) throw invalid(name, value, 'must be a finite number');
  return value;
}
