// The server's KV cache: sequences joining and leaving a running batch at different steps, with prompts
// fed in chunks, give exactly the tokens generate() gives each of them alone.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM, type KVSlot } from '../../src/model/index.js';
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

describe.each(['fp32', 'q8'] as const)('KVSlotPool (%s)', (dtype) => {
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
    const pool = model.createSlotPool(3);
    const running: { index: number; slot: KVSlot; tokens: number[] }[] = [];
    const done: number[][] = [];
    let waiting = PROMPTS.map((_, i) => i);
    for (let step = 0; running.length > 0 || waiting.length > 0; step++) {
      // Join: prompts run alone on their row, in chunks of 5 tokens.
      for (const index of waiting.filter((i) => JOIN_AT[i]! <= step)) {
        const slot = pool.acquire(PROMPTS[index]!.length + NEW_TOKENS[index]!);
        if (!slot) continue;
        waiting = waiting.filter((i) => i !== index);
        let logits;
        for (let start = 0; start < PROMPTS[index]!.length; start += 5) {
          logits = await pool.forward([{ slot, tokens: PROMPTS[index]!.slice(start, start + 5) }]);
        }
        running.push({ index, slot, tokens: [argmax(logits!.data)] });
      }
      // Leave: a finished sequence frees its slot at once.
      for (const entry of running.filter((e) => e.tokens.length === NEW_TOKENS[e.index])) {
        done[entry.index] = entry.tokens;
        pool.release(entry.slot);
        running.splice(running.indexOf(entry), 1);
      }
      if (running.length === 0) continue;
      const logits = await pool.forward(running.map((e) => ({ slot: e.slot, tokens: [e.tokens.at(-1)!] })));
      const V = logits.dims[2]!;
      running.forEach((e, i) => e.tokens.push(argmax(logits.data.subarray(i * V, (i + 1) * V))));
    }
    expect(done).toEqual(alone);
    expect(pool.freeSlots).toBe(3);
  });

  it('refuses what does not fit, naming the limit', async () => {
    const pool = model.createSlotPool(1);
    expect(() => pool.acquire(129)).toThrow('1..128');
    const slot = pool.acquire(4)!;
    expect(pool.acquire(4)).toBeNull();
    await expect(pool.forward([{ slot, tokens: [1, 2, 3, 4, 5] }])).rejects.toThrow('at most 4 tokens');
    await expect(pool.forward([{ slot, tokens: [50257] }])).rejects.toThrow('outside the vocabulary');
    pool.release(slot);
    await expect(pool.forward([{ slot, tokens: [1] }])).rejects.toThrow('released');
  });
});
