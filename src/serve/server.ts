/**
 * createServer(): a GPT-Neo model behind OpenAI's HTTP API (Fastify: routing, JSON-schema validation of every
 * body, body limits), with continuous batching underneath (the generation Engine over one KV cache).
 */
import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import cors from '@fastify/cors';
import Fastify, { type FastifyError, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import { type HubOptions, resolveModelFolder } from '../hub/index.js';
import type { WeightFormat } from '../convert/index.js';
import { PrefixCache } from '../kv/index.js';
import { checkTokenIds, type GPTNeoConfig } from '../model/index.js';
import { GPTNeoForCausalLM, GPTNeoModel } from '../modeling/index.js';
import { AutoTokenizer, type GPT2Tokenizer } from '../tokenizer/index.js';
import { tokenizerVocabulary } from '../constraints/index.js';
import { Engine, QueueFullError, type SequenceRequest, type SequenceStream } from '../generation/index.js';
import { ChatTemplate } from './chat-template.js';
import { type ChoiceLimits, choiceText, planChoices } from './choices.js';
import { EmbeddingBatcher, type EmbeddingPooling, registerEmbeddings } from './embeddings.js';
import { invalidParameter, invalidRequest, OpenAIError } from './errors.js';
import { createMetrics, type ServerMetrics } from './metrics.js';
import { chatFormat, completionFormat, emptyResult, EventStream, record, type ResponseFormat, usageOf } from './responses.js';
import { stopStrings } from './sampling.js';
import {
  type ChatCompletionBody,
  chatCompletionSchema,
  type CompletionBody,
  completionSchema,
  FIELD_EXPECTATIONS,
  rowsOf,
  type SamplingBody,
} from './schemas.js';
import { registerTokenize } from './tokenize.js';

export interface ServeOptions extends Omit<HubOptions, 'progress'> {
  /** Hugging Face model id or local folder. */
  model: string;
  /** The name clients put in `model` (default: `model`). */
  servedModelName?: string;
  dtype?: WeightFormat;
  threads?: number;
  /** Default 127.0.0.1: reachable from this machine only unless asked. */
  host?: string;
  /** Default 8000; 0 picks a free port. */
  port?: number;
  /** KV-cache slots: sequences decoded together (default 8). */
  maxBatch?: number;
  /** Sequences that may wait for a slot before requests get 429 (default 64). */
  maxQueue?: number;
  /** Largest request body in bytes (default 4 MB). */
  maxBody?: number;
  /** /v1/embeddings: the mean of an input's token vectors (default) or its last token's, scaled to unit length. */
  pooling?: EmbeddingPooling;
  /** Required as `Authorization: Bearer <key>` on /v1 routes, /tokenize and /detokenize when set. */
  apiKey?: string;
  /** Origins allowed by CORS; none (the default) turns CORS off. */
  corsOrigins?: string[];
  /** How long drain() lets running requests finish, in ms (default 30 000). */
  drainTimeoutMs?: number;
  /** Prompt tokens per chunk interleaved with decoding steps (default 128). */
  prefillChunk?: number;
  /**
   * Bytes of keys and values kept for reuse by prompts that start like recent ones (default: two full contexts
   * of the model; 0 turns prefix caching off).
   */
  prefixCacheSize?: number;
  /** Fastify's request log (pino) on stdout. */
  logger?: boolean;
}

export interface GPTNeoServer {
  readonly app: FastifyInstance;
  readonly modelName: string;
  /** Starts listening; returns the base URL (http://host:port). */
  listen(): Promise<string>;
  /** Stops accepting requests (503), lets running ones finish up to the drain timeout, then closes. */
  drain(): Promise<void>;
  /** Closes at once, cancelling running requests. */
  close(): Promise<void>;
}

const DEFAULTS = { host: '127.0.0.1', port: 8000, maxBatch: 8, maxQueue: 64, maxBody: 4 * 2 ** 20, drainTimeoutMs: 30_000, prefillChunk: 128 };

export async function createServer(options: ServeOptions): Promise<GPTNeoServer> {
  const settings = { ...DEFAULTS, ...definedOnly(options) };
  for (const key of ['maxBatch', 'maxQueue', 'maxBody', 'prefillChunk'] as const) {
    if (!Number.isInteger(settings[key]) || settings[key] < 1) throw new Error(`${key} must be an integer >= 1, got ${settings[key]}`);
  }
  if (settings.prefixCacheSize !== undefined && !(Number.isInteger(settings.prefixCacheSize) && settings.prefixCacheSize >= 0)) {
    throw new Error(`prefixCacheSize must be a whole number of bytes >= 0, got ${settings.prefixCacheSize}`);
  }
  const folder = await resolveModelFolder(options.model, { revision: options.revision, offline: options.offline });
  const tokenizer = await AutoTokenizer.from_pretrained(folder);
  const model = await GPTNeoForCausalLM.from_pretrained(folder, { dtype: options.dtype, threads: options.threads });
  const cache = model.createKVCache(settings.maxBatch);
  const prefixCacheSize = settings.prefixCacheSize ?? 2 * model.maxPositions * kvBytesPerToken(model.config);
  const prefixCache = prefixCacheSize > 0 ? new PrefixCache(cache, prefixCacheSize) : undefined;
  const engine = new Engine(cache, {
    maxQueue: settings.maxQueue,
    prefillChunk: settings.prefillChunk,
    decode: (ids) => tokenizer.decode(ids),
    prefixCache,
  });
  // The bare graph is a second model in memory, so it is loaded by the first embeddings request, not at startup.
  const embeddings = new EmbeddingBatcher(() => GPTNeoModel.from_pretrained(folder, { dtype: options.dtype, threads: options.threads }), {
    pooling: settings.pooling ?? 'mean',
    padTokenId: tokenizer.pad_token_id ?? tokenizer.eos_token_id ?? 0,
  });
  const modelName = options.servedModelName ?? options.model;
  const chatTemplate = ChatTemplate.forModel(folder, {
    bos_token: tokenizer.bos_token,
    eos_token: tokenizer.eos_token,
    pad_token: tokenizer.pad_token,
    unk_token: tokenizer.unk_token,
  });
  const metrics = createMetrics({
    queueLength: () => engine.queueLength,
    runningBatch: () => engine.runningCount,
    prefixCache: () => prefixCache?.stats ?? { lookups: 0, hitTokens: 0, bytes: 0 },
  });
  let draining = false;

  const app = Fastify({
    logger: settings.logger ?? false,
    bodyLimit: settings.maxBody,
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  });
  if (settings.corsOrigins && settings.corsOrigins.length > 0) await app.register(cors, { origin: settings.corsOrigins });

  app.addHook('onRequest', async (request, reply) => {
    reply.raw.on('finish', () =>
      metrics.requests.inc({ endpoint: request.routeOptions.url ?? 'unknown', status: String(reply.raw.statusCode) }),
    );
    if (draining && request.url !== '/metrics') {
      if (request.url === '/health') return reply.code(503).send({ status: 'draining' });
      throw new OpenAIError(503, 'The server is shutting down and accepts no new requests.', 'service_unavailable_error');
    }
    if (settings.apiKey !== undefined && isProtected(request.url)) checkApiKey(request, settings.apiKey);
  });
  app.setErrorHandler((error: FastifyError, request, reply) => {
    const failure = toOpenAIError(error, settings.maxBody);
    if (failure.status >= 500) request.log.error(error);
    return reply.code(failure.status).headers(failure.headers).send(failure.body);
  });
  app.setNotFoundHandler((request, reply) => {
    const failure = new OpenAIError(404, `Invalid URL (${request.method} ${request.url})`, 'invalid_request_error', null, 'unknown_url');
    return reply.code(404).send(failure.body);
  });

  app.get('/health', async () => ({ status: 'ok' }));
  app.get('/metrics', async (_, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()));
  app.get('/v1/models', async () => ({
    object: 'list',
    data: [{ id: modelName, object: 'model', created: Math.floor(Date.now() / 1000), owned_by: 'gpt-neo', max_model_len: model.maxPositions }],
  }));

  const context = { engine, tokenizer, metrics, modelName, maxQueue: settings.maxQueue, maxPositions: model.maxPositions, eos: model.config.eos_token_id };
  registerCompletions(app, context, chatTemplate);
  const checkServed = (requested: string) => checkModel(requested, modelName);
  registerEmbeddings(app, {
    batcher: embeddings,
    tokenizer,
    modelName,
    maxPositions: model.maxPositions,
    checkModel: checkServed,
    countPromptTokens: (tokens) => metrics.promptTokens.inc(tokens),
  });
  registerTokenize(app, { tokenizer, maxPositions: model.maxPositions, checkModel: checkServed });

  let closed: Promise<void> | null = null;
  /** Graceful: idle connections close at once, running responses are written out first. Otherwise all are cut. */
  const close = (graceful: boolean) =>
    (closed ??= (async () => {
      const closing = app.close();
      if (!graceful) app.server.closeAllConnections();
      await closing;
      await Promise.all([engine.idle(), embeddings.close()]);
      await model.dispose();
    })());

  return {
    app,
    modelName,
    async listen() {
      return app.listen({ host: settings.host, port: settings.port });
    },
    async drain() {
      draining = true;
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([
        Promise.all([engine.idle(), embeddings.idle()]).then(() => true),
        new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), settings.drainTimeoutMs))),
      ]);
      clearTimeout(timer);
      await close(finished);
    },
    close: () => close(false),
  };
}

/** POST /v1/completions and /v1/chat/completions: their prompts and formats, then the one shared flow. */
function registerCompletions(app: FastifyInstance, context: Context, chatTemplate: ChatTemplate): void {
  const { tokenizer, modelName } = context;
  app.post('/v1/completions', { schema: { body: completionSchema } }, async (request, reply) => {
    const body = request.body as CompletionBody;
    checkModel(body.model, modelName);
    const prompts = completionPrompts(body.prompt, tokenizer, context.eos);
    const logprobs = body.logprobs ?? null;
    const echo = body.echo ?? false;
    const format = completionFormat(tokenizer, prompts, body.n ?? 1, { echo, logprobs: logprobs !== null });
    await respond(context, request, reply, body, prompts, format, {
      defaultMaxTokens: 16,
      maxTokens: body.max_tokens,
      maxTokensField: 'max_tokens',
      logprobs,
      promptScores: echo && logprobs !== null,
    });
  });

  app.post('/v1/chat/completions', { schema: { body: chatCompletionSchema } }, async (request, reply) => {
    const body = request.body as ChatCompletionBody;
    checkModel(body.model, modelName);
    const text = chatTemplate.render(body.messages);
    const prompts = [{ text, tokens: tokenizer.encode(text) }];
    const logprobs = body.logprobs ? (body.top_logprobs ?? 0) : null;
    await respond(context, request, reply, body, prompts, chatFormat(tokenizer, { logprobs: logprobs !== null }), {
      defaultMaxTokens: null,
      maxTokens: body.max_completion_tokens ?? body.max_tokens,
      maxTokensField: body.max_completion_tokens ? 'max_completion_tokens' : 'max_tokens',
      logprobs,
      promptScores: false,
    });
  });
}

interface Context {
  engine: Engine;
  tokenizer: GPT2Tokenizer;
  metrics: ServerMetrics;
  modelName: string;
  maxQueue: number;
  maxPositions: number;
  eos: number | null;
}

/**
 * What both endpoints share, top to bottom: plan the choices (400 on what cannot run), queue them (429 when
 * full), then pull their outputs as they come, answering whole or as a stream. A client that hangs up cancels
 * its choices.
 */
async function respond(
  context: Context,
  request: FastifyRequest,
  reply: FastifyReply,
  body: SamplingBody,
  prompts: { text: string; tokens: number[] }[],
  format: ResponseFormat,
  limits: Pick<ChoiceLimits, 'defaultMaxTokens' | 'maxTokens' | 'maxTokensField' | 'logprobs' | 'promptScores'>,
): Promise<void> {
  const { engine, tokenizer, metrics } = context;
  const choices = prompts.length * (body.n ?? 1);
  if (choices > context.maxQueue) {
    throw invalidRequest(`prompts × n is ${choices}, more sequences than the server queues (${context.maxQueue}, --max-queue)`, 'n');
  }
  const sequences = planChoices(
    body,
    prompts.map((prompt) => prompt.tokens),
    {
      maxPositions: context.maxPositions,
      eosTokenId: context.eos,
      vocabSize: tokenizer.vocab_size,
      vocabulary: () => tokenizerVocabulary(tokenizer, tokenizer.vocab_size),
      ...limits,
    },
  );
  const streams = submit(engine, sequences);
  const promptTokens = prompts.reduce((sum, prompt) => sum + prompt.tokens.length, 0);
  metrics.promptTokens.inc(promptTokens);
  request.log.debug({ choices }, 'generation started');
  reply.raw.on('close', () => {
    if (!reply.raw.writableFinished) streams.forEach((stream) => stream.cancel());
  });

  const id = `${format.object === 'chat.completion' ? 'chatcmpl' : 'cmpl'}-${randomUUID()}`;
  const created = Math.floor(Date.now() / 1000);
  const envelope = (object: string, choiceObjects: object[]) => ({ id, object, created, model: context.modelName, choices: choiceObjects });
  const includeUsage = body.stream_options?.include_usage ?? false;
  const events = body.stream ? new EventStream(reply) : null;
  const sendChunk = (choiceObjects: object[]) =>
    events!.send({ ...envelope(format.chunkObject, choiceObjects), ...(includeUsage ? { usage: null } : {}) });
  const opening = format.openingChoices(choices);
  if (events && opening.length > 0) sendChunk(opening);

  const results = Array.from({ length: choices }, emptyResult);
  const timing = tokenTiming(metrics);
  try {
    const stops = stopStrings(body.stop);
    for await (const piece of merged(streams.map((stream, choice) => choiceText(stream, tokenizer, choice, stops)))) {
      record(results[piece.choice]!, piece);
      timing.observe(piece.choice, piece.tokens.length + piece.hiddenTokens);
      if (!events) continue;
      const pieceChoice = format.pieceChoice(piece);
      if (pieceChoice) sendChunk([pieceChoice]);
      if (piece.finishReason) sendChunk([format.finishChoice(piece.choice, piece.finishReason)]);
    }
  } catch (error) {
    // One failed choice fails the request: its other choices stop too.
    streams.forEach((stream) => stream.cancel());
    if (!events) throw error;
    events.fail(error);
    return events.end();
  }
  const usage = usageOf(promptTokens, results);
  if (!events) {
    await reply.send({ ...envelope(format.object, results.map((result, choice) => format.wholeChoice(choice, result))), usage });
    return;
  }
  if (includeUsage) events.send({ ...envelope(format.chunkObject, []), usage });
  events.end();
}

/** Queues a request's sequences; a full queue is OpenAI's 429 with a retry hint. */
function submit(engine: Engine, sequences: SequenceRequest[]): SequenceStream[] {
  try {
    return engine.submit(sequences);
  } catch (error) {
    if (error instanceof QueueFullError) {
      throw new OpenAIError(429, `The server is busy: ${error.message}. Retry shortly.`, 'rate_limit_error', null, 'queue_full', {
        'retry-after': '1',
      });
    }
    throw error;
  }
}

/** Time to first token and between tokens, per choice, and the generated-token count. */
function tokenTiming(metrics: ServerMetrics) {
  const started = performance.now();
  const lastTokenAt: (number | undefined)[] = [];
  return {
    observe(choice: number, count: number) {
      if (count === 0) return;
      const now = performance.now();
      const last = lastTokenAt[choice];
      if (last === undefined) metrics.timeToFirstToken.observe((now - started) / 1000);
      else for (let i = 0; i < count; i++) metrics.timePerOutputToken.observe((now - last) / 1000 / count);
      lastTokenAt[choice] = now;
      metrics.generatedTokens.inc(count);
    },
  };
}

/** The items of several async iterables in the order they arrive. */
async function* merged<T>(sources: AsyncIterable<T>[]): AsyncGenerator<T> {
  const iterators = sources.map((source) => source[Symbol.asyncIterator]());
  const pending = new Map(iterators.map((iterator, i) => [i, iterator.next().then((result) => ({ i, result }))]));
  while (pending.size > 0) {
    const { i, result } = await Promise.race(pending.values());
    if (result.done) {
      pending.delete(i);
      continue;
    }
    pending.set(i, iterators[i]!.next().then((next) => ({ i, result: next })));
    yield result.value;
  }
}

/** The prompts of a completion request as text and tokens; an empty prompt starts a new document (<|endoftext|>). */
function completionPrompts(prompt: CompletionBody['prompt'], tokenizer: GPT2Tokenizer, eos: number | null): { text: string; tokens: number[] }[] {
  return rowsOf(prompt).map((row) => {
    if (typeof row === 'string') {
      const tokens = tokenizer.encode(row);
      return { text: row, tokens: tokens.length === 0 && eos !== null ? [eos] : tokens };
    }
    checkTokenIds(row, tokenizer.vocab_size, 'prompt', { error: invalidParameter('prompt') });
    return { text: tokenizer.decode(row), tokens: row };
  });
}

function checkModel(requested: string, served: string): void {
  if (requested !== served) {
    throw new OpenAIError(404, `The model \`${requested}\` does not exist or you do not have access to it.`, 'invalid_request_error', 'model', 'model_not_found');
  }
}

/** The API key guards the API: everything but the probes (/health, /metrics), which must answer without it. */
function isProtected(url: string): boolean {
  const path = url.split('?')[0]!;
  return path.startsWith('/v1/') || path === '/tokenize' || path === '/detokenize';
}

/** Bearer key check in constant time: both sides are hashed first, so neither length nor content leaks through timing. */
function checkApiKey(request: FastifyRequest, apiKey: string): void {
  const header = request.headers.authorization ?? '';
  const given = header.startsWith('Bearer ') ? header.slice(7) : '';
  const digest = (value: string) => createHash('sha256').update(value).digest();
  if (!timingSafeEqual(digest(given), digest(apiKey))) {
    const message = header ? 'Incorrect API key provided.' : "You didn't provide an API key. Send it as 'Authorization: Bearer <key>'.";
    throw new OpenAIError(401, message, 'authentication_error', null, 'invalid_api_key');
  }
}

function toOpenAIError(error: FastifyError, maxBody: number): OpenAIError {
  if (error instanceof OpenAIError) return error;
  if (error.validation && error.validation.length > 0) {
    const issue = error.validation.find((v) => v.keyword === 'anyOf') ?? error.validation[0]!;
    const missing = (issue.params as { missingProperty?: string }).missingProperty;
    const param = missing ?? issue.instancePath.replace(/^\//, '').replace(/\//g, '.');
    const field = param.split('.').at(-1)!.replace(/^\d+$/, '') || param.split('.')[0]!;
    const rule = missing ? 'is required' : issue.keyword === 'anyOf' && FIELD_EXPECTATIONS[field] ? `must be ${FIELD_EXPECTATIONS[field]}` : issue.message;
    return invalidRequest(`'${param}' ${rule}.`, param);
  }
  if (error.statusCode === 413) {
    return new OpenAIError(413, `The request body is larger than the server's limit of ${maxBody} bytes (--max-body).`, 'invalid_request_error', null, 'request_too_large');
  }
  if (error.statusCode !== undefined && error.statusCode >= 400 && error.statusCode < 500) {
    const message = error.code === 'FST_ERR_CTP_INVALID_JSON_BODY' || error instanceof SyntaxError
      ? `We could not parse the JSON body of your request: ${error.message}`
      : error.message;
    return new OpenAIError(error.statusCode, message, 'invalid_request_error');
  }
  return new OpenAIError(500, `The server had an error while processing your request: ${error.message}`, 'server_error');
}

function definedOnly<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Bytes of float32 keys and values one token takes in every layer. */
function kvBytesPerToken(config: GPTNeoConfig): number {
  return config.num_layers * 2 * config.hidden_size * 4;
}
