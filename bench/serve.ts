// The server scenario of `npm run bench`, in one fresh process: generate() directly, then the same model behind
// `createServer()` on 127.0.0.1 with one stream, 8 concurrent streams, a 128-token prompt arriving while 7
// streams decode, long prompts with and without a cached prefix, and one embeddings request of 64 inputs. Prints a
// JSON ServeReport on stdout.
import { copyFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createServer, GPTNeoForCausalLM, type WeightFormat } from '../src/index.js';
import { promptTokens as prompt } from './prompt.js';
import { weightBytes } from './weight-bytes.js';

export interface ServeReport {
  /** New tokens per second of generate() (greedy, 64 tokens after a 16-token prompt), request to last token. */
  generateTokensPerSecond: number;
  /** The same request as one stream through the server. */
  singleStreamTokensPerSecond: number;
  /** 8 such streams at once: all their tokens over the time until the last one ends. */
  eightStreamsTokensPerSecond: number;
  /**
   * One decoding step of the slot pool for 1 row and for 8 rows, fastest of 12 tries taken in turns, so a busy
   * machine slows both alike: 8 x one / eight is the batch's aggregate speed-up without HTTP or scheduling.
   */
  stepSeconds: { one: number; eight: number };
  /** Time to first token of a 128-token prompt sent while 7 streams decode, each of `trials` tries. */
  firstTokenSeconds: number[];
  /**
   * Time to first token of a 1,500-token prompt alone: sharing nothing with earlier prompts (cold) and sharing its
   * first 1,450 tokens with the one before it (shared, from the prefix cache), in turns.
   */
  prefixFirstTokenSeconds: { cold: number[]; shared: number[] };
  /** Peak RSS before the embeddings request, which loads the bare model as a second copy of the weights. */
  peakRssBytes: number;
  /**
   * Tokens per second of /v1/embeddings for 64 inputs of 128 tokens in one request (the bare model loaded by a
   * warm-up request first), against the causal model's prefill: one 128-token prompt into an empty KV row,
   * fastest of 3. Embeddings pass several inputs at once and skip the LM head, so they may beat prefill.
   */
  embeddings: { tokensPerSecond: number; prefillTokensPerSecond: number };
  /** Weights + `maxBatch` full-context KV caches + the prefix cache's default size + 0.5 GB. */
  rssBudgetBytes: number;
}

const [folder, dtype, threadsText, tokenizerFolder] = process.argv.slice(2) as [string, WeightFormat, string, string];
const threads = Number(threadsText);
const NEW_TOKENS = 64;
const MAX_BATCH = 8;
const TRIALS = 5;
const EMBED_INPUTS = 64;
const EMBED_TOKENS = 128;

// The random checkpoint has no tokenizer; GPT-2's files of the test fixtures serve (ids are all the bench sends).
for (const file of ['vocab.json', 'merges.txt']) {
  if (!existsSync(path.join(folder, file))) await copyFile(path.join(tokenizerFolder, file), path.join(folder, file));
}

const model = await GPTNeoForCausalLM.from_pretrained(folder, { dtype, threads });
await model.generate({ input_ids: [prompt(16, 0)], max_new_tokens: 2 }); // warm-up
let started = performance.now();
await model.generate({ input_ids: [prompt(16, 1)], max_new_tokens: NEW_TOKENS, eos_token_id: null });
const generateTokensPerSecond = NEW_TOKENS / ((performance.now() - started) / 1000);
const cache = model.createKVCache(MAX_BATCH);
const rows = Array.from({ length: MAX_BATCH }, () => cache.acquire(16 + NEW_TOKENS)!);
for (const [i, row] of rows.entries()) await cache.forward([{ row, tokens: prompt(16, 20 + i) }]);
const stepSeconds = { one: Infinity, eight: Infinity };
const timed = async (run: () => Promise<unknown>) => {
  const start = performance.now();
  await run();
  return (performance.now() - start) / 1000;
};
for (let round = 0; round < 12; round++) {
  stepSeconds.one = Math.min(stepSeconds.one, await timed(() => cache.forward([{ row: rows[0]!, tokens: [11] }])));
  stepSeconds.eight = Math.min(stepSeconds.eight, await timed(() => cache.forward(rows.map((row) => ({ row, tokens: [11] })))));
}
const { hidden_size: C, max_position_embeddings: P, attention_layers, window_size } = model.config;
// Keys and values in float32 for every slot of a full context (local layers: their window).
const cacheBytesPerRow = attention_layers.reduce((sum, kind) => sum + 2 * 4 * C * (kind === 'local' ? window_size : P), 0);
const prefixCacheBytes = 2 * P * attention_layers.length * 2 * 4 * C; // the server's default: two full contexts
const rssBudgetBytes = weightBytes(model.config, dtype).total + MAX_BATCH * cacheBytesPerRow + prefixCacheBytes + 0.5e9;
cache.dispose();
const prefillCache = model.createKVCache(1, EMBED_TOKENS);
let prefillSeconds = Infinity;
for (let trial = 0; trial < 3; trial++) {
  const row = prefillCache.acquire(EMBED_TOKENS)!;
  prefillSeconds = Math.min(prefillSeconds, await timed(() => prefillCache.forward([{ row, tokens: prompt(EMBED_TOKENS, 200 + trial) }])));
  prefillCache.release(row);
}
prefillCache.dispose();
await model.dispose();

const server = await createServer({ model: folder, dtype, threads, port: 0, maxBatch: MAX_BATCH });
const url = await server.listen();

/** Streams one completion; resolves with the time of its first token and of its end, in ms. */
async function stream(tokens: number[], maxTokens: number, onFirstToken?: () => void): Promise<{ first: number; end: number; count: number }> {
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      model: server.modelName,
      prompt: tokens,
      max_tokens: maxTokens,
      temperature: 0,
      stream: true,
      logprobs: 0, // every token gets a chunk, even one that is half a character
      logit_bias: { 50256: -100 }, // random weights must not end early
    }),
  });
  if (!response.ok || !response.body) throw new Error(`server answered ${response.status}: ${await response.text()}`);
  let first = 0;
  let count = 0;
  const decoder = new TextDecoder();
  for await (const bytes of response.body) {
    for (const line of decoder.decode(bytes, { stream: true }).split('\n')) {
      if (!line.startsWith('data: {')) continue;
      const chunk = JSON.parse(line.slice(6)) as { choices: { logprobs: { tokens: string[] } | null }[] };
      const tokensInChunk = chunk.choices[0]?.logprobs?.tokens.length ?? 0;
      if (tokensInChunk > 0 && first === 0) {
        first = performance.now();
        onFirstToken?.();
      }
      count += tokensInChunk;
    }
  }
  return { first, end: performance.now(), count };
}

await stream(prompt(16, 2), 2); // warm-up
started = performance.now();
const single = await stream(prompt(16, 1), NEW_TOKENS);
const singleStreamTokensPerSecond = single.count / ((single.end - started) / 1000);

started = performance.now();
const eight = await Promise.all(Array.from({ length: 8 }, (_, i) => stream(prompt(16, 10 + i), NEW_TOKENS)));
const eightStreamsTokensPerSecond =
  eight.reduce((sum, s) => sum + s.count, 0) / ((Math.max(...eight.map((s) => s.end)) - started) / 1000);

const firstTokenSeconds: number[] = [];
for (let trial = 0; trial < TRIALS; trial++) {
  // The late prompt is sent once all 7 are past their prompts and decoding.
  let decoding = 0;
  let allDecoding!: () => void;
  const ready = new Promise<void>((resolve) => (allDecoding = resolve));
  const background = Array.from({ length: 7 }, (_, i) => stream(prompt(16, 100 * trial + i), NEW_TOKENS, () => ++decoding === 7 && allDecoding()));
  await ready;
  const sent = performance.now();
  const late = await stream(prompt(128, 1000 + trial), 1);
  firstTokenSeconds.push((late.first - sent) / 1000);
  await Promise.all(background);
}
const prefixFirstTokenSeconds: ServeReport['prefixFirstTokenSeconds'] = { cold: [], shared: [] };
const firstTokenAfter = async (tokens: number[]) => {
  const sent = performance.now();
  return ((await stream(tokens, 1)).first - sent) / 1000;
};
for (let trial = 0; trial < 3; trial++) {
  const shared = prompt(1450, 500 + trial);
  await stream([...shared, ...prompt(50, 600 + trial)], 1);
  prefixFirstTokenSeconds.shared.push(await firstTokenAfter([...shared, ...prompt(50, 700 + trial)]));
  prefixFirstTokenSeconds.cold.push(await firstTokenAfter(prompt(1500, 800 + trial)));
}
const peakRssBytes = process.resourceUsage().maxRSS * 1024;

/** One embeddings request of `count` token-id inputs; its seconds. */
async function embed(count: number, salt: number): Promise<number> {
  const input = Array.from({ length: count }, (_, i) => prompt(EMBED_TOKENS, salt + i));
  const start = performance.now();
  const response = await fetch(`${url}/v1/embeddings`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model: server.modelName, input, encoding_format: 'base64' }),
  });
  if (!response.ok) throw new Error(`server answered ${response.status}: ${await response.text()}`);
  await response.json();
  return (performance.now() - start) / 1000;
}
await embed(1, 3000); // loads the bare model
const embeddingSeconds = await embed(EMBED_INPUTS, 4000);
await server.close();

const report: ServeReport = {
  generateTokensPerSecond,
  singleStreamTokensPerSecond,
  eightStreamsTokensPerSecond,
  stepSeconds,
  firstTokenSeconds,
  prefixFirstTokenSeconds,
  peakRssBytes,
  rssBudgetBytes,
  embeddings: {
    tokensPerSecond: (EMBED_INPUTS * EMBED_TOKENS) / embeddingSeconds,
    prefillTokensPerSecond: EMBED_TOKENS / prefillSeconds,
  },
};
process.stdout.write(JSON.stringify(report));
