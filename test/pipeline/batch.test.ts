// How the pipelines group texts into passes.
import { expect, it } from 'vitest';
import { inBatches, padRows } from '../../src/pipeline/batch.js';

const rowsOfLength = (...lengths: number[]) => lengths.map((n) => new Array<number>(n).fill(7));

it('groups up to batch_size texts, fewer where long texts would hold more attention scores than one 2048-token text', async () => {
  const seen: number[][] = [];
  const run = async (batch: number[][]) => {
    seen.push(batch.map((row) => row.length));
    return batch.map((row) => row.length);
  };
  const lengths = [5, 6, 7, 8, 9, 1024, 1024, 1024, 1024, 1025, 2048, 3];
  expect(await inBatches(rowsOfLength(...lengths), 8, run)).toEqual(lengths);
  // 4 x 1024^2 = 2048^2 fits, a fifth row does not; a 2048-token text runs alone.
  expect(seen).toEqual([[5, 6, 7, 8, 9], [1024, 1024, 1024, 1024], [1025], [2048], [3]]);
  seen.length = 0;
  await inBatches(rowsOfLength(1, 2, 3), 2, run);
  expect(seen).toEqual([[1, 2], [3]]);
  await expect(inBatches(rowsOfLength(1), 0, run)).rejects.toThrow('batch_size must be a positive integer, got 0');
});

it('pads on either side with the mask marking real tokens', () => {
  expect(padRows([[1, 2, 3], [4]], 0, 'right')).toEqual({ input_ids: [[1, 2, 3], [4, 0, 0]], attention_mask: [[1, 1, 1], [1, 0, 0]] });
  expect(padRows([[1, 2, 3], [4]], 9, 'left')).toEqual({ input_ids: [[1, 2, 3], [9, 9, 4]], attention_mask: [[1, 1, 1], [0, 0, 1]] });
});
