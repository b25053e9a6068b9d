/**
 * POST /v1/embeddings: OpenAI's embeddings API on the bare GPT-Neo graph (GPTNeoModel, what
 * pipeline('feature-extraction') runs), pooled over each input's tokens and scaled to unit length, as OpenAI's
 * vectors are. Inputs of one request and of requests that arrive together share forward passes.
 */
import type { FastifyInstance } from 'fastify';
import type { GPTNeoModel } from '../modeling/index.js';
import { MAX_SCORES_PER_HEAD, padRows, pooledVector } from '../pipeline/index.js';
import { checkTokenIds } from '../model/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import { invalidParameter, invalidRequest, OpenAIError } from './errors.js';
import { type EmbeddingBody, embeddingSchema, rowsOf } from './schemas.js';

/** How an input's token vectors become one: their mean, or the last token's (which has read the whole input). */
export type EmbeddingPooling = 'mean' | 'last';
export const EMBEDDING_POOLINGS: readonly EmbeddingPooling[] = ['mean', 'last'];

/** OpenAI's limit on inputs per request. */
export const MAX_EMBEDDING_INPUTS = 2048;

export interface EmbeddingBatcherOptions {
  pooling: EmbeddingPooling;
  /** Token id the shorter rows of a pass are padded with (never read: it is masked and lies after the real tokens). */
  padTokenId: number;
  /** Real tokens one batch takes from the queue (default 8192); a forward pass holds at most this or PASS_TOKENS padded tokens. */
  tokenBudget?: number;
}

/**
 * Padded tokens one forward pass holds at most. Larger passes were slower per token (1.3B q8, 2 threads: 257 tok/s
 * for 8 inputs of 128 tokens in one pass, 213 for 64), their activations no longer fitting the runtime's reused
 * buffers and caches.
 */
const PASS_TOKENS = 1024;

interface Pending {
  tokens: number[];
  resolve(vector: Float32Array): void;
  reject(error: unknown): void;
}

/**
 * Runs one batch at a time; inputs that arrive meanwhile queue. The next batch takes the queue's oldest inputs
 * up to the token budget (so none waits behind ever newer short ones), sorts them by length and cuts them into
 * passes of similar lengths, which keeps padding small. Rows are right-padded: each input's real tokens keep
 * positions 0..n-1 and, attention being causal, never see the padding, so a vector does not depend on its batch.
 */
export class EmbeddingBatcher {
  private readonly queue: Pending[] = [];
  private running: Promise<void> | null = null;
  private model: Promise<GPTNeoModel> | null = null;
  private closed = false;
  private readonly tokenBudget: number;

  constructor(
    private readonly load: () => Promise<GPTNeoModel>,
    private readonly options: EmbeddingBatcherOptions,
  ) {
    this.tokenBudget = options.tokenBudget ?? 8192;
  }

  /**
   * One unit-length vector per input, in order. When `signal` aborts (the client went away), its inputs still
   * waiting leave the queue, so no pass runs for them; a pass already running ends as it is.
   */
  embed(inputs: number[][], signal?: AbortSignal): Promise<Float32Array[]> {
    if (this.closed) return Promise.reject(new OpenAIError(503, 'The server is shutting down.', 'service_unavailable_error'));
    const pending: Pending[] = [];
    const vectors = inputs.map((tokens) => new Promise<Float32Array>((resolve, reject) => pending.push({ tokens, resolve, reject })));
    this.queue.push(...pending);
    signal?.addEventListener('abort', () => this.withdraw(pending, signal.reason), { once: true });
    this.running ??= this.drainQueue();
    return Promise.all(vectors);
  }

  /** Takes those of `pending` that still wait out of the queue, rejecting them with `reason`. */
  private withdraw(pending: readonly Pending[], reason: unknown): void {
    const withdrawn = new Set(pending);
    const waiting = this.queue.filter((entry) => withdrawn.has(entry));
    if (waiting.length === 0) return;
    this.queue.splice(0, this.queue.length, ...this.queue.filter((entry) => !withdrawn.has(entry)));
    waiting.forEach((entry) => entry.reject(reason));
  }

  /** Resolves once no batch runs and none waits. */
  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  /** Refuses what still waits, lets the running pass end, and frees the model if it was loaded. */
  async close(): Promise<void> {
    this.closed = true;
    for (const pending of this.queue.splice(0)) pending.reject(new OpenAIError(503, 'The server is shutting down.', 'service_unavailable_error'));
    await this.idle();
    const model = await this.model?.catch(() => null);
    await model?.dispose();
  }

  /** The model, loaded once: requests that arrive during the load wait for the same one. */
  private loaded(): Promise<GPTNeoModel> {
    this.model ??= this.load().catch((error: unknown) => {
      this.model = null; // a failed load is tried again by the next request
      throw error;
    });
    return this.model;
  }

  /**
   * Runs batches until the queue is empty. `running` is cleared in the same synchronous step that finds the queue
   * empty (no await between), so an input queued at any later moment starts a new run rather than waiting
   * behind one that has ended.
   */
  private async drainQueue(): Promise<void> {
    try {
      // Awaited before the first batch is taken, so requests that arrive during the load join it.
      const model = await this.loaded().catch((error: unknown) => {
        this.queue.splice(0).forEach((pending) => pending.reject(error));
        return null;
      });
      while (model && this.queue.length > 0) {
        const batch = this.takeBatch();
        try {
          for (const pass of passes(batch, Math.min(this.tokenBudget, PASS_TOKENS))) {
            const vectors = await this.run(model, pass.map((pending) => pending.tokens));
            pass.forEach((pending, i) => pending.resolve(vectors[i]!));
          }
        } catch (error) {
          batch.forEach((pending) => pending.reject(error));
        }
      }
    } finally {
      this.running = null;
    }
  }

  private takeBatch(): Pending[] {
    let tokens = 0;
    let count = 0;
    while (count < this.queue.length && (count === 0 || tokens + this.queue[count]!.tokens.length <= this.tokenBudget)) {
      tokens += this.queue[count]!.tokens.length;
      count++;
    }
    return this.queue.splice(0, count);
  }

  private async run(model: GPTNeoModel, rows: number[][]): Promise<Float32Array[]> {
    // Right padding, as pipeline('feature-extraction'): every input keeps positions 0..n-1 and never sees it.
    const { last_hidden_state } = await model.forward(padRows(rows, this.options.padTokenId, 'right'));
    const [, width, C] = last_hidden_state.dims as [number, number, number];
    const pooling = this.options.pooling === 'last' ? 'last_token' : 'mean';
    return rows.map((row, b) => {
      const tokens = row.map((_, t) => last_hidden_state.data.subarray((b * width + t) * C, (b * width + t + 1) * C));
      return Float32Array.from(pooledVector(tokens, pooling, true));
    });
  }
}

/** A batch sorted by length and cut into passes within the token budget and the attention-score limit. */
function passes(batch: Pending[], tokenBudget: number): Pending[][] {
  const sorted = [...batch].sort((a, b) => a.tokens.length - b.tokens.length);
  const result: Pending[][] = [];
  for (const pending of sorted) {
    const current = result.at(-1);
    const width = pending.tokens.length; // the longest so far: the batch is sorted
    const fits = current && (current.length + 1) * width <= tokenBudget && (current.length + 1) * width * width <= MAX_SCORES_PER_HEAD;
    if (fits) current.push(pending);
    else result.push([pending]);
  }
  return result;
}

/** The vector as OpenAI's base64: its float32 values, little-endian, whatever this machine's byte order. */
export function toBase64(vector: Float32Array): string {
  const bytes = Buffer.alloc(vector.length * 4);
  vector.forEach((value, i) => bytes.writeFloatLE(value, i * 4));
  return bytes.toString('base64');
}

export interface EmbeddingsContext {
  batcher: EmbeddingBatcher;
  tokenizer: GPT2Tokenizer;
  modelName: string;
  maxPositions: number;
  checkModel(requested: string): void;
  /** Counts the tokens of a request's inputs once they are embedded (the server's prompt-token metric). */
  countPromptTokens(tokens: number): void;
}

export function registerEmbeddings(app: FastifyInstance, context: EmbeddingsContext): void {
  app.post('/v1/embeddings', { schema: { body: embeddingSchema } }, async (request, reply) => {
    const body = request.body as EmbeddingBody;
    context.checkModel(body.model);
    if (body.dimensions !== undefined && body.dimensions !== null) {
      throw invalidRequest(
        `'dimensions' is not supported: this model's embeddings have its hidden size and cannot be shortened.`,
        'dimensions',
        'unsupported_parameter',
      );
    }
    const inputs = embeddingInputs(body.input, context);
    const disconnected = new AbortController();
    reply.raw.on('close', () => {
      if (!reply.raw.writableFinished) disconnected.abort(new OpenAIError(499, 'The client closed the request.', 'invalid_request_error'));
    });
    const vectors = await context.batcher.embed(inputs, disconnected.signal);
    const promptTokens = inputs.reduce((sum, tokens) => sum + tokens.length, 0);
    context.countPromptTokens(promptTokens);
    const base64 = body.encoding_format === 'base64';
    return {
      object: 'list',
      data: vectors.map((vector, index) => ({ object: 'embedding', index, embedding: base64 ? toBase64(vector) : Array.from(vector) })),
      model: context.modelName,
      usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
    };
  });
}

/** The inputs as token rows, each checked: not empty, within the vocabulary and within the context. */
function embeddingInputs(input: EmbeddingBody['input'], context: EmbeddingsContext): number[][] {
  const rows = rowsOf(input);
  if (rows.length > MAX_EMBEDDING_INPUTS) {
    throw invalidRequest(`'input' has ${rows.length} items; at most ${MAX_EMBEDDING_INPUTS} inputs are allowed per request.`, 'input');
  }
  const name = (i: number) => (rows.length > 1 ? `input[${i}]` : 'input');
  return rows.map((row, i) => {
    if (typeof row !== 'string') checkTokenIds(row, context.tokenizer.vocab_size, name(i), { error: invalidParameter('input') });
    const tokens = typeof row === 'string' ? context.tokenizer.encode(row) : row;
    if (tokens.length === 0) throw invalidRequest(`'${name(i)}' is empty: an embedding needs at least one token.`, 'input');
    if (tokens.length > context.maxPositions) {
      throw invalidRequest(
        `This model's maximum context length is ${context.maxPositions} tokens, however you requested ${tokens.length} tokens ` +
          `in ${name(i)}. Please reduce your input.`,
        'input',
        'context_length_exceeded',
      );
    }
    return tokens;
  });
}
