/**
 * Iteration-level scheduling (Orca, vLLM): between two decoding steps, waiting sequences take free KV slots
 * and finished or cancelled ones leave at once. Each iteration runs at most one prompt chunk (of the oldest
 * sequence still reading its prompt) and then one batched decoding step for every sequence that is writing,
 * so a long prompt delays the running streams by one chunk per token, not by its whole length.
 *
 * Every sequence chooses its tokens with its own TokenChooser and random source, from logits that do not
 * depend on its neighbours, so its text is the same alone or in a full batch.
 */
import {
  createRandom,
  type LogitsProcessor,
  type ResolvedGenerationConfig,
  StopStringMatcher,
  TokenChooser,
  tokenScores,
  type TokenScores,
} from '../generation/index.js';
import type { KVSlot, KVSlotPool, LogitsOutput } from '../model/index.js';

export type FinishReason = 'stop' | 'length';

/** What a caller hears about one sequence; every callback runs between steps, never during one. */
export interface SequenceListener {
  /** Tokens that are final (a stop string can no longer cut them), with their scores when asked for. */
  onTokens(tokens: number[], scores: TokenScores[]): void;
  /** Scores of the prompt tokens (first one null), when `promptScores` was asked for; called once. */
  onPromptScores?(scores: (TokenScores | null)[]): void;
  onFinish(reason: FinishReason): void;
  onError(error: Error): void;
}

export interface SequenceSpec {
  prompt: number[];
  config: ResolvedGenerationConfig;
  /** Run before transformers' processors (logit_bias, presence and frequency penalties). */
  extraProcessors?: LogitsProcessor[];
  /** Report log-probabilities with this many alternatives per token (null: none). */
  logprobs: number | null;
  /** Also score the prompt tokens (OpenAI's echo with logprobs). */
  promptScores?: boolean;
  listener: SequenceListener;
}

export class QueueFullError extends Error {}

interface Sequence extends SequenceSpec {
  slot: KVSlot | null;
  /** Prompt tokens already in the cache. */
  fed: number;
  /** Prompt then generated tokens. */
  history: number[];
  chooser: TokenChooser;
  stops: StopStringMatcher;
  scores: TokenScores[];
  promptTokenScores: (TokenScores | null)[];
  /** Generated tokens already handed to the listener. */
  sent: number;
  cancelled: boolean;
  done: boolean;
}

/** A handle on a submitted sequence. */
export interface SequenceHandle {
  /** Stops the sequence before the next step and frees its slot; no further callbacks. */
  cancel(): void;
}

export interface EngineOptions {
  /** Sequences waiting for a slot beyond which submit() refuses. */
  maxQueue: number;
  /** Prompt tokens per chunk interleaved with decoding steps. */
  prefillChunk: number;
  /** Token decoder, for stop strings. */
  decode: (ids: number[]) => string;
}

export class Engine {
  private readonly waiting: Sequence[] = [];
  private readonly active: Sequence[] = [];
  private loop: Promise<void> | null = null;
  private idleWaiters: (() => void)[] = [];

  constructor(
    private readonly pool: KVSlotPool,
    private readonly options: EngineOptions,
  ) {}

  get queueLength(): number {
    return this.waiting.length;
  }

  get runningCount(): number {
    return this.active.length;
  }

  /** Queues sequences together (all or none: a request's choices are refused as one). */
  submit(specs: SequenceSpec[]): SequenceHandle[] {
    if (this.waiting.length + specs.length > this.options.maxQueue) {
      throw new QueueFullError(`${this.waiting.length} sequences are already waiting (limit ${this.options.maxQueue})`);
    }
    const sequences = specs.map((spec): Sequence => ({
      ...spec,
      slot: null,
      fed: 0,
      history: [...spec.prompt],
      chooser: new TokenChooser(spec.config, spec.config.doSample ? createRandom(spec.config.seed) : null, spec.extraProcessors),
      stops: new StopStringMatcher(spec.config.stop, this.options.decode),
      scores: [],
      promptTokenScores: spec.promptScores ? [null] : [],
      sent: 0,
      cancelled: false,
      done: false,
    }));
    this.waiting.push(...sequences);
    this.loop ??= this.run().finally(() => {
      this.loop = null;
      for (const wake of this.idleWaiters.splice(0)) wake();
    });
    return sequences.map((sequence) => ({
      cancel: () => {
        sequence.cancelled = true;
      },
    }));
  }

  /** Resolves once no sequence is waiting or running. */
  async idle(): Promise<void> {
    if (!this.loop) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private async run(): Promise<void> {
    while (this.waiting.length > 0 || this.active.length > 0) {
      this.admit();
      const reading = this.active.find((s) => s.fed < s.prompt.length);
      if (reading) await this.guarded([reading], () => this.readPrompt(reading));
      const writing = this.active.filter((s) => s.fed === s.prompt.length && !s.done);
      if (writing.length > 0) await this.guarded(writing, () => this.decodeStep(writing));
      this.retire();
      // Let the HTTP side run (new requests, disconnects) between steps even when ONNX Runtime answers at once.
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private admit(): void {
    this.retire();
    while (this.waiting.length > 0 && this.pool.freeSlots > 0) {
      const sequence = this.waiting.shift()!;
      if (sequence.cancelled) continue;
      sequence.slot = this.pool.acquire(sequence.config.maxLength);
      this.active.push(sequence);
    }
  }

  /** Frees the slots of finished and cancelled sequences, and forgets cancelled ones still waiting. */
  private retire(): void {
    for (const sequence of [...this.active]) {
      if (!sequence.done && !sequence.cancelled) continue;
      this.pool.release(sequence.slot!);
      this.active.splice(this.active.indexOf(sequence), 1);
    }
    for (let i = this.waiting.length - 1; i >= 0; i--) if (this.waiting[i]!.cancelled) this.waiting.splice(i, 1);
  }

  /** One failed pass ends the sequences in it with the error; the others and the server go on. */
  private async guarded(sequences: Sequence[], step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (error) {
      for (const sequence of sequences) {
        sequence.done = true;
        if (!sequence.cancelled) sequence.listener.onError(error instanceof Error ? error : new Error(String(error)));
      }
    }
  }

  private async readPrompt(sequence: Sequence): Promise<void> {
    const tokens = sequence.prompt.slice(sequence.fed, sequence.fed + this.options.prefillChunk);
    const logits = await this.pool.forward([{ slot: sequence.slot!, tokens }], sequence.promptScores);
    const start = sequence.fed;
    sequence.fed += tokens.length;
    const V = logits.dims[2]!;
    if (sequence.promptScores) {
      // Position t predicts prompt token start + t + 1 (the last one predicts the first new token).
      for (let t = 0; t < tokens.length && start + t + 1 < sequence.prompt.length; t++) {
        const next = sequence.prompt[start + t + 1]!;
        sequence.promptTokenScores.push(tokenScores(rowOf(logits, t, V), logits.logsumexp[t]!, next, sequence.logprobs ?? 0));
      }
    }
    if (sequence.fed < sequence.prompt.length || sequence.cancelled) return;
    if (sequence.promptScores) sequence.listener.onPromptScores?.(sequence.promptTokenScores);
    const last = logits.dims[1]! - 1;
    this.choose(sequence, rowOf(logits, last, V), logits.logsumexp[last]!);
  }

  private async decodeStep(sequences: Sequence[]): Promise<void> {
    const logits = await this.pool.forward(sequences.map((s) => ({ slot: s.slot!, tokens: [s.history.at(-1)!] })));
    const V = logits.dims[2]!;
    sequences.forEach((sequence, i) => this.choose(sequence, rowOf(logits, i, V), logits.logsumexp[i]!));
  }

  /** Picks the next token, then hands over what became final, or finishes the sequence. */
  private choose(sequence: Sequence, logits: Float32Array, logsumexp: number): void {
    if (sequence.cancelled) return;
    const { config } = sequence;
    const token = sequence.chooser.choose(logits, { tokens: sequence.history, currentLength: sequence.history.length });
    sequence.history.push(token);
    if (sequence.logprobs !== null) sequence.scores.push(tokenScores(logits, logsumexp, token, sequence.logprobs));
    const generated = sequence.history.slice(sequence.prompt.length);
    let finish: FinishReason | null = null;
    let kept = generated.length;
    if (config.eosTokenIds.includes(token)) finish = 'stop';
    else {
      const stopAt = sequence.stops.findStop(generated);
      if (stopAt !== null) [finish, kept] = ['stop', stopAt];
      else if (sequence.history.length >= config.maxLength) finish = 'length';
    }
    const ready = finish ? kept : sequence.stops.settledCount(generated);
    if (ready > sequence.sent) {
      sequence.listener.onTokens(generated.slice(sequence.sent, ready), sequence.scores.slice(sequence.sent, ready));
      sequence.sent = ready;
    }
    if (finish) {
      sequence.done = true;
      sequence.listener.onFinish(finish);
    }
  }
}

function rowOf(logits: LogitsOutput, row: number, V: number): Float32Array {
  return logits.data.subarray(row * V, (row + 1) * V);
}
