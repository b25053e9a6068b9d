/**
 * Running a request's choices (prompts × n) through the engine and turning their tokens into text: one UTF-8
 * stream decoder per choice holds back a character split across tokens, so streamed pieces join into exactly
 * the non-streamed text, and both are built the same way.
 */
import { GenerationError, resolveGenerationConfig, type TokenScores } from '../generation/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import type { Engine, FinishReason, SequenceSpec } from './engine.js';
import { QueueFullError } from './engine.js';
import { invalidRequest, OpenAIError } from './errors.js';
import { generationOptions, openAIProcessors } from './sampling.js';
import type { SamplingBody } from './schemas.js';

export interface ChoicePlan {
  prompt: number[];
  /** Index of the prompt among the request's prompts (choice index = prompt * n + i). */
  promptIndex: number;
}

/** Generated tokens with their text and, when asked for, their scores. */
export interface GeneratedText {
  text: string;
  tokens: number[];
  scores: TokenScores[];
  /** Character offset of each token in the choice's text. */
  offsets: number[];
}

export interface TextPiece extends GeneratedText {
  choice: number;
}

export interface ChoiceEvents {
  onPiece(piece: TextPiece): void;
  onPromptScores?(choice: number, scores: (TokenScores | null)[]): void;
  onFinish(choice: number, reason: FinishReason): void;
}

export interface RunOptions {
  body: SamplingBody;
  /** Context window of the model. */
  maxPositions: number;
  eosTokenId: number | null;
  /** Default new tokens when max_tokens is absent (null: what is left of the context). */
  defaultMaxTokens: number | null;
  /** Alternatives per token, or null for no log-probabilities. */
  logprobs: number | null;
  promptScores: boolean;
  /** The request's own name of its max-tokens field, for messages. */
  maxTokensField: string;
  maxTokens: number | null | undefined;
}

export interface RunningChoices {
  done: Promise<void>;
  cancel(): void;
}

/** Checks every choice, then submits them together; throws OpenAIError (400, 429) before anything runs. */
export function runChoices(
  engine: Engine,
  tokenizer: GPT2Tokenizer,
  plans: ChoicePlan[],
  options: RunOptions,
  events: ChoiceEvents,
): RunningChoices {
  const n = options.body.n ?? 1;
  const specs: SequenceSpec[] = [];
  let settle!: { resolve: () => void; reject: (error: Error) => void };
  const done = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  let unfinished = plans.length * n;
  plans.forEach((plan, p) => {
    const maxTokens = options.maxTokens ?? options.defaultMaxTokens ?? options.maxPositions - plan.prompt.length;
    const requested = plan.prompt.length + maxTokens;
    if (requested > options.maxPositions) {
      throw invalidRequest(
        `This model's maximum context length is ${options.maxPositions} tokens, however you requested ${requested} tokens ` +
          `(${plan.prompt.length} in your prompt; ${maxTokens} for the completion). Please reduce your prompt; or completion length.`,
        options.maxTokens === undefined || options.maxTokens === null ? 'prompt' : options.maxTokensField,
        'context_length_exceeded',
      );
    }
    if (maxTokens < 1) {
      throw invalidRequest(`the prompt fills the model's context of ${options.maxPositions} tokens; no room to generate`, 'prompt', 'context_length_exceeded');
    }
    for (let i = 0; i < n; i++) {
      const choice = p * n + i;
      const decoder = new TextDecoder('utf-8');
      let length = 0;
      const config = resolveConfig(options.body, maxTokens, i, options.eosTokenId, plan.prompt.length, options.maxPositions);
      specs.push({
        prompt: plan.prompt,
        config,
        extraProcessors: openAIProcessors(options.body, plan.prompt.length, tokenizer.vocab_size),
        logprobs: options.logprobs,
        promptScores: options.promptScores,
        listener: {
          onTokens(tokens, scores) {
            const offsets: number[] = [];
            let text = '';
            for (const token of tokens) {
              offsets.push(length + text.length);
              text += decoder.decode(tokenizer.decodeBytes([token], { skip_special_tokens: true }), { stream: true });
            }
            length += text.length;
            events.onPiece({ choice, text, tokens, scores, offsets });
          },
          onPromptScores: (scores) => events.onPromptScores?.(choice, scores),
          onFinish(reason) {
            const rest = decoder.decode();
            if (rest) events.onPiece({ choice, text: rest, tokens: [], scores: [], offsets: [] });
            events.onFinish(choice, reason);
            if (--unfinished === 0) settle.resolve();
          },
          onError(error) {
            settle.reject(error);
          },
        },
      });
    }
  });
  let handles: { cancel(): void }[];
  try {
    handles = engine.submit(specs);
  } catch (error) {
    if (error instanceof QueueFullError) {
      throw new OpenAIError(429, `The server is busy: ${error.message}. Retry shortly.`, 'rate_limit_error', null, 'queue_full', {
        'retry-after': '1',
      });
    }
    throw error;
  }
  return {
    done,
    cancel() {
      handles.forEach((handle) => handle.cancel());
      settle.reject(new Error('the request was cancelled'));
    },
  };
}

function resolveConfig(body: SamplingBody, maxTokens: number, choice: number, eos: number | null, promptLength: number, maxPositions: number) {
  try {
    return resolveGenerationConfig(generationOptions(body, maxTokens, choice, eos), { promptLength, maxPositions });
  } catch (error) {
    if (error instanceof GenerationError) throw invalidRequest(error.message);
    throw error;
  }
}
