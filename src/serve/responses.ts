/**
 * OpenAI's response shapes for /v1/completions and /v1/chat/completions, whole or as Server-Sent Events
 * (`data: {...}` chunks, then `data: [DONE]`), built from the same pieces either way.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyReply } from 'fastify';
import type { TokenScores } from '../generation/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import type { ChoiceEvents, GeneratedText, RunningChoices, TextPiece } from './choices.js';
import type { FinishReason } from './engine.js';
import { OpenAIError } from './errors.js';

export interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** Everything one choice produced. */
export interface ChoiceResult extends GeneratedText {
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

export interface Reply {
  model: string;
  promptTokens: number;
  choices: number;
  stream: boolean;
  includeUsage: boolean;
  format: ResponseFormat;
  /** Called once per generated piece, for metrics. */
  onTokens?(choice: number, count: number): void;
}

/** Starts the choices with `start` (which may throw OpenAIError before anything is sent) and answers the request. */
export async function answer(reply: FastifyReply, options: Reply, start: (events: ChoiceEvents) => RunningChoices): Promise<void> {
  const id = `${options.format.object === 'chat.completion' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const results: ChoiceResult[] = Array.from({ length: options.choices }, () => ({
    text: '',
    tokens: [],
    scores: [],
    offsets: [],
    promptScores: null,
    finishReason: null,
  }));
  const usage = (): Usage => {
    const completion = results.reduce((sum, result) => sum + result.tokens.length, 0);
    return { prompt_tokens: options.promptTokens, completion_tokens: completion, total_tokens: options.promptTokens + completion };
  };
  const envelope = (object: string, choices: object[]) => ({ id, object, created, model: options.model, choices });
  const send = (choices: object[]) => {
    const chunk = { ...envelope(options.format.chunkObject, choices), ...(options.includeUsage ? { usage: null } : {}) };
    reply.raw.write(`data: ${JSON.stringify(chunk)}\n\n`);
  };

  const events: ChoiceEvents = {
    onPiece(piece) {
      const result = results[piece.choice]!;
      result.offsets.push(...piece.offsets);
      result.text += piece.text;
      result.tokens.push(...piece.tokens);
      result.scores.push(...piece.scores);
      if (piece.tokens.length > 0) options.onTokens?.(piece.choice, piece.tokens.length);
      if (options.stream) {
        const choice = options.format.pieceChoice(piece);
        if (choice) send([choice]);
      }
    },
    onPromptScores(choice, scores) {
      results[choice]!.promptScores = scores;
    },
    onFinish(choice, reason) {
      results[choice]!.finishReason = reason;
      if (options.stream) send([options.format.finishChoice(choice, reason)]);
    },
  };
  const running = start(events);
  const disconnected = () => {
    if (!reply.raw.writableFinished) running.cancel();
  };
  reply.raw.on('close', disconnected);

  if (!options.stream) {
    await running.done;
    const choices = results.map((result, choice) => options.format.wholeChoice(choice, result));
    await reply.send({ ...envelope(options.format.object, choices), usage: usage() });
    return;
  }
  reply.hijack();
  // Headers set by hooks so far (CORS) go out with the stream's own.
  reply.raw.writeHead(200, {
    ...(reply.getHeaders() as Record<string, string>),
    'content-type': 'text/event-stream; charset=utf-8',
    'cache-control': 'no-cache',
    connection: 'keep-alive',
  });
  const opening = options.format.openingChoices(options.choices);
  if (opening.length > 0) send(opening);
  try {
    await running.done;
    if (options.includeUsage) {
      reply.raw.write(`data: ${JSON.stringify({ ...envelope(options.format.chunkObject, []), usage: usage() })}\n\n`);
    }
  } catch (error) {
    // Headers are gone: the error travels as an event, as OpenAI's streams report one.
    const failure = error instanceof OpenAIError ? error : new OpenAIError(500, (error as Error).message, 'server_error');
    reply.raw.write(`data: ${JSON.stringify(failure.body)}\n\n`);
  }
  reply.raw.end('data: [DONE]\n\n');
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
