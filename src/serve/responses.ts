/**
 * OpenAI's response shapes for /v1/completions and /v1/chat/completions, whole or as Server-Sent Events
 * (`data: {...}` chunks, then `data: [DONE]`), built from the same pieces either way.
 */
import type { FastifyReply } from 'fastify';
import type { FinishReason, TokenScores } from '../generation/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import type { GeneratedText, TextPiece } from './choices.js';
import { OpenAIError } from './errors.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Everything one choice produced. */
export interface ChoiceResult extends GeneratedText {
  /** Generated tokens whose text was not returned (past a stop string). */
  hiddenTokens: number;
  promptScores: (TokenScores | null)[] | null;
  finishReason: FinishReason | null;
}

/** How one endpoint shapes its choices. */
export interface ResponseFormat {
  /** `object` of the whole response and of a streamed chunk. */
  object: string;
  chunkObject: string;
  /** Choice objects sent before any token when streaming (the echoed prompt, the assistant role). */
  openingChoices(choices: number): object[];
  /** A streamed choice for a piece of text, or null when it carries nothing worth sending. */
  pieceChoice(piece: TextPiece): object | null;
  finishChoice(choice: number, reason: FinishReason): object;
  /** A whole choice of a non-streamed response. */
  wholeChoice(choice: number, result: ChoiceResult): object;
}

/** A response streamed as Server-Sent Events: `data: {...}` chunks, then `data: [DONE]`. */
export class EventStream {
  constructor(private readonly reply: FastifyReply) {
    reply.hijack();
    // Headers set by hooks so far (CORS) go out with the stream's own.
    reply.raw.writeHead(200, {
      ...(reply.getHeaders() as Record<string, string>),
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
    });
  }

  send(event: object): void {
    this.reply.raw.write(`data: ${JSON.stringify(event)}\n\n`);
  }

  /** Headers are gone: an error travels as an event, as OpenAI's streams report one. */
  fail(error: unknown): void {
    this.send((error instanceof OpenAIError ? error : new OpenAIError(500, (error as Error).message, 'server_error')).body);
  }

  end(): void {
    this.reply.raw.end('data: [DONE]\n\n');
  }
}

/** Adds a piece to what its choice produced so far. */
export function record(result: ChoiceResult, piece: TextPiece): void {
  result.offsets.push(...piece.offsets);
  result.text += piece.text;
  result.tokens.push(...piece.tokens);
  result.scores.push(...piece.scores);
  result.hiddenTokens += piece.hiddenTokens;
  if (piece.promptScores) result.promptScores = piece.promptScores;
  if (piece.finishReason) result.finishReason = piece.finishReason;
}

export function emptyResult(): ChoiceResult {
  return { text: '', tokens: [], scores: [], offsets: [], hiddenTokens: 0, promptScores: null, finishReason: null };
}

export function usageOf(promptTokens: number, results: readonly ChoiceResult[]): Usage {
  const completion = results.reduce((sum, result) => sum + result.tokens.length + result.hiddenTokens, 0);
  return { prompt_tokens: promptTokens, completion_tokens: completion, total_tokens: promptTokens + completion };
}

/** The strings OpenAI reports for tokens: each token decoded alone. */
export function tokenText(tokenizer: GPT2Tokenizer, token: number): string {
  return tokenizer.decode([token]);
}

/** /v1/completions: text choices, legacy logprobs (tokens, token_logprobs, top_logprobs, text_offset). */
export function completionFormat(tokenizer: GPT2Tokenizer, prompts: { text: string; tokens: number[] }[], n: number, options: { echo: boolean; logprobs: boolean }): ResponseFormat {
  const promptOf = (choice: number) => prompts[Math.floor(choice / n)]!;
  const echoed = (choice: number) => (options.echo ? promptOf(choice).text : '');
  const legacyLogprobs = (scores: (TokenScores | null)[], tokens: number[], offsets: number[]) => ({
    tokens: tokens.map((token) => tokenText(tokenizer, token)),
    token_logprobs: scores.map((score) => score?.logprob ?? null),
    top_logprobs: scores.map((score) =>
      score ? Object.fromEntries(score.top.map((alternative) => [tokenText(tokenizer, alternative.token), alternative.logprob])) : null,
    ),
    text_offset: offsets,
  });
  return {
    object: 'text_completion',
    chunkObject: 'text_completion',
    openingChoices: (choices) =>
      options.echo
        ? Array.from({ length: choices }, (_, index) => ({ index, text: echoed(index), logprobs: null, finish_reason: null }))
        : [],
    pieceChoice: (piece) =>
      piece.text || (options.logprobs && piece.tokens.length > 0)
        ? {
            index: piece.choice,
            text: piece.text,
            logprobs: options.logprobs ? legacyLogprobs(piece.scores, piece.tokens, piece.offsets.map((o) => o + echoed(piece.choice).length)) : null,
            finish_reason: null,
          }
        : null,
    finishChoice: (index, reason) => ({ index, text: '', logprobs: null, finish_reason: reason }),
    wholeChoice(index, result) {
      const prefix = echoed(index);
      let logprobs = null;
      if (options.logprobs) {
        const prompt = options.echo ? promptOf(index).tokens : [];
        const promptOffsets = textOffsets(tokenizer, prompt);
        logprobs = legacyLogprobs(
          [...(options.echo ? (result.promptScores ?? prompt.map(() => null)) : []), ...result.scores],
          [...prompt, ...result.tokens],
          [...promptOffsets, ...result.offsets.map((offset) => offset + prefix.length)],
        );
      }
      return { index, text: prefix + result.text, logprobs, finish_reason: result.finishReason };
    },
  };
}

/** Where each token's text starts when the tokens are decoded together. */
function textOffsets(tokenizer: GPT2Tokenizer, tokens: number[]): number[] {
  const decoder = new TextDecoder('utf-8');
  let length = 0;
  return tokens.map((token) => {
    const offset = length;
    length += decoder.decode(tokenizer.decodeBytes([token]), { stream: true }).length;
    return offset;
  });
}

/** /v1/chat/completions: assistant messages, logprobs as content entries with bytes. */
export function chatFormat(tokenizer: GPT2Tokenizer, options: { logprobs: boolean }): ResponseFormat {
  const entry = (token: number, logprob: number) => ({
    token: tokenText(tokenizer, token),
    logprob,
    bytes: [...tokenizer.decodeBytes([token])],
  });
  const content = (scores: TokenScores[]) =>
    options.logprobs
      ? { content: scores.map((score) => ({ ...entry(score.token, score.logprob), top_logprobs: score.top.map((top) => entry(top.token, top.logprob)) })) }
      : null;
  return {
    object: 'chat.completion',
    chunkObject: 'chat.completion.chunk',
    openingChoices: (choices) =>
      Array.from({ length: choices }, (_, index) => ({ index, delta: { role: 'assistant', content: '' }, logprobs: null, finish_reason: null })),
    pieceChoice: (piece) =>
      piece.text || (options.logprobs && piece.tokens.length > 0)
        ? { index: piece.choice, delta: { content: piece.text }, logprobs: content(piece.scores), finish_reason: null }
        : null,
    finishChoice: (index, reason) => ({ index, delta: {}, logprobs: null, finish_reason: reason }),
    wholeChoice: (index, result) => ({
      index,
      message: { role: 'assistant', content: result.text },
      logprobs: content(result.scores),
      finish_reason: result.finishReason,
    }),
  };
}
