/**
 * Continuous batching (Orca's iteration-level scheduling, vLLM's engine): between two decoding steps, waiting
 * sequences take free KV-cache rows and finished or cancelled ones leave at once. Each iteration runs at most one
 * prompt chunk (of the oldest sequence still reading its prompt) and then one batched decoding step for every
 * sequence that is writing, so a long prompt delays the running streams by one chunk per step, not by its whole
 * length. Each sequence's output is an async stream its caller pulls from (as vLLM's AsyncLLM.generate).
 *
 * Every sequence chooses its tokens with its own chooser and random source, from logits that do not depend on its
 * neighbours, so its tokens are the same alone or in a full batch.
 */
import type { ConstraintState } from '../constraints/index.js';
import type { KVCache, KVRow, PrefixCache } from '../kv/index.js';
import type { LogitsOutput } from '../model/index.js';
import { TokenChooser, tokenScores, type TokenScores } from './choose.js';
import type { ResolvedGenerationConfig } from './config.js';
import type { LogitsProcessor } from './logits-process.js';
import { createRandom } from './sampling.js';
import { DecodingSequence, FinishRule, type FinishReason } from './sequence.js';
import { type Decode, StopStringMatcher } from './stopping.js';

export interface SequenceRequest {
  prompt: number[];
  config: ResolvedGenerationConfig;
  /** Run before transformers' processors (the server's logit_bias and OpenAI penalties). */
  extraProcessors?: LogitsProcessor[];
  /** This sequence's own state in its output constraint (structured outputs); masks before every processor. */
  constraint?: ConstraintState;
  /** Log-probabilities with this many alternatives per token (null: none). */
  logprobs: number | null;
  /** Also score the prompt tokens (OpenAI's echo with logprobs). */
  promptScores?: boolean;
}

/** What a sequence added since its last output (vLLM's RequestOutput in delta mode). */
export interface SequenceOutput {
  /** Tokens that became final: a stop string can no longer cut them. */
  tokens: number[];
  /** Their log-probabilities, when asked for. */
  scores: TokenScores[];
  /** The prompt's scores (the first null), once, with the first output, when asked for. */
  promptScores?: (TokenScores | null)[];
  /** Set on the last output. */
  finishReason: FinishReason | null;
}

/** A submitted sequence's outputs; breaking out of the loop or cancel() stops it and frees its row. */
export interface SequenceStream extends AsyncIterable<SequenceOutput> {
  cancel(): void;
}

export class QueueFullError extends Error {}

export interface EngineOptions {
  /** Sequences waiting for a row beyond which submit() refuses. */
  maxQueue: number;
  /** Prompt tokens per chunk interleaved with decoding steps. */
  prefillChunk: number;
  /** Token decoder, for stop strings. */
  decode: Decode;
  /** Keys and values of recent prompts' prefixes, reused by prompts that start the same way (none: off). */
  prefixCache?: PrefixCache;
}

interface Sequence {
  request: SequenceRequest;
  decoding: DecodingSequence;
  output: OutputQueue<SequenceOutput>;
  row: KVRow | null;
  /** Prompt tokens already in the cache. */
  fed: number;
  promptTokenScores: (TokenScores | null)[];
  cancelled: boolean;
}

export class Engine {
  private readonly waiting: Sequence[] = [];
  private readonly active: Sequence[] = [];
  private loop: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly cache: KVCache,
    private readonly options: EngineOptions,
  ) {}

  get queueLength(): number {
    return this.waiting.length;
  }

  get runningCount(): number {
    return this.active.length;
  }

  /** Queues sequences together (all or none: a request's choices are refused as one). */
  submit(requests: SequenceRequest[]): SequenceStream[] {
    if (this.waiting.length + requests.length > this.options.maxQueue) {
      throw new QueueFullError(`${this.waiting.length} sequences are already waiting (limit ${this.options.maxQueue})`);
    }
    const sequences = requests.map((request): Sequence => {
      const { config } = request;
      const chooser = new TokenChooser(config, config.doSample ? createRandom(config.seed) : null, request.extraProcessors);
      // Its consumers return text: a stopped sequence's last output holds every token through the stop string.
      const finish = new FinishRule(config, new StopStringMatcher(config.stop, this.options.decode), 'text');
      return {
        request,
        decoding: new DecodingSequence({ prompt: request.prompt, config, chooser, finish, topLogprobs: request.logprobs, constraint: request.constraint }),
        output: new OutputQueue(),
        row: null,
        fed: 0,
        promptTokenScores: request.promptScores ? [null] : [],
        cancelled: false,
      };
    });
    this.waiting.push(...sequences);
    this.loop ??= this.run().finally(() => {
      this.loop = null;
      for (const wake of this.idleWaiters.splice(0)) wake();
    });
    return sequences.map((sequence) => sequence.output.stream(() => (sequence.cancelled = true)));
  }

  /** Resolves once no sequence is waiting or running. */
  async idle(): Promise<void> {
    if (!this.loop) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    while (this.waiting.length > 0 || this.active.length > 0) {
      this.admit();
      const reading = this.active.find((s) => s.fed < s.request.prompt.length);
      if (reading) await this.guarded([reading], () => this.readPrompt(reading));
      const writing = this.active.filter((s) => s.fed === s.request.prompt.length && !s.decoding.finished);
      if (writing.length > 0) await this.guarded(writing, () => this.decodeStep(writing));
      this.retire();
      // Let the caller run (new requests, disconnects) between steps even when ONNX Runtime answers at once.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private admit(): void {
    this.retire();
    while (this.waiting.length > 0 && this.cache.freeRows > 0) {
      const sequence = this.waiting.shift()!;
      if (sequence.cancelled) continue;
      sequence.row = this.cache.acquire(sequence.request.config.maxLength);
      this.active.push(sequence);
    }
  }

  /** Frees the rows of finished and cancelled sequences, and forgets cancelled ones still waiting. */
  private retire(): void {
    for (const sequence of [...this.active]) {
      if (!sequence.decoding.finished && !sequence.cancelled) continue;
      this.cache.release(sequence.row!);
      this.active.splice(this.active.indexOf(sequence), 1);
    }
    for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i]!.cancelled) this.waiting.splice(i, 1);
  }

  /** One failed pass ends the sequences in it with the error; the others and the engine go on. */
  private async guarded(sequences: Sequence[], step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (error) {
      for (const sequence of sequences) {
        sequence.cancelled = true;
        sequence.output.fail(error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  private async readPrompt(sequence: Sequence): Promise<void> {
    const { prompt, promptScores, logprobs } = sequence.request;
    const { prefixCache } = this.options;
    // Scoring the prompt needs every position's logits, so such a prompt is run whole.
    if (sequence.fed === 0 && prefixCache && !promptScores) sequence.fed = prefixCache.restore(sequence.row!, prompt);
    const tokens = prompt.slice(sequence.fed, sequence.fed + this.options.prefillChunk);
    const logits = await this.cache.forward([{ row: sequence.row!, tokens }], { allPositions: promptScores });
    const start = sequence.fed;
    sequence.fed += tokens.length;
    prefixCache?.store(sequence.row!, prompt, sequence.fed);
    if (promptScores) {
      // Position t predicts prompt token start + t + 1 (the last one predicts the first new token).
      for (let t = 0; t < tokens.length && start + t + 1 < prompt.length; t++) {
        sequence.promptTokenScores.push(tokenScores(rowOf(logits, t), logits.logsumexp[t]!, prompt[start + t + 1]!, logprobs ?? 0));
      }
    }
    if (sequence.fed < prompt.length) return;
    const last = logits.dims[1]! - 1;
    this.step(sequence, rowOf(logits, last), logits.logsumexp[last]!);
  }

  private async decodeStep(sequences: Sequence[]): Promise<void> {
    const logits = await this.cache.forward(sequences.map((s) => ({ row: s.row!, tokens: [s.decoding.history.at(-1)!] })));
    sequences.forEach((sequence, i) => this.step(sequence, rowOf(logits, i), logits.logsumexp[i]!));
  }

  /** Chooses the sequence's next token and hands over what became final. */
  private step(sequence: Sequence, logits: Float32Array, logsumexp: number): void {
    if (sequence.cancelled) return;
    const { tokens, scores, finishReason } = sequence.decoding.step(logits, logsumexp);
    const withPromptScores = sequence.request.promptScores === true && sequence.decoding.history.length === sequence.request.prompt.length + 1;
    const promptScores = withPromptScores ? { promptScores: sequence.promptTokenScores } : {};
    if (tokens.length > 0 || finishReason !== null || withPromptScores) sequence.output.push({ tokens, scores, ...promptScores, finishReason });
    if (finishReason !== null) sequence.output.end();
  }
}

function rowOf(logits: LogitsOutput, row: number): Float32Array {
  const V = logits.dims[2]!;
  return logits.data.subarray(row * V, (row + 1) * V);
}

/** A queue one producer pushes into and one consumer pulls from as an async iterator. */
class OutputQueue<T> {
  private readonly items: T[] = [];
  private waiter: (() => void) | null = null;
  private ended = false;
  private error: Error | null = null;
  /** The consumer stopped (cancelled or left its loop). */
  private closed = false;

  push(item: T): void {
    this.items.push(item);
    this.wake();
  }

  end(): void {
    this.ended = true;
    this.wake();
  }

  fail(error: Error): void {
    this.error ??= error;
    this.ended = true;
    this.wake();
  }

  stream(onCancel: () => void): AsyncIterable<T> & { cancel(): void } {
    const cancel = () => {
      this.closed = true;
      onCancel();
      this.wake();
    };
    return {
      cancel,
      [Symbol.asyncIterator]: () => ({
        next: async (): Promise<IteratorResult<T>> => {
          for (;;) {
            if (this.items.length > 0) return { value: this.items.shift()!, done: false };
            if (this.error) throw this.error;
            if (this.ended || this.closed) return { value: undefined, done: true };
            await new Promise<void>((resolve) => (this.waiter = resolve));
          }
        },
        return: async (): Promise<IteratorResult<T>> => {
          cancel();
          return { value: undefined, done: true };
        },
      }),
    };
  }

  private wake(): void {
    const waiter = this.waiter;
    this.waiter = null;
    waiter?.();
  }
}
