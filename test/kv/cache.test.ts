// The KV cache as the server's engine uses it: sequences joining and leaving a running batch at different steps,
// with prompts fed in chunks, give exactly the tokens generate() gives each of them alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import type { KVRow } from '../../src/kv/index.js';
import { argmax, fixture } from '../helpers/fixtures.js';

const PROMPTS = [
  [464, 3290, 318, 257],
  [40, 1101, 257, 1310, 286, 262, 995, 11, 290, 340, 373, 1141, 13, 383],
  [15496],
  [7454, 2402, 257, 640, 612, 373, 257, 1310, 4252, 290, 257, 3797, 11, 290, 484, 547, 1115, 2460, 326],
];
const NEW_TOKENS = [20, 9, 30, 14];
/** Step at which each sequence joins the batch. */
const JOIN_AT = [0, 0, 3, 7];

describe.each(['fp32', 'q8'] as const)('KVCache (%s)', (dtype) => {
  let model: GPTNeoForCausalLM;
  beforeAll(async () => {
    model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-gpt2vocab'), { dtype, threads: 1 });
  });
  afterAll(() => model?.dispose());

  it('gives every sequence the greedy tokens it gives alone, whatever joins and leaves around it', async () => {
    const alone = await Promise.all(
      PROMPTS.map(async (ids, i) =>
        (await model.generate({ input_ids: [ids], max_new_tokens: NEW_TOKENS[i]!, eos_token_id: null })).map((row) => row.slice(ids.length))[0],
      ),
    );
    const cache = model.createKVCache(3);
    const running: { index: number; row: KVRow; tokens: number[] }[] = [];
    const done: number[][] = [];
    let waiting = PROMPTS.map((_, i) => i);
    for (let step = 0; running.length > 0 || waiting.length > 0; step++) {
      // Join: prompts run alone on their row, in chunks of 5 tokens.
      for (const index of waiting.filter((i) => JOIN_AT[i]! <= step)) {
        const row = cache.acquire(PROMPTS[index]!.length + NEW_TOKENS[index]!);
        if (!row) continue;
        waiting = waiting.filter((i) => i !== index);
        let logits;
        for (let start = 0; start < PROMPTS[index]!.length; start += 5) {
          logits = await cache.forward([{ row, tokens: PROMPTS[index]!.slice(start, start + 5) }]);
        }
        running.push({ index, row, tokens: [argmax(logits!.data)] });
      }
      // Leave: a finished sequence frees its slot at once.
      for (const entry of running.filter((e) => e.tokens.length === NEW_TOKENS[e.index])) {
        done[entry.index] = entry.tokens;
        cache.release(entry.row);
        running.splice(running.indexOf(entry), 1);
      }
      if (running.length === 0) continue;
      const logits = await cache.forward(running.map((e) => ({ row: e.row, tokens: [e.tokens.at(-1)!] })));
      const V = logits.dims[2]!;
      running.forEach((e, i) => e.tokens.push(argmax(logits.data.subarray(i * V, (i + 1) * V))));
    }
    expect(done).toEqual(alone);
    expect(cache.freeRows).toBe(3);
  });

  it('grows a row past its reservation and past the buffers allocated, keeping every row\'s tokens', async () => {
    const [short, long] = [PROMPTS[0]!, PROMPTS[3]!];
    const alone = async (ids: number[]) =>
      (await model.generate({ input_ids: [ids], max_new_tokens: 70, eos_token_id: null }))[0]!.slice(ids.length);
    const expected = [await alone(short), await alone(long)];
    // Buffers for 8 tokens a row, reservations of 2: every stride change below moves or reallocates the rows.
    const cache = model.createKVCache(2, 8);
    const rows = [cache.acquire(2)!, cache.acquire(2)!];
    const first = [await cache.forward([{ row: rows[0]!, tokens: short }]), await cache.forward([{ row: rows[1]!, tokens: long }])];
    const tokens = first.map((logits) => [argmax(logits.data)]);
    for (let step = 1; step < 70; step++) {
      const logits = await cache.forward(rows.map((row, i) => ({ row, tokens: [tokens[i]!.at(-1)!] })));
      const V = logits.dims[2]!;
      tokens.forEach((row, i) => row.push(argmax(logits.data.subarray(i * V, (i + 1) * V))));
    }
    expect(tokens).toEqual(expected);
  });

  it('refuses what does not fit, naming the limit', async () => {
    const cache = model.createKVCache(1);
    expect(() => cache.acquire(129)).toThrow('1..128');
    const row = cache.acquire(4)!;
    expect(cache.acquire(4)).toBeNull();
    await expect(cache.forward([{ row, tokens: new Array(129).fill(1) }])).rejects.toThrow('exceeds max_position_embeddings 128');
    await expect(cache.forward([{ row, tokens: [50257] }])).rejects.toThrow('outside the vocabulary');
    cache.release(row);
    await expect(cache.forward([{ row, tokens: [1] }])).rejects.toThrow('released');
  });
});
