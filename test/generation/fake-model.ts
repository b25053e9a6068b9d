/**
 * A deterministic stand-in for the GPT-Neo session: the next-token logits of a row are a function of
 * what was fed to that row, so expected outputs can be worked out by hand. It also records every
 * call and checks the cache contract (mask covers past + new tokens, positions given, rows consistent).
 */
import type { DecoderSession, ForwardInput, LogitsOutput } from '../../src/model/types.js';
import type { GenerateModel } from '../../src/generation/index.js';

export interface FedRow {
  /** Every token fed to the row, padding included. */
  tokens: number[];
  mask: number[];
  positions: number[];
}

/** Logits of the next token after the row's last fed slot. */
export type NextLogits = (row: FedRow) => ArrayLike<number>;

export class FakeSession implements DecoderSession {
  private rows: FedRow[];
  readonly calls: ForwardInput[] = [];
  readonly reorders: number[][] = [];
  disposed = false;

  constructor(
    batchSize: number,
    private readonly vocabSize: number,
    private readonly next: NextLogits,
  ) {
    this.rows = Array.from({ length: batchSize }, () => ({ tokens: [], mask: [], positions: [] }));
  }

  get batchSize(): number {
    return this.rows.length;
  }

  get pastLength(): number {
    return this.rows[0].tokens.length;
  }

  async forward(input: ForwardInput, options: { allPositions?: boolean } = {}): Promise<LogitsOutput> {
    if (this.disposed) throw new Error('forward after dispose');
    const { input_ids: ids, attention_mask: mask, position_ids: positions } = input;
    if (ids.length !== this.batchSize) throw new Error(`batch ${ids.length} != session ${this.batchSize}`);
    if (!mask || !positions) throw new Error('generation must pass attention_mask and position_ids');
    this.calls.push(structuredClone(input));
    const newLength = ids[0].length;
    const outputs: number[][] = [];
    ids.forEach((rowIds, r) => {
      const row = this.rows[r];
      if (mask[r].length !== row.tokens.length + newLength) throw new Error('mask must cover past + new tokens');
      if (mask[r].slice(0, row.tokens.length).some((bit, t) => bit !== row.mask[t])) {
        throw new Error('mask of past tokens changed');
      }
      rowIds.forEach((token, t) => {
        row.tokens.push(token);
        row.mask.push(mask[r][row.mask.length]);
        row.positions.push(positions[r][t]);
        if (options.allPositions || t === newLength - 1) outputs.push(Array.from(this.next(cloneRow(row))));
      });
    });
    const steps = options.allPositions ? newLength : 1;
    return {
      data: Float32Array.from(outputs.flat()),
      dims: [this.batchSize, steps, this.vocabSize],
      logsumexp: Float64Array.from(outputs, logSumExp),
    };
  }

  reorder(rows: readonly number[]): void {
    this.reorders.push([...rows]);
    this.rows = rows.map((source) => cloneRow(this.rows[source]));
  }

  dispose(): void {
    this.disposed = true;
  }

  /** What each row has been fed so far. */
  fed(): FedRow[] {
    return this.rows.map(cloneRow);
  }
}

function logSumExp(values: number[]): number {
  const max = Math.max(...values);
  if (max === -Infinity) return max;
  return max + Math.log(values.reduce((sum, value) => sum + Math.exp(value - max), 0));
}

function cloneRow(row: FedRow): FedRow {
  return { tokens: [...row.tokens], mask: [...row.mask], positions: [...row.positions] };
}

export class FakeModel implements GenerateModel {
  readonly sessions: FakeSession[] = [];

  constructor(
    readonly vocabSize: number,
    private readonly next: NextLogits,
    readonly maxPositions = 64,
  ) {}

  createSession(batchSize: number): FakeSession {
    const session = new FakeSession(batchSize, this.vocabSize, this.next);
    this.sessions.push(session);
    return session;
  }

  get lastSession(): FakeSession {
    return this.sessions[this.sessions.length - 1];
  }
}

/**
 * A Markov model: next-token probabilities given the last fed token. Logits are ln p, so the model's
 * log-softmax is exactly ln p and beam scores can be summed by hand. Missing entries have p = 0.
 */
export function markov(vocabSize: number, table: Record<number, Record<number, number>>): NextLogits {
  return (row) => {
    const probs = table[row.tokens[row.tokens.length - 1]] ?? {};
    return Array.from({ length: vocabSize }, (_, token) => Math.log(probs[token] ?? 0));
  };
}

/** Greedy-friendly chain: the successor of the last token gets logit 10, everything else 0. */
export function chain(vocabSize: number, successor: Record<number, number>): NextLogits {
  return (row) => {
    const logits = new Array<number>(vocabSize).fill(0);
    const next = successor[row.tokens[row.tokens.length - 1]];
    if (next !== undefined) logits[next] = 10;
    return logits;
  };
}

/** The same logits whatever was fed. */
export function constant(logits: number[]): NextLogits {
  return () => logits;
}
