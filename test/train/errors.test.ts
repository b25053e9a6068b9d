import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { train, Trainer, type TrainingArguments } from '../../src/index.js';
import { BlockDataset, readDocuments, ShuffledBatches } from '../../src/train/data.js';
import { fixture } from '../helpers/fixtures.js';
import { readTrainReference, TINY_RANDOM, TRAIN_TEXT } from './helpers.js';

const BASE = fixture('tiny-gpt2vocab');
const scratch = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-train-errors-'));
const file = (name: string, content: string) => {
  const target = path.join(scratch, name);
  writeFileSync(target, content);
  return target;
};
const args = (overrides: Partial<TrainingArguments>): TrainingArguments => ({
  model: BASE,
  train_file: TRAIN_TEXT,
  output_dir: mkdtempSync(path.join(scratch, 'out-')),
  max_steps: 2,
  block_size: 16,
  batch_size: 2,
  threads: 1,
  ...overrides,
});

describe('bad training input is named precisely', () => {
  it('an empty file, a file shorter than one block, a file of another format', async () => {
    await expect(train(args({ train_file: file('empty.txt', ' \n') }))).rejects.toThrow(/empty\.txt: the file is empty/);
    await expect(train(args({ train_file: file('short.txt', 'Too short.') }))).rejects.toThrow(
      /short\.txt: too short: \d+ tokens, one block of --block-size 16 needs 16/,
    );
    await expect(train(args({ train_file: file('data.csv', 'a,b') }))).rejects.toThrow(/data\.csv: expected a \.txt or \.jsonl file/);
    await expect(train(args({ train_file: path.join(scratch, 'missing.txt') }))).rejects.toThrow(/missing\.txt: cannot read the data file \(ENOENT\)/);
  });

  it('an unreadable JSONL line, with its file and line number', async () => {
    const jsonl = file('bad.jsonl', '{"text": "fine"}\n\n{"text": broken}\n');
    await expect(train(args({ train_file: jsonl }))).rejects.toThrow(/bad\.jsonl:3: not valid JSON/);
    const noText = file('notext.jsonl', '{"text": "fine"}\n{"body": "no text field"}\n');
    await expect(train(args({ validation_file: noText }))).rejects.toThrow(/notext\.jsonl:2: expected an object with a string "text" field/);
  });

  it("a block size over the model's context", async () => {
    await expect(train(args({ block_size: 129 }))).rejects.toThrow(/--block-size 129 is over the model's context \(max_position_embeddings 128\)/);
  });

  it('--resume without a checkpoint, and a new run into a folder that holds one', async () => {
    const outputDir = mkdtempSync(path.join(scratch, 'out-'));
    await expect(train(args({ output_dir: outputDir, resume: true }))).rejects.toThrow(/--resume: no checkpoint-<step> folder/);
    await train(args({ output_dir: outputDir, save_steps: 1 }));
    await expect(train(args({ output_dir: outputDir }))).rejects.toThrow(/already holds .*checkpoint-1: pass --resume/);
  });

  it('a loss that becomes NaN or infinite stops the run with the step number and keeps the last checkpoint', async () => {
    const outputDir = mkdtempSync(path.join(scratch, 'out-'));
    const diverging = args({ output_dir: outputDir, learning_rate: 1e30, max_grad_norm: null, lr_scheduler_type: 'constant', save_steps: 1, max_steps: 4 });
    await expect(train(diverging)).rejects.toThrow(/step 2: the loss is (NaN|Infinity).*the last good checkpoint is .*checkpoint-1/);
    expect(existsSync(path.join(outputDir, 'checkpoint-1', 'model.safetensors'))).toBe(true);
  });

  it('batches the Trainer cannot score', async () => {
    const trainer = await Trainer.from_pretrained(TINY_RANDOM, { lr_scheduler_type: 'constant', threads: 1 });
    try {
      const { input_ids } = readTrainReference().batch;
      await expect(trainer.step({ input_ids, labels: input_ids.map((row: number[]) => row.map(() => -100)) })).rejects.toThrow(/no labels to score/);
      await expect(trainer.step({ input_ids: [[1, 2, 1000]], labels: [[1, 2, 3]] })).rejects.toThrow(/input_ids\[0\]\[2\] = 1000 is outside the vocabulary/);
      await expect(trainer.step({ input_ids: [[1, 2]], labels: [[1, 2, 3]] })).rejects.toThrow(/labels must have the shape of input_ids/);
    } finally {
      await trainer.dispose();
    }
    await expect(Trainer.from_pretrained(TINY_RANDOM, { max_steps: undefined })).rejects.toThrow(/lr_scheduler_type 'linear' decays to the end of the run: give max_steps/);
    await expect(Trainer.from_pretrained(TINY_RANDOM, { lr_scheduler_type: 'constant', loss_chunk_rows: 0 })).rejects.toThrow(/loss_chunk_rows must be a whole number >= 1, got 0/);
  });

  it('the command prints one line and exits with 1', async () => {
    const bin = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
    const failed = await promisify(execFile)('node', [bin, 'train', '--model', BASE, '--train-file', file('empty2.txt', ''), '--output-dir', scratch]).catch(
      (error: { code: number; stderr: string }) => error,
    );
    expect(failed).toMatchObject({ code: 1, stderr: expect.stringMatching(/^gpt-neo: .*empty2\.txt: the file is empty\n$/) });
  });
});

describe('run_clm data preparation', () => {
  it('joins documents with EOS, cuts whole blocks, and shuffles blocks by the seed', async () => {
    const jsonl = file('docs.jsonl', '{"text": "a b"}\n{"text": "c"}\n');
    const encode = (text: string) => text.split(' ').map((word) => word.charCodeAt(0));
    const data = BlockDataset.fromDocuments(jsonl, await readDocuments(jsonl), encode, 0, 2);
    expect(data.length).toBe(2); // [97, 98, 0, 99, 0] -> two blocks of 2, the remainder dropped
    expect(data.batch([0, 1]).input_ids).toEqual([[97, 98], [0, 99]]);
    expect(data.batch([1]).labels).toEqual([[0, 99]]);

    const order = (seed: number) => {
      const batches = new ShuffledBatches(10, 3, seed);
      return Array.from({ length: 8 }, () => batches.next());
    };
    expect(order(1)).toEqual(order(1));
    expect(order(1)).not.toEqual(order(2));
    const epoch = order(1).slice(0, 4).flat();
    expect([...epoch].sort((a, b) => a - b)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]); // every block once per epoch
    expect(order(1)[3]).toHaveLength(1); // the last batch of an epoch keeps the remainder
    // A run continued from a saved position draws what the uninterrupted run draws.
    const first = new ShuffledBatches(10, 3, 1);
    for (let i = 0; i < 5; i++) first.next();
    const resumed = new ShuffledBatches(10, 3, 1, first.current);
    expect(resumed.next()).toEqual(first.next());
  });
});
