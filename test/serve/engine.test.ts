// The scheduler: a long prompt is read in chunks between decoding steps of the running sequences, a cancelled
// sequence leaves within one step, and a failing pass ends only the sequences in it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveGenerationConfig } from '../../src/generation/index.js';
import { GPTNeoForCausalLM } from '../../src/model/index.js';
import { Engine, type SequenceSpec } from '../../src/serve/engine.js';
import { fixture } from '../helpers/fixtures.js';

let model: GPTNeoForCausalLM;
beforeAll(async () => {
  model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-gpt2vocab'), { threads: 1 });
});
afterAll(() => model?.dispose());

/** A greedy sequence that logs its events into `log` under `name`. */
function sequence(name: string, prompt: number[], maxNewTokens: number, log: string[]): SequenceSpec {
  return {
    prompt,
    config: resolveGenerationConfig({ max_new_tokens: maxNewTokens, eos_token_id: null }, { promptLength: prompt.length, maxPositions: 128 }),
    logprobs: null,
    listener: {
      onTokens: (tokens) => log.push(...tokens.map(() => name)),
      onFinish: (reason) => log.push(`${name}:${reason}`),
      onError: (error) => log.push(`${name}:error:${error.message}`),
    },
  };
}

const engine = (maxBatch: number) =>
  new Engine(model.createSlotPool(maxBatch), { maxQueue: 8, prefillChunk: 8, decode: () => '' });

describe('Engine', () => {
  it('reads a long prompt one chunk per decoding step of the running sequences', async () => {
    const log: string[] = [];
    const scheduler = engine(2);
    scheduler.submit([sequence('a', [1, 2, 3], 40, log)]);
    while (log.length < 3) await new Promise((resolve) => setImmediate(resolve));
    const aTokensAtSubmit = log.length;
    // 80 prompt tokens in chunks of 8: 10 passes, each followed by one step of `a`.
    scheduler.submit([sequence('b', Array.from({ length: 80 }, (_, i) => 100 + i), 5, log)]);
    await scheduler.idle();
    const firstOfB = log.indexOf('b');
    const aTokensBefore = log.slice(0, firstOfB).filter((entry) => entry === 'a').length;
    expect(aTokensBefore - aTokensAtSubmit).toBeGreaterThanOrEqual(9);
    expect(log.filter((entry) => entry === 'a')).toHaveLength(40);
    expect(log.filter((entry) => entry === 'b')).toHaveLength(5);
  });

  it('drops a cancelled sequence before the next step and gives its slot to the next one waiting', async () => {
    const log: string[] = [];
    const scheduler = engine(1);
    const [first] = scheduler.submit([sequence('a', [1, 2], 100, log)]);
    scheduler.submit([sequence('b', [3, 4], 3, log)]);
    while (!log.includes('a')) await new Promise((resolve) => setImmediate(resolve));
    first!.cancel();
    const tokensAtCancel = log.filter((entry) => entry === 'a').length;
    await scheduler.idle();
    expect(log.filter((entry) => entry === 'a').length).toBeLessThanOrEqual(tokensAtCancel + 1);
    expect(log.slice(-4)).toEqual(['b', 'b', 'b', 'b:length']);
    expect(scheduler.runningCount + scheduler.queueLength).toBe(0);
  });

  it('ends only the sequences of a failing pass with its error; the next ones run', async () => {
    const pool = model.createSlotPool(2);
    const scheduler = new Engine(pool, { maxQueue: 8, prefillChunk: 8, decode: () => '' });
    const forward = pool.forward.bind(pool);
    let failures = 1;
    pool.forward = async (inputs, allPositions) => {
      if (inputs[0]!.tokens.length > 1 && failures-- > 0) throw new Error('kernel failure');
      return forward(inputs, allPositions);
    };
    const log: string[] = [];
    scheduler.submit([sequence('a', [1, 2, 3], 4, log), sequence('b', [4, 5, 6], 4, log)]);
    await scheduler.idle();
    expect(log).toContain('a:error:kernel failure');
    expect(log.filter((entry) => entry === 'b')).toHaveLength(4);
    expect(log.at(-1)).toBe('b:length');
    expect(pool.freeSlots).toBe(2);
  });

  it('refuses sequences beyond the queue limit all together', () => {
    const scheduler = new Engine(model.createSlotPool(1), { maxQueue: 2, prefillChunk: 8, decode: () => '' });
    const log: string[] = [];
    scheduler.submit([sequence('a', [1], 50, log)]); // takes the slot
    expect(() => scheduler.submit([1, 2, 3].map((i) => sequence(`q${i}`, [1], 5, log)))).toThrow('limit 2');
    expect(scheduler.queueLength).toBe(0);
    return scheduler.idle();
  });
});
