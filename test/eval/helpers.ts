import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { DecoderSession, ForwardInput, LogitsOutput } from '../../src/model/types.js';
import type { TokenRequest } from '../../src/eval/requests.js';

export const EVAL_FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'eval');

export const evalFixture = (...parts: string[]) => path.join(EVAL_FIXTURES, ...parts);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const readEvalJson = (...parts: string[]): any => JSON.parse(readFileSync(evalFixture(...parts), 'utf8'));

interface ForwardModel {
  readonly config: { max_position_embeddings: number; vocab_size: number };
  forward(input: ForwardInput): Promise<{ logits: LogitsOutput }>;
}

/**
 * The plain computation the scorer must reproduce: one unpadded, unbatched forward pass over
 * context ++ continuation[:-1], each continuation token scored from the output before it.
 */
export async function referenceScore(
  model: ForwardModel,
  request: TokenRequest,
): Promise<{ logLikelihood: number; isGreedy: boolean }> {
  const { contextIds, continuationIds } = request;
  const input = [...contextIds, ...continuationIds.slice(0, -1)];
  const { logits } = await model.forward({ input_ids: [input] });
  const V = model.config.vocab_size;
  let logLikelihood = 0;
  let isGreedy = true;
  continuationIds.forEach((token, i) => {
    const row = logits.data.subarray((contextIds.length - 1 + i) * V, (contextIds.length + i) * V);
    let max = -Infinity;
    let best = 0;
    row.forEach((x, v) => {
      if (x > max) {
        max = x;
        best = v;
      }
    });
    let sum = 0;
    row.forEach((x) => (sum += Math.exp(x - max)));
    logLikelihood += row[token]! - max - Math.log(sum);
    isGreedy &&= best === token;
  });
  return { logLikelihood, isGreedy };
}

/**
 * A deterministic stand-in for GPT-Neo with the DecoderSession contract: a KV cache of slots per row,
 * attention masks over past + new slots, explicit or default position ids, reorder, and a local window
 * over slots. Every output depends on the (token, position) of every visible key, so leaked padding,
 * wrong positions or a broken cache all change the logits.
 */
export class FakeModel {
  readonly config: { max_position_embeddings: number; vocab_size: number };
  readonly dtype = 'fake';
  forwardCalls: { batch: number; width: number; allPositions: boolean }[] = [];

  constructor(maxPositions = 64, vocabSize = 40, readonly window = 6) {
    this.config = { max_position_embeddings: maxPositions, vocab_size: vocabSize };
  }

  createSession(batchSize: number): DecoderSession {
    return new FakeSession(this, batchSize);
  }

  async forward(input: ForwardInput): Promise<{ logits: LogitsOutput }> {
    const session = this.createSession(input.input_ids.length);
    return { logits: await session.forward(input, { allPositions: true }) };
  }

  /** Logits of a query slot given what it sees; the window only limits the local half of the "layers". */
  logitsFor(keys: { token: number; position: number; distance: number }[], out: Float32Array, offset: number): void {
    let global = 0;
    let local = 0;
    for (const { token, position, distance } of keys) {
      const contribution = (token % 97) * 0.013 + Math.sin(position * 0.37 + token * 0.11);
      global += contribution;
      if (distance < this.window) local += contribution * 1.7;
    }
    for (let v = 0; v < this.config.vocab_size; v++) {
      out[offset + v] = 2.5 * Math.sin(global * (v + 1) * 0.21 + v * 0.7) + 1.5 * Math.cos(local * (v + 2) * 0.17);
    }
  }
}

class FakeSession implements DecoderSession {
  private slots: { token: number; position: number }[][];

  constructor(
    private readonly model: FakeModel,
    batchSize: number,
  ) {
    this.slots = Array.from({ length: batchSize }, () => []);
  }

  get batchSize(): number {
    return this.slots.length;
  }

  get pastLength(): number {
    return this.slots[0]!.length;
  }

  async forward(input: ForwardInput, options: { allPositions?: boolean } = {}): Promise<LogitsOutput> {
    const B = this.batchSize;
    const T = input.input_ids[0]!.length;
    const past = this.pastLength;
    const V = this.model.config.vocab_size;
    if (input.input_ids.length !== B || input.input_ids.some((row) => row.length !== T)) throw new Error('input_ids shape');
    if (past + T > this.model.config.max_position_embeddings) throw new Error('too long');
    if (input.attention_mask && input.attention_mask.some((row) => row.length !== past + T)) {
      throw new Error('attention_mask must cover past + new tokens');
    }
    this.model.forwardCalls.push({ batch: B, width: T, allPositions: options.allPositions ?? false });
    const outputs = options.allPositions ? T : 1;
    const data = new Float32Array(B * outputs * V);
    for (let b = 0; b < B; b++) {
      const row = this.slots[b]!;
      for (let t = 0; t < T; t++) {
        const position = input.position_ids ? input.position_ids[b]![t]! : past + t;
        if (position < 0 || position >= this.model.config.max_position_embeddings) throw new Error('position out of range');
        row.push({ token: input.input_ids[b]![t]!, position });
      }
      // Like the real session, this pass's mask decides which of all the slots its queries see.
      const visible = (j: number) => (input.attention_mask ? input.attention_mask[b]![j] === 1 : true);
      for (let t = T - outputs; t < T; t++) {
        const slot = past + t;
        const keys = row
          .slice(0, slot + 1)
          .map((key, j) => ({ ...key, distance: slot - j }))
          .filter((_key, j) => visible(j));
        this.model.logitsFor(keys, data, (b * outputs + (t - (T - outputs))) * V);
      }
    }
    const logsumexp = Float64Array.from({ length: B * outputs }, (_, row) => {
      const logits = data.subarray(row * V, (row + 1) * V);
      const max = Math.max(...logits);
      return max + Math.log(logits.reduce((sum, x) => sum + Math.exp(x - max), 0));
    });
    return { data, dims: [B, outputs, V], logsumexp };
  }

  reorder(rows: readonly number[]): void {
    this.slots = rows.map((r) => this.slots[r]!.map((slot) => ({ ...slot })));
  }

  dispose(): void {
    this.slots = [];
  }
}
