// The scheduler: a long prompt is read in chunks between decoding steps of the running sequences, a cancelled
// sequence leaves within one step, and a failing pass ends only the sequences in it.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveGenerationConfig } from '../../src/generation/index.js';
import { Engine, type SequenceRequest, type SequenceStream } from '../../src/generation/engine.js';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { fixture } from '../helpers/fixtures.js';

let model: GPTNeoForCausalLM;
beforeAll(async () => {
  model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-gpt2vocab'), { threads: 1 });
});
afterAll(() => model?.dispose());

/** A greedy sequence of `maxNewTokens` tokens. */
function sequence(prompt: number[], maxNewTokens: number): SequenceRequest {
  return {
    prompt,
    config: resolveGenerationConfig({ max_new_tokens: maxNewTokens, eos_token_id: null }, { promptLength: prompt.length, maxPositions: 128 }),
    logprobs: null,
  };
}

/** Pulls a stream's outputs into `log` under `name` (a token, the finish reason or the error), as they come. */
async function drain(name: string, stream: SequenceStream, log: string[]): Promise<void> {
  try {
    for await (const output of stream) {
      log.push(...output.tokens.map(() => name));
      if (output.finishReason) log.push(`${name}:${output.finishReason}`);
    }
  } catch (error) {
    log.push(`${name}:error:${(error as Error).message}`);
  }
}

/** Submits named sequences together and drains each into `log`. */
function submit(scheduler: Engine, named: [string, SequenceRequest][], log: string[]): SequenceStream[] {
  const streams = scheduler.submit(named.map(([, request]) => request));
  streams.forEach((stream, i) => void drain(named[i]![0], stream, log));
  return streams;
}

const engine = (maxBatch: number) => new Engine(model.createKVCache(maxBatch), { maxQueue: 8, prefillChunk: 8, decode: () => '' });

describe('Engine', () => {
  it('reads a long prompt one chunk per decoding step of the running sequences', async () => {
    const log: string[] = [];
    const scheduler = engine(2);
    submit(scheduler, [['a', sequence([1, 2, 3], 40)]], log);
    while (log.length < 3) await new Promise((resolve) => setImmediate(resolve));
    const aTokensAtSubmit = log.length;
    // 80 prompt tokens in chunks of 8: 10 passes, each followed by one step of `a`.
    submit(scheduler, [['b', sequence(Array.from({ length: 80 }, (_, i) => 100 + i), 5)]], log);
    await scheduler.idle();
    await settled();
    const firstOfB = log.indexOf('b');
    const aTokensBefore = log.slice(0, firstOfB).filter((entry) => entry === 'a').length;
    expect(aTokensBefore - aTokensAtSubmit).toBeGreaterThanOrEqual(9);
    expect(log.filter((entry) => entry === 'a')).toHaveLength(40);
    expect(log.filter((entry) => entry === 'b')).toHaveLength(5);
  });

  it('drops a cancelled sequence before the next step and gives its slot to the next one waiting', async () => {
    const log: string[] = [];
    const scheduler = engine(1);
    const [first] = submit(scheduler, [['a', sequence([1, 2], 100)]], log);
    submit(scheduler, [['b', sequence([3, 4], 3)]], log);
    while (!log.includes('a')) await new Promise((resolve) => setImmediate(resolve));
    first!.cancel();
    const tokensAtCancel = log.filter((entry) => entry === 'a').length;
    await scheduler.idle();
    await settled();
    expect(log.filter((entry) => entry === 'a').length).toBeLessThanOrEqual(tokensAtCancel + 1);
    expect(log.slice(-4)).toEqual(['b', 'b', 'b', 'b:length']);
    expect(scheduler.runningCount + scheduler.queueLength).toBe(0);
  });

  it('ends only the sequences of a failing pass with its error; the next ones run', async () => {
    const cache = model.createKVCache(2);
    const scheduler = new Engine(cache, { maxQueue: 8, prefillChunk: 8, decode: () => '' });
    const forward = cache.forward.bind(cache);
    let failures = 1;
    cache.forward = async (inputs, options) => {
      if (inputs[0]!.tokens.length > 1 && failures-- > 0) throw new Error('kernel failure');
      return forward(inputs, options);
    };
    const log: string[] = [];
    submit(scheduler, [['a', sequence([1, 2, 3], 4)], ['b', sequence([4, 5, 6], 4)]], log);
    await scheduler.idle();
    await settled();
    expect(log).toContain('a:error:kernel failure');
    expect(log.filter((entry) => entry === 'b')).toHaveLength(4);
    expect(log.at(-1)).toBe('b:length');
    expect(cache.freeRows).toBe(2);
  });

  it('refuses sequences beyond the queue limit all together', () => {
    const scheduler = new Engine(model.createKVCache(1), { maxQueue: 2, prefillChunk: 8, decode: () => '' });
    const log: string[] = [];
    submit(scheduler, [['a', sequence([1], 50)]], log); // takes the row
    expect(() => scheduler.submit([1, 2, 3].map(() => sequence([1], 5)))).toThrow('limit 2');
    expect(scheduler.queueLength).toBe(0);
    return scheduler.idle();
  });
});

/** Lets the streams' consumers take what the engine pushed last. */
async function settled(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((resolve) => setImmediate(resolve));
}
