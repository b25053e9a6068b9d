// Prefix caching: a prompt that starts like an earlier one reuses its keys and values and still gives exactly
// the tokens it gives alone, also where the shared prefix crosses local-attention windows (the fixture's window is
// 8 slots, a block 16).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Engine, resolveGenerationConfig, type SequenceRequest, type SequenceStream } from '../../src/generation/index.js';
import { BLOCK_TOKENS, PrefixCache } from '../../src/kv/index.js';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { fixture } from '../helpers/fixtures.js';

const SHARED = Array.from({ length: 45 }, (_, i) => (i * 7919 + 13) % 50000);
const FIRST = [...SHARED, 11, 12, 13];
const SECOND = [...SHARED, 464, 3290, 318];
const NEW_TOKENS = 12;

const greedy = (prompt: number[]): SequenceRequest => ({
  prompt,
  config: resolveGenerationConfig({ max_new_tokens: NEW_TOKENS, eos_token_id: null }, { promptLength: prompt.length, maxPositions: 128 }),
  logprobs: null,
});

async function tokensOf(stream: SequenceStream): Promise<number[]> {
  const tokens: number[] = [];
  for await (const output of stream) tokens.push(...output.tokens);
  return tokens;
}

describe.each(['fp32', 'q8'] as const)('PrefixCache (%s)', (dtype) => {
  let model: GPTNeoForCausalLM;
  let alone: number[][];
  beforeAll(async () => {
    model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-gpt2vocab'), { dtype, threads: 1 });
    alone = [];
    for (const prompt of [FIRST, SECOND]) {
      const [sequence] = await model.generate({ input_ids: [prompt], max_new_tokens: NEW_TOKENS, eos_token_id: null });
      alone.push(sequence!.slice(prompt.length));
    }
  });
  afterAll(() => model?.dispose());

  const engineWith = (prefillChunk: number, maxBytes = 2 ** 30) => {
    const cache = model.createKVCache(2);
    const prefixCache = new PrefixCache(cache, maxBytes);
    return { prefixCache, engine: new Engine(cache, { maxQueue: 8, prefillChunk, decode: () => '', prefixCache }) };
  };

  it('reuses the blocks a second prompt shares with the first and gives the tokens it gives alone', async () => {
    // Chunks of the window's size leave every block's local slots in the ring when it is copied.
    const { engine, prefixCache } = engineWith(model.config.window_size);
    expect(await tokensOf(engine.submit([greedy(FIRST)])[0]!)).toEqual(alone[0]);
    expect(prefixCache.stats.hitTokens).toBe(0);
    expect(await tokensOf(engine.submit([greedy(SECOND)])[0]!)).toEqual(alone[1]);
    // 45 shared tokens: two whole blocks, across several 8-slot windows of the local layer.
    expect(prefixCache.stats.hitTokens).toBe(2 * BLOCK_TOKENS);
    expect(prefixCache.stats.lookups).toBe(2);
  });

  it('n sequences of one prompt read its shared blocks once', async () => {
    const { engine, prefixCache } = engineWith(model.config.window_size);
    const streams = engine.submit([greedy(FIRST), greedy(FIRST), greedy(FIRST)]);
    const results = await Promise.all(streams.map(tokensOf));
    expect(results).toEqual([alone[0], alone[0], alone[0]]);
    expect(prefixCache.stats.hitTokens).toBe(2 * 2 * BLOCK_TOKENS);
  });

  it('restores only what holds the local window before its end, and stays exact', async () => {
    // One 64-token chunk: when blocks are copied, the local layer's ring holds only the chunk's last 8 slots.
    const { engine, prefixCache } = engineWith(64);
    await tokensOf(engine.submit([greedy(FIRST)])[0]!);
    expect(await tokensOf(engine.submit([greedy(SECOND)])[0]!)).toEqual(alone[1]);
    expect(prefixCache.stats.hitTokens).toBe(0);
  });

  it('keeps within its byte budget by evicting the least recently used blocks', async () => {
    const { engine: probe, prefixCache: sized } = engineWith(model.config.window_size);
    await tokensOf(probe.submit([greedy(FIRST)])[0]!);
    const blockBytes = sized.stats.bytes / 3; // FIRST (48 tokens) filled three blocks
    const { engine, prefixCache } = engineWith(model.config.window_size, 2 * blockBytes);
    await tokensOf(engine.submit([greedy(FIRST)])[0]!);
    expect(prefixCache.stats.bytes).toBeLessThanOrEqual(2 * blockBytes);
    expect(await tokensOf(engine.submit([greedy(SECOND)])[0]!)).toEqual(alone[1]);
    expect(prefixCache.stats.hitTokens).toBe(2 * BLOCK_TOKENS);
  });
});
