/**
 * A request's choices (prompts × n): checked and turned into the engine's sequence requests, and their outputs
 * turned into text. One UTF-8 stream decoder per choice holds back a character split across tokens, so streamed
 * pieces join into exactly the non-streamed text, and both are built the same way.
 */
import {
  firstStopIndex,
  GenerationError,
  type FinishReason,
  resolveGenerationConfig,
  type SequenceOutput,
  type SequenceRequest,
  type TokenScores,
} from '../generation/index.js';
import { compileConstraint, ConstraintError, type Constraint, type ConstraintSpec, type TokenVocabulary } from '../constraints/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import { invalidRequest } from './errors.js';
import { requestConstraint } from './structured-output.js';
import { generationOptions, openAIProcessors } from './sampling.js';
import type { SamplingBody } from './schemas.js';

/** Generated tokens with their text and, when asked for, their scores. */
export interface GeneratedText {
  text: string;
  tokens: number[];
  scores: TokenScores[];
  /** Character offset of each token in the choice's text. */
  offsets: number[];
}

/** What one choice added since its last piece. */
export interface TextPiece extends GeneratedText {
  choice: number;
  /** Tokens generated past the returned text (through the one that completed a stop string): counted, not shown. */
  hiddenTokens: number;
  promptScores?: (TokenScores | null)[];
  finishReason: FinishReason | null;
}

export interface ChoiceLimits {
  /** Context window of the model. */
  maxPositions: number;
  eosTokenId: number | null;
  vocabSize: number;
  /** Default new tokens when max_tokens is absent (null: what is left of the context). */
  defaultMaxTokens: number | null;
  /** Alternatives per token, or null for no log-probabilities. */
  logprobs: number | null;
  promptScores: boolean;
  /** The request's own name of its max-tokens field, for messages. */
  maxTokensField: string;
  maxTokens: number | null | undefined;
  /** The tokenizer's vocabulary, for structured outputs (built on first use). */
  vocabulary: () => TokenVocabulary;
}

/** Checks every choice of a request and returns the engine's requests (choice index = prompt * n + i); throws 400s. */
export function planChoices(body: SamplingBody, prompts: readonly number[][], limits: ChoiceLimits): SequenceRequest[] {
  const n = body.n ?? 1;
  const structured = requestConstraint(body);
  const constraint = structured && compiled(structured.spec, structured.param, limits.vocabulary);
  return prompts.flatMap((prompt) => {
    const maxTokens = limits.maxTokens ?? limits.defaultMaxTokens ?? limits.maxPositions - prompt.length;
    const requested = prompt.length + maxTokens;
    if (requested > limits.maxPositions) {
      throw invalidRequest(
        `This model's maximum context length is ${limits.maxPositions} tokens, however you requested ${requested} tokens ` +
          `(${prompt.length} in your prompt; ${maxTokens} for the completion). Please reduce your prompt; or completion length.`,
        limits.maxTokens === undefined || limits.maxTokens === null ? 'prompt' : limits.maxTokensField,
        'context_length_exceeded',
      );
    }
    if (maxTokens < 1) {
      throw invalidRequest(`the prompt fills the model's context of ${limits.maxPositions} tokens; no room to generate`, 'prompt', 'context_length_exceeded');
    }
    const extraProcessors = openAIProcessors(body, prompt.length, limits.vocabSize);
    return Array.from({ length: n }, (_, i) => {
      const config = resolveConfig(body, maxTokens, i, limits.eosTokenId, prompt.length, limits.maxPositions, structured?.spec);
      return {
        prompt,
        config,
        extraProcessors,
        logprobs: limits.logprobs,
        promptScores: limits.promptScores,
        constraint: constraint?.start(config.eosTokenIds),
      };
    });
  });
}

function compiled(spec: ConstraintSpec, param: string, vocabulary: () => TokenVocabulary): Constraint {
  try {
    return compileConstraint(spec, vocabulary());
  } catch (error) {
    if (error instanceof ConstraintError) throw invalidRequest(error.message, param);
    throw error;
  }
}

/**
 * A choice's outputs as text pieces: each token's bytes through one streaming UTF-8 decoder. A stop string cuts the
 * text exactly before it, as OpenAI does: the last output holds the tokens through the stop string, and only those
 * whose text was (partly) returned are listed; the others are counted in `hiddenTokens`.
 */
export async function* choiceText(
  outputs: AsyncIterable<SequenceOutput>,
  tokenizer: GPT2Tokenizer,
  choice: number,
  stops: readonly string[],
): AsyncGenerator<TextPiece> {
  const decoder = new TextDecoder('utf-8');
  let emitted = '';
  for await (const output of outputs) {
    const offsets: number[] = [];
    let text = '';
    for (const token of output.tokens) {
      offsets.push(emitted.length + text.length);
      text += decoder.decode(tokenizer.decodeBytes([token], { skip_special_tokens: true }), { stream: true });
    }
    if (output.finishReason) text += decoder.decode();
    let returned = output.tokens.length;
    const cut = output.finishReason === 'stop' ? firstStopIndex(emitted + text, stops) : -1;
    if (cut >= 0) {
      text = (emitted + text).slice(emitted.length, cut);
      returned = offsets.filter((offset) => offset < cut).length;
    }
    emitted += text;
    yield {
      choice,
      text,
      tokens: output.tokens.slice(0, returned),
      scores: output.scores.slice(0, returned),
      offsets: offsets.slice(0, returned),
      hiddenTokens: output.tokens.length - returned,
      promptScores: output.promptScores,
      finishReason: output.finishReason,
    };
  }
}

function resolveConfig(body: SamplingBody, maxTokens: number, choice: number, eos: number | null, promptLength: number, maxPositions: number, constraint?: ConstraintSpec) {
  try {
    return resolveGenerationConfig({ ...generationOptions(body, maxTokens, choice, eos), constraint }, { promptLength, maxPositions });
  } catch (error) {
    if (error instanceof GenerationError) throw invalidRequest(error.message);
    throw error;
  }
}
