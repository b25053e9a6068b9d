// Training data as Hugging Face's run_clm.py prepares it: tokenize each example of the dataset on its own,
// concatenate them with the EOS token after each document, cut the stream into block_size blocks (the
// remainder dropped), and feed the blocks in a seeded shuffled order, labels = input_ids (the model shifts them).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import type { TrainingBatch } from './batch.js';
import { TrainingInputError } from './errors.js';
import { SeededRandom } from './random.js';

/** A document as the examples it is tokenized in, one at a time (the EOS token follows the last). */
export type Document = string[];

/**
 * The documents of a data file. A .txt file is one document whose examples are its lines, as the datasets
 * library's text loader reads it (universal newlines, one example per line, blank lines included) with
 * run_clm's keep_linebreaks (each line keeps its "\n"): so "\n\n" between paragraphs is two line-break tokens,
 * not GPT-2's one "\n\n" token, as in Hugging Face. A .jsonl file holds one document per line, a JSON object
 * with a string `text` field (blank lines are skipped).
 */
export async function readDocuments(file: string): Promise<Document[]> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new TrainingInputError(`${file}: cannot read the data file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
  }
  const extension = path.extname(file).toLowerCase();
  if (extension === '.txt') {
    if (text.trim() === '') throw new TrainingInputError(`${file}: the file is empty`);
    return [text.replace(/\r\n?/g, '\n').match(/[^\n]*\n|[^\n]+$/g)!];
  }
  if (extension !== '.jsonl') throw new TrainingInputError(`${file}: expected a .txt or .jsonl file`);
  const documents: Document[] = [];
  text.split('\n').forEach((line, index) => {
    if (line.trim() === '') return;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch (error) {
      throw new TrainingInputError(`${file}:${index + 1}: not valid JSON (${(error as Error).message})`);
    }
    const value = (record as { text?: unknown } | null)?.text;
    if (typeof value !== 'string') throw new TrainingInputError(`${file}:${index + 1}: expected an object with a string "text" field`);
    documents.push([value]);
  });
  if (documents.length === 0) throw new TrainingInputError(`${file}: the file has no documents`);
  return documents;
}

/** Token blocks of one data file. */
export class BlockDataset {
  private constructor(
    private readonly tokens: Int32Array,
    readonly blockSize: number,
  ) {}

  /** `documents` are those of `file` (read first, so a bad file is reported before the tokenizer loads). */
  static fromDocuments(file: string, documents: Document[], encode: (text: string) => number[], eosTokenId: number, blockSize: number): BlockDataset {
    const tokens: number[] = [];
    for (const document of documents) {
      for (const example of document) for (const id of encode(example)) tokens.push(id);
      tokens.push(eosTokenId);
    }
    if (tokens.length < blockSize) {
      throw new TrainingInputError(`${file}: too short: ${tokens.length} tokens, one block of --block-size ${blockSize} needs ${blockSize}`);
    }
    return new BlockDataset(Int32Array.from(tokens), blockSize);
  }

  get length(): number {
    return Math.floor(this.tokens.length / this.blockSize);
  }

  batch(blocks: readonly number[]): TrainingBatch {
    const input_ids = blocks.map((block) => Array.from(this.tokens.subarray(block * this.blockSize, (block + 1) * this.blockSize)));
    return { input_ids, labels: input_ids.map((row) => row.slice()) };
  }
}

/** Where a run is in its data: the epoch and the next block of that epoch's order. */
export interface DataPosition {
  epoch: number;
  offset: number;
}

/**
 * Batches of block indices in a seeded shuffled order, a new order each epoch. The order of epoch e depends
 * only on (seed, e), so a position is all a checkpoint needs to continue with the same batches.
 */
export class ShuffledBatches {
  private order: number[];

  constructor(
    private readonly blocks: number,
    private readonly batchSize: number,
    private readonly seed: number,
    private position: DataPosition = { epoch: 0, offset: 0 },
  ) {
    this.order = this.orderOf(position.epoch);
  }

  /** Batches per epoch (the last one may be smaller, as with a DataLoader that keeps it). */
  get perEpoch(): number {
    return Math.ceil(this.blocks / this.batchSize);
  }

  get current(): DataPosition {
    return { ...this.position };
  }

  next(): number[] {
    if (this.position.offset >= this.blocks) {
      this.position = { epoch: this.position.epoch + 1, offset: 0 };
      this.order = this.orderOf(this.position.epoch);
    }
    const { offset } = this.position;
    const batch = this.order.slice(offset, offset + this.batchSize);
    this.position = { ...this.position, offset: offset + batch.length };
    return batch;
  }

  private orderOf(epoch: number): number[] {
    return new SeededRandom(this.seed * 1_000_003 + epoch).permutation(this.blocks);
  }
}
