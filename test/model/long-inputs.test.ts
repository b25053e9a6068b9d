// Inputs longer than one prefill chunk (256 tokens per row) run in chunks; the result must not show it.
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { GPT_NEO_1_3B_CONFIG, writeRandomCheckpoint } from '../helpers/random-checkpoint.js';

const TOL = 1e-4;
const LENGTH = 700;
const tokens = (seed: number, length = LENGTH) => Array.from({ length }, (_, i) => (i * 7919 + seed * 104729) % 500);

describe('inputs longer than a prefill chunk', () => {
  let model: GPTNeoForCausalLM;
  let folder: string;
  beforeAll(async () => {
    folder = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-long-'));
    await writeRandomCheckpoint(folder, {
      ...GPT_NEO_1_3B_CONFIG,
      hidden_size: 64,
      num_heads: 4,
      num_layers: 2,
      attention_layers: ['global', 'local'],
      attention_types: [[['global', 'local'], 1]],
      vocab_size: 500,
      max_position_embeddings: 1024,
      window_size: 32,
    });
    model = await GPTNeoForCausalLM.from_pretrained(folder);
  });
  afterAll(async () => {
    await model.dispose();
    rmSync(folder, { recursive: true, force: true });
  });

  it('give every position the logits of an unchunked pass over its prefix', async () => {
    const ids = tokens(1);
    const full = await model.forward({ input_ids: [ids] });
    const V = full.logits.dims[2]!;
    expect(full.logits.dims).toEqual([1, LENGTH, V]);
    // The first chunk is a pass of its own; later positions are checked against prefixes that end there.
    for (const end of [256, 300, 513, LENGTH]) {
      const prefix = await model.forward({ input_ids: [ids.slice(0, end)] });
      const at = (data: Float32Array, t: number) => data.subarray(t * V, (t + 1) * V);
      expect(maxAbsDiff(at(prefix.logits.data, end - 1), at(full.logits.data, end - 1))).toBeLessThan(TOL);
    }
  });

  it('agree with KV-cache decoding in pieces that straddle the chunk boundaries', async () => {
    const ids = tokens(2);
    const full = await model.forward({ input_ids: [ids], labels: [ids] });
    const V = full.logits.dims[2]!;
    const session = model.createSession(1);
    for (const [start, end] of [[0, 100], [100, 400], [400, 401], [401, LENGTH]] as const) {
      const out = await session.forward({ input_ids: [ids.slice(start, end)] }, { allPositions: true });
      expect(maxAbsDiff(out.data, full.logits.data.subarray(start * V, end * V))).toBeLessThan(TOL);
    }
    session.dispose();
    expect(Number.isFinite(full.loss)).toBe(true);
  });

  it('keep the rows of a batch apart', async () => {
    const rows = [tokens(3), tokens(4)];
    const batch = await model.forward({ input_ids: rows });
    const half = batch.logits.data.length / 2;
    for (const [r, row] of rows.entries()) {
      const alone = await model.forward({ input_ids: [row] });
      expect(maxAbsDiff(batch.logits.data.subarray(r * half, (r + 1) * half), alone.logits.data)).toBeLessThan(TOL);
      expect(maxAbsDiff(batch.logits.logsumexp.subarray(r * LENGTH, (r + 1) * LENGTH), alone.logits.logsumexp)).toBeLessThan(TOL);
    }
  });

  it('give the same logits when a large batch makes the chunks smaller', async () => {
    // 6 rows x 4 heads x 256 x (704 cached + 256) float32 scores pass 16 MiB, so this batch runs in 128-token
    // chunks while a single row runs in 256-token ones.
    const rows = Array.from({ length: 6 }, (_, r) => tokens(10 + r));
    const batch = await model.forward({ input_ids: rows });
    const rowSize = LENGTH * batch.logits.dims[2]!;
    for (const r of [0, 5]) {
      const alone = await model.forward({ input_ids: [rows[r]!] });
      expect(maxAbsDiff(batch.logits.data.subarray(r * rowSize, (r + 1) * rowSize), alone.logits.data)).toBeLessThan(TOL);
    }
  });
});
