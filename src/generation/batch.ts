/**
 * The rows being decoded: the model session plus what transformers keeps in input_ids and
 * attention_mask, fed to the model the way `prepare_inputs_for_generation` does for GPT-Neo.
 */
import type { DecoderSession, LogitsOutput } from '../model/types.js';

export interface PromptBatch {
  /** Left-padded prompt rows, all the same length. */
  inputIds: number[][];
  /** 0 = padding (a prefix of the row), 1 = real token. */
  attentionMask: number[][];
}

export class DecodingBatch {
  /** Real tokens per row: the prompt without padding, then every token appended since. */
  readonly history: number[][];
  /** Where the generated tokens start in `history`, per row. */
  readonly promptTokenCounts: number[];
  private attentionMask: number[][];
  private logits: LogitsOutput;
  /** Row of `logits` that holds each batch row's scores (rows duplicated by expansion share one). */
  private logitsRows: number[];
  private pendingTokens: number[] | null = null;
  private pendingPositions: number[][] = [];

  private constructor(
    private readonly session: DecoderSession,
    prompts: PromptBatch,
    logits: LogitsOutput,
  ) {
    this.attentionMask = prompts.attentionMask.map((mask) => [...mask]);
    this.history = prompts.inputIds.map((ids, r) => ids.filter((_, t) => prompts.attentionMask[r][t] === 1));
    this.promptTokenCounts = this.history.map((tokens) => tokens.length);
    this.logits = logits;
    this.logitsRows = prompts.inputIds.map((_, r) => r);
  }

  /**
   * Runs the whole prompt once, then repeats each prompt's cache `rowsPerPrompt` times in place
   * (rows grouped by prompt, like transformers' repeat_interleave): the prompt is computed once per
   * prompt instead of once per returned sequence or beam.
   */
  static async start(session: DecoderSession, prompts: PromptBatch, rowsPerPrompt: number): Promise<DecodingBatch> {
    const logits = await session.forward({
      input_ids: prompts.inputIds,
      attention_mask: prompts.attentionMask,
      position_ids: prompts.attentionMask.map(promptPositions),
    });
    const batch = new DecodingBatch(session, prompts, logits);
    if (rowsPerPrompt > 1) {
      batch.reorder(prompts.inputIds.flatMap((_, r) => new Array<number>(rowsPerPrompt).fill(r)));
    }
    return batch;
  }

  get rowCount(): number {
    return this.history.length;
  }

  get vocabSize(): number {
    return this.logits.dims[2];
  }

  /** The next-token logits of a row (a view, do not modify). */
  logitsOf(row: number): Float32Array {
    const [, positions, vocab] = this.logits.dims;
    const start = (this.logitsRows[row] * positions + positions - 1) * vocab;
    return this.logits.data.subarray(start, start + vocab);
  }

  /** log(sum(exp(logits))) of a row's next-token logits. */
  logsumexpOf(row: number): number {
    const positions = this.logits.dims[1];
    return this.logits.logsumexp[this.logitsRows[row] * positions + positions - 1];
  }

  /** Tokens generated so far by a row. */
  generatedTokens(row: number): number[] {
    return this.history[row].slice(this.promptTokenCounts[row]);
  }

  /** Rebuilds the batch so that new row r continues old row sourceRows[r]. */
  reorder(sourceRows: readonly number[]): void {
    if (this.pendingTokens) throw new Error('reorder() between push() and computeNextLogits()');
    if (sourceRows.length === this.rowCount && sourceRows.every((source, r) => source === r)) return;
    this.session.reorder(sourceRows);
    const history = sourceRows.map((source) => [...this.history[source]]);
    this.history.splice(0, this.history.length, ...history);
    const promptCounts = sourceRows.map((source) => this.promptTokenCounts[source]);
    this.promptTokenCounts.splice(0, this.promptTokenCounts.length, ...promptCounts);
    this.attentionMask = sourceRows.map((source) => [...this.attentionMask[source]]);
    this.logitsRows = sourceRows.map((source) => this.logitsRows[source]);
  }

  /**
   * Appends one token per row; computeNextLogits() then runs them through the model. Every slot gets
   * mask 1, also the pad tokens fed to finished rows (as transformers does).
   */
  push(tokens: readonly number[]): void {
    if (this.pendingTokens) throw new Error('push() twice without computeNextLogits()');
    // The position of the new token is the number of real slots before it: cumsum(attention_mask) - 1.
    this.pendingPositions = this.attentionMask.map((mask) => [mask.reduce((sum, bit) => sum + bit, 0)]);
    for (let r = 0; r < this.rowCount; r++) {
      this.attentionMask[r].push(1);
      this.history[r].push(tokens[r]);
    }
    this.pendingTokens = [...tokens];
  }

  async computeNextLogits(): Promise<void> {
    if (!this.pendingTokens) throw new Error('computeNextLogits() needs push() first');
    const tokens = this.pendingTokens;
    this.pendingTokens = null;
    this.logits = await this.session.forward({
      input_ids: tokens.map((token) => [token]),
      attention_mask: this.attentionMask,
      position_ids: this.pendingPositions,
    });
    this.logitsRows = this.history.map((_, r) => r);
  }
}

/** transformers' prompt positions: cumsum(mask) - 1, with padding slots set to 1 (their value is irrelevant). */
function promptPositions(mask: readonly number[]): number[] {
  let seen = 0;
  return mask.map((bit) => {
    seen += bit;
    return bit === 0 ? 1 : seen - 1;
  });
}
