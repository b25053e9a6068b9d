// The server end to end with the official `openai` client on 127.0.0.1, on the tiny GPT-Neo with GPT-2's real
// tokenizer; what the server returns is checked against generate() on the same model.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { createServer, type GPTNeoServer } from '../../src/serve/index.js';
import { AutoTokenizer, type GPT2Tokenizer } from '../../src/tokenizer/index.js';
import { fixture } from '../helpers/fixtures.js';

const MODEL = fixture('tiny-gpt2vocab');
const NAME = 'tiny-neo';
const PROMPT = 'Hello, my name is';

let server: GPTNeoServer;
let url: string;
let client: OpenAI;
let model: GPTNeoForCausalLM;
let tokenizer: GPT2Tokenizer;

beforeAll(async () => {
  // Prompt chunks of the fixture's local window (8 slots), so the prefix cache finds its local slots whole.
  server = await createServer({ model: MODEL, servedModelName: NAME, port: 0, threads: 1, maxBatch: 4, maxBody: 64 * 1024, prefillChunk: 8 });
  url = await server.listen();
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  model = await GPTNeoForCausalLM.from_pretrained(MODEL, { threads: 1 });
  tokenizer = await AutoTokenizer.from_pretrained(MODEL);
});
afterAll(async () => {
  await server?.close();
  await model?.dispose();
});

/** What generate() continues a prompt with, as text, and its new tokens. */
async function generated(prompt: string, options: Record<string, unknown>): Promise<{ text: string; tokens: number[] }> {
  const ids = tokenizer.encode(prompt);
  const [sequence] = await model.generate({ input_ids: [ids], ...options });
  const tokens = sequence!.slice(ids.length);
  return { text: tokenizer.decode(tokens, { skip_special_tokens: true }), tokens };
}

/** The `error` object of an OpenAI error response. */
async function errorOf(response: Response): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  return ((await response.json()) as { error: { message: string; type: string; param: string | null; code: string | null } }).error;
}

async function metric(name: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  return Number(text.split('\n').find((line) => line.startsWith(`${name} `))?.split(' ')[1] ?? NaN);
}

describe('completions', () => {
  it('temperature 0 gives exactly what generate() gives greedily, with usage and finish_reason', async () => {
    const reference = await generated(PROMPT, { max_new_tokens: 20 });
    const out = await client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 20, temperature: 0 });
    expect(out.object).toBe('text_completion');
    expect(out.model).toBe(NAME);
    expect(out.choices).toEqual([{ index: 0, text: reference.text, logprobs: null, finish_reason: 'length' }]);
    expect(out.usage).toEqual({ prompt_tokens: 5, completion_tokens: 20, total_tokens: 25 });
  });

  it('defaults to 16 tokens, as OpenAI', async () => {
    const out = await client.completions.create({ model: NAME, prompt: PROMPT, temperature: 0 });
    expect(out.usage!.completion_tokens).toBe(16);
  });

  it('streams chunks that join into the non-streamed text, then usage, then [DONE]', async () => {
    const whole = await client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 30, temperature: 0 });
    const stream = await client.completions.create({
      model: NAME,
      prompt: PROMPT,
      max_tokens: 30,
      temperature: 0,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks = [];
    for await (const chunk of stream) chunks.push(chunk);
    expect(chunks.length).toBeGreaterThan(10);
    expect(chunks.map((c) => c.choices[0]?.text ?? '').join('')).toBe(whole.choices[0]!.text);
    expect(chunks.at(-2)!.choices[0]!.finish_reason).toBe('length');
    expect(chunks.at(-1)!.choices).toEqual([]);
    expect(chunks.at(-1)!.usage).toEqual(whole.usage);
  });

  it('never splits a character across streamed chunks', async () => {
    // 😀 is tokens 47249 (its first 3 bytes) + 222 (the last one); logit_bias and the penalties steer this model
    // into producing both (among other byte fragments, which decode to U+FFFD as in the tokenizer's decode()).
    const request = { model: NAME, prompt: PROMPT, max_tokens: 6, temperature: 0, logit_bias: { 47249: 100, 222: 99 }, frequency_penalty: 2, presence_penalty: 2 };
    const whole = (await client.completions.create(request)).choices[0]!.text;
    expect(whole).toContain('😀');
    const pieces: string[] = [];
    for await (const chunk of await client.completions.create({ ...request, stream: true })) pieces.push(chunk.choices[0]?.text ?? '');
    expect(pieces.join('')).toBe(whole);
    expect(pieces.some((piece) => piece.includes('😀'))).toBe(true);
    expect(pieces.some((piece) => /[\uD800-\uDBFF]$/.test(piece))).toBe(false);
  });

  it('n with a seed: reproducible choices, choice 0 is what generate() samples with that seed', async () => {
    const request = { model: NAME, prompt: PROMPT, max_tokens: 12, n: 3, seed: 11, temperature: 0.8, top_p: 0.9 };
    const first = await client.completions.create(request);
    const again = await client.completions.create(request);
    expect(first.choices.map((c) => c.index)).toEqual([0, 1, 2]);
    expect(again.choices.map((c) => c.text)).toEqual(first.choices.map((c) => c.text));
    expect(new Set(first.choices.map((c) => c.text)).size).toBeGreaterThan(1);
    const reference = await generated(PROMPT, { max_new_tokens: 12, do_sample: true, seed: 11, temperature: 0.8, top_p: 0.9, top_k: 0 });
    expect(first.choices[0]!.text).toBe(reference.text);
    expect(first.usage!.completion_tokens).toBe(36);
  });

  it('takes a list of prompts and token-id prompts; choices are grouped by prompt', async () => {
    const ids = tokenizer.encode('Once upon a time');
    const out = await client.completions.create({ model: NAME, prompt: [PROMPT, 'Once upon a time'], max_tokens: 8, temperature: 0 });
    const byIds = await client.completions.create({ model: NAME, prompt: [tokenizer.encode(PROMPT), ids], max_tokens: 8, temperature: 0 });
    expect(byIds.choices.map((c) => c.text)).toEqual(out.choices.map((c) => c.text));
    expect(out.choices[1]!.text).toBe((await generated('Once upon a time', { max_new_tokens: 8 })).text);
  });

  it('stops before a stop string with finish_reason stop', async () => {
    const { text } = await generated(PROMPT, { max_new_tokens: 20 });
    const stop = text.slice(12, 16);
    const out = await client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 20, temperature: 0, stop: [stop, 'zzzz'] });
    expect(out.choices[0]!.finish_reason).toBe('stop');
    expect(text.startsWith(out.choices[0]!.text)).toBe(true);
    expect(out.choices[0]!.text).not.toContain(stop);
    expect(out.choices[0]!.text.length).toBeLessThanOrEqual(text.indexOf(stop));
  });

  it('cuts the text exactly before a stop string that begins inside a token, as OpenAI does', async () => {
    const { tokens } = await generated(PROMPT, { max_new_tokens: 30, eos_token_id: null });
    const pieces = tokens.map((id) => tokenizer.decode([id]));
    const text = pieces.join('');
    // The stop string is a token's text without its first character: it begins inside that token (index k).
    const k = pieces.findIndex((piece, i) => piece.length >= 3 && text.indexOf(piece.slice(1)) === pieces.slice(0, i).join('').length + 1);
    expect(k).toBeGreaterThanOrEqual(0);
    const stop = pieces[k]!.slice(1);
    const expected = text.slice(0, text.indexOf(stop));
    const request = { model: NAME, prompt: PROMPT, max_tokens: 30, temperature: 0, stop: [stop], logit_bias: { 50256: -100 }, logprobs: 0 };
    const out = await client.completions.create(request);
    expect(out.choices[0]!.text).toBe(expected);
    expect(out.choices[0]!.finish_reason).toBe('stop');
    // Every token generated is counted; the logprobs list the tokens whose text was (partly) returned.
    expect(out.usage!.completion_tokens).toBe(k + 1);
    expect(out.choices[0]!.logprobs!.tokens).toEqual(pieces.slice(0, k + 1));
    const stream = await client.completions.create({ ...request, stream: true });
    let streamed = '';
    for await (const chunk of stream) streamed += chunk.choices[0]?.text ?? '';
    expect(streamed).toBe(expected);
  });

  it('logprobs: the model log-probabilities generate() reports, top alternatives and text offsets', async () => {
    const ids = tokenizer.encode(PROMPT);
    const reference = await model.generate({ input_ids: [ids], max_new_tokens: 8, output_scores: true, top_logprobs: 3, return_dict_in_generate: true });
    const out = await client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 8, temperature: 0, logprobs: 3 });
    const logprobs = out.choices[0]!.logprobs!;
    const scores = reference.scores![0]!;
    expect(logprobs.tokens).toEqual(scores.map((s) => tokenizer.decode([s.token])));
    logprobs.token_logprobs!.forEach((lp, i) => expect(lp).toBeCloseTo(scores[i]!.logprob, 5));
    logprobs.top_logprobs!.forEach((top, i) => expect(Object.keys(top!)).toEqual(scores[i]!.top.map((t) => tokenizer.decode([t.token]))));
    expect(logprobs.text_offset).toEqual(logprobs.tokens!.map((_, i) => logprobs.tokens!.slice(0, i).join('').length));
  });

  it('echo returns the prompt before the completion, with the prompt tokens scored (the first one null)', async () => {
    const out = await client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 4, temperature: 0, echo: true, logprobs: 1 });
    const { text } = await generated(PROMPT, { max_new_tokens: 4 });
    expect(out.choices[0]!.text).toBe(PROMPT + text);
    const logprobs = out.choices[0]!.logprobs!;
    expect(logprobs.tokens!.length).toBe(5 + 4);
    expect(logprobs.token_logprobs![0]).toBeNull();
    expect(logprobs.token_logprobs!.slice(1).every((lp) => typeof lp === 'number' && lp < 0)).toBe(true);
    expect(logprobs.text_offset!.slice(0, 5)).toEqual([0, 5, 6, 9, 14]);
  });
});

describe('chat completions', () => {
  it('renders the messages with the default template and continues them like a completion of that prompt', async () => {
    const messages = [
      { role: 'system' as const, content: 'Be brief.' },
      { role: 'user' as const, content: 'Hi there' },
    ];
    const out = await client.chat.completions.create({ model: NAME, messages, max_tokens: 10, temperature: 0 });
    const prompt = 'system: Be brief.\nuser: Hi there\nassistant:';
    expect(out.object).toBe('chat.completion');
    expect(out.choices[0]!.message).toEqual({ role: 'assistant', content: (await generated(prompt, { max_new_tokens: 10 })).text });
    expect(out.usage!.prompt_tokens).toBe(tokenizer.encode(prompt).length);
    let streamed = '';
    let role;
    for await (const chunk of await client.chat.completions.create({ model: NAME, messages, max_tokens: 10, temperature: 0, stream: true })) {
      role ??= chunk.choices[0]?.delta.role;
      streamed += chunk.choices[0]?.delta.content ?? '';
    }
    expect(role).toBe('assistant');
    expect(streamed).toBe(out.choices[0]!.message.content);
  });

  it('gives logprobs with top_logprobs as content entries', async () => {
    const out = await client.chat.completions.create({
      model: NAME,
      messages: [{ role: 'user', content: 'Hi' }],
      max_completion_tokens: 3,
      temperature: 0,
      logprobs: true,
      top_logprobs: 2,
    });
    const content = out.choices[0]!.logprobs!.content!;
    expect(content).toHaveLength(3);
    expect(content[0]!.top_logprobs).toHaveLength(2);
    expect(content[0]!.top_logprobs[0]!.logprob).toBeGreaterThanOrEqual(content[0]!.logprob);
    expect(Buffer.from(content[0]!.bytes!).toString()).toBe(content[0]!.token);
  });
});

describe('models, health, metrics', () => {
  it('lists the served model and reports health', async () => {
    const models = await client.models.list();
    expect(models.data.map((m) => m.id)).toEqual([NAME]);
    expect((await fetch(`${url}/health`)).status).toBe(200);
  });

  it('exports Prometheus counters and histograms', async () => {
    const text = await (await fetch(`${url}/metrics`)).text();
    for (const name of [
      'gpt_neo_requests_total{endpoint="/v1/completions",status="200"}',
      'gpt_neo_prompt_tokens_total',
      'gpt_neo_generation_tokens_total',
      'gpt_neo_queue_length',
      'gpt_neo_running_batch_size',
      'gpt_neo_time_to_first_token_seconds_bucket',
      'gpt_neo_time_per_output_token_seconds_bucket',
    ]) {
      expect(text).toContain(name);
    }
    expect(await metric('gpt_neo_generation_tokens_total')).toBeGreaterThan(0);
  });
});

describe('continuous batching', () => {
  it('10 simultaneous requests each give the text they give alone', async () => {
    const prompts = Array.from({ length: 10 }, (_, i) => ['The cat', 'In 1999 the', 'Hello', 'A long time ago in a galaxy far'][i % 4]! + ` ${i}`);
    const request = (prompt: string, i: number) => ({
      model: NAME,
      prompt,
      max_tokens: 10 + 3 * i,
      ...(i % 2 === 0 ? { temperature: 0 } : { temperature: 0.9, seed: i }),
    });
    const alone = [];
    for (const [i, prompt] of prompts.entries()) alone.push((await client.completions.create(request(prompt, i))).choices[0]!.text);
    const together = await Promise.all(prompts.map((prompt, i) => client.completions.create(request(prompt, i))));
    expect(together.map((out) => out.choices[0]!.text)).toEqual(alone);
  });

  it('a prompt that starts like an earlier one reuses its prefix from the cache and gives the same text', async () => {
    const shared = 'The quick brown fox jumps over the lazy dog. '.repeat(6);
    const first = `${shared}Then it ran away.`;
    const second = `${shared}And the dog slept on.`;
    await client.completions.create({ model: NAME, prompt: first, max_tokens: 4, temperature: 0 });
    const hitsBefore = await metric('gpt_neo_prefix_cache_hit_tokens_total');
    const out = await client.completions.create({ model: NAME, prompt: second, max_tokens: 12, temperature: 0 });
    expect(out.choices[0]!.text).toBe((await generated(second, { max_new_tokens: 12 })).text);
    expect(await metric('gpt_neo_prefix_cache_hit_tokens_total')).toBeGreaterThanOrEqual(hitsBefore + 32);
    expect(await metric('gpt_neo_prefix_cache_lookups_total')).toBeGreaterThanOrEqual(2);
  });

  it('cancels a stream whose client disconnects and frees its slot', async () => {
    const before = await metric('gpt_neo_generation_tokens_total');
    const stream = await client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 120, temperature: 0, stream: true });
    // Leaving the loop makes the client abort the request.
    for await (const chunk of stream) if (chunk.choices[0]?.text) break;
    for (let i = 0; i < 50 && (await metric('gpt_neo_running_batch_size')) > 0; i++) await new Promise((r) => setTimeout(r, 20));
    expect(await metric('gpt_neo_running_batch_size')).toBe(0);
    expect(await metric('gpt_neo_generation_tokens_total')).toBeLessThan(before + 120);
  });
});

describe('q8 weights', () => {
  it('greedy requests, alone and batched, give what generate() gives greedily in q8', async () => {
    const q8 = await createServer({ model: MODEL, servedModelName: NAME, port: 0, threads: 1, maxBatch: 4, dtype: 'q8' });
    const q8Model = await GPTNeoForCausalLM.from_pretrained(MODEL, { threads: 1, dtype: 'q8' });
    try {
      const q8Client = new OpenAI({ baseURL: `${await q8.listen()}/v1`, apiKey: 'unused', maxRetries: 0 });
      const prompts = ['The cat', 'In 1999 the', 'Hello', 'A long time ago in a galaxy far'];
      const expected = [];
      for (const prompt of prompts) {
        const ids = tokenizer.encode(prompt);
        const [sequence] = await q8Model.generate({ input_ids: [ids], max_new_tokens: 12 });
        expected.push(tokenizer.decode(sequence!.slice(ids.length), { skip_special_tokens: true }));
      }
      const request = (prompt: string) => q8Client.completions.create({ model: NAME, prompt, max_tokens: 12, temperature: 0 });
      const alone = [];
      for (const prompt of prompts) alone.push((await request(prompt)).choices[0]!.text);
      const together = await Promise.all(prompts.map(request));
      expect(alone).toEqual(expected);
      expect(together.map((out) => out.choices[0]!.text)).toEqual(expected);
    } finally {
      await q8.close();
      await q8Model.dispose();
    }
  });
});

describe('errors as OpenAI returns them', () => {
  const post = (path: string, body: unknown, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

  it('400 names the invalid parameter', async () => {
    for (const [body, param, message] of [
      [{ model: NAME, prompt: 'x', temperature: 3 }, 'temperature', "'temperature' must be <= 2."],
      [{ model: NAME, prompt: 'x', max_tokens: 0 }, 'max_tokens', "'max_tokens' must be >= 1."],
      [{ model: NAME, prompt: 'x', stop: ['a', 'b', 'c', 'd', 'e'] }, 'stop', "'stop' must be a string or an array of at most 4 strings."],
      [{ model: NAME, prompt: 'x', logprobs: 6 }, 'logprobs', "'logprobs' must be <= 5."],
      [{ model: NAME }, 'prompt', "'prompt' is required."],
      [{ model: NAME, prompt: [50257] }, 'prompt', 'prompt[0] = 50257 is outside the vocabulary (0..50256)'],
      [{ model: NAME, prompt: 'x', logit_bias: { 60000: 1 } }, 'logit_bias', 'logit_bias token 60000 is outside the vocabulary (0..50256)'],
      [{ model: NAME, prompt: 'x', logit_bias: { 5: 101 } }, 'logit_bias.5', "'logit_bias.5' must be <= 100."],
    ] as const) {
      const response = await post('/v1/completions', body);
      expect(response.status).toBe(400);
      expect(await response.json()).toEqual({ error: { message, type: 'invalid_request_error', param, code: null } });
    }
    const malformed = await post('/v1/completions', '{"model":');
    expect(malformed.status).toBe(400);
    expect((await errorOf(malformed)).message).toContain('could not parse the JSON body');
  });

  it("400 when prompt + max_tokens exceed the context, in OpenAI's words", async () => {
    const error = await client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 124 }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).message).toBe(
      "400 This model's maximum context length is 128 tokens, however you requested 129 tokens (5 in your prompt; 124 for the completion). Please reduce your prompt; or completion length.",
    );
  });

  it('404 for another model or an unknown route, 413 for a body over --max-body', async () => {
    await expect(client.completions.create({ model: 'gpt-4', prompt: 'x' })).rejects.toBeInstanceOf(OpenAI.NotFoundError);
    const route = await fetch(`${url}/v1/images/generations`, { method: 'POST' });
    expect(route.status).toBe(404);
    expect((await errorOf(route)).message).toBe('Invalid URL (POST /v1/images/generations)');
    const big = await post('/v1/completions', { model: NAME, prompt: 'x'.repeat(70 * 1024) });
    expect(big.status).toBe(413);
    expect((await errorOf(big)).message).toContain('limit of 65536 bytes');
  });

  it('503 while draining, and running requests finish', async () => {
    const running = client.completions.create({ model: NAME, prompt: PROMPT, max_tokens: 60, temperature: 0 });
    await new Promise((r) => setTimeout(r, 20));
    const drained = server.drain();
    const refused = await post('/v1/completions', { model: NAME, prompt: 'x' });
    expect(refused.status).toBe(503);
    expect((await errorOf(refused)).type).toBe('service_unavailable_error');
    expect((await fetch(`${url}/health`)).status).toBe(503);
    expect((await running).usage!.completion_tokens).toBe(60);
    await drained;
  });
});

describe('API key, queue limit and CORS', () => {
  let guarded: GPTNeoServer;
  let guardedUrl: string;
  beforeAll(async () => {
    guarded = await createServer({
      model: MODEL,
      port: 0,
      threads: 1,
      maxBatch: 1,
      maxQueue: 1,
      apiKey: 'sk-secret',
      corsOrigins: ['http://app.example'],
    });
    guardedUrl = await guarded.listen();
  });
  afterAll(() => guarded?.close());

  it('401 without the key or with a wrong one; health needs none', async () => {
    const withKey = (apiKey: string) => new OpenAI({ baseURL: `${guardedUrl}/v1`, apiKey, maxRetries: 0 });
    await expect(withKey('sk-wrong').models.list()).rejects.toBeInstanceOf(OpenAI.AuthenticationError);
    const bare = await fetch(`${guardedUrl}/v1/models`);
    expect(bare.status).toBe(401);
    expect((await errorOf(bare)).code).toBe('invalid_api_key');
    expect((await withKey('sk-secret').models.list()).data[0]!.id).toBe(MODEL);
    expect((await fetch(`${guardedUrl}/health`)).status).toBe(200);
  });

  it('429 with Retry-After once --max-queue sequences wait', async () => {
    const client = new OpenAI({ baseURL: `${guardedUrl}/v1`, apiKey: 'sk-secret', maxRetries: 0 });
    const body = { model: MODEL, prompt: PROMPT, max_tokens: 120, temperature: 0 };
    const stream = await client.completions.create({ ...body, stream: true });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next(); // the only slot is taken
    const queued = client.completions.create(body);
    await new Promise((r) => setTimeout(r, 10));
    const refused = await fetch(`${guardedUrl}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-secret' },
      body: JSON.stringify(body),
    });
    expect(refused.status).toBe(429);
    expect(refused.headers.get('retry-after')).toBe('1');
    expect((await errorOf(refused)).type).toBe('rate_limit_error');
    stream.controller.abort();
    expect((await queued).usage!.completion_tokens).toBe(120);
  });

  it('answers CORS preflights for the listed origins only', async () => {
    const preflight = (origin: string) =>
      fetch(`${guardedUrl}/v1/completions`, {
        method: 'OPTIONS',
        headers: { origin, 'access-control-request-method': 'POST' },
      });
    expect((await preflight('http://app.example')).headers.get('access-control-allow-origin')).toBe('http://app.example');
    expect((await preflight('http://evil.example')).headers.get('access-control-allow-origin')).toBeNull();
  });
});
