// /v1/embeddings, /tokenize and /detokenize end to end with the official `openai` client on 127.0.0.1, on the tiny
// GPT-Neo with GPT-2's real tokenizer; vectors are checked against pipeline('feature-extraction') and GPTNeoModel.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoModel } from '../../src/modeling/index.js';
import { type FeatureExtractionPipeline, pipeline } from '../../src/pipeline/index.js';
import { EmbeddingBatcher } from '../../src/serve/embeddings.js';
import { createServer, type GPTNeoServer } from '../../src/serve/index.js';
import { fixture } from '../helpers/fixtures.js';

const MODEL = fixture('tiny-gpt2vocab');
const NAME = 'tiny-neo';
const TEXTS = ['Hello', 'The quick brown fox jumps over the lazy dog.', 'GPT-Neo reads text', 'a'];

let server: GPTNeoServer;
let url: string;
let client: OpenAI;
let extractor: FeatureExtractionPipeline;

beforeAll(async () => {
  server = await createServer({ model: MODEL, servedModelName: NAME, port: 0, threads: 1, maxBatch: 2 });
  url = await server.listen();
  client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'unused', maxRetries: 0 });
  extractor = await pipeline('feature-extraction', MODEL, { threads: 1 });
});
afterAll(async () => {
  await server?.close();
  await extractor?.dispose();
});

function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = 1e-5): void {
  expect(actual.length).toBe(expected.length);
  const worst = Math.max(...Array.from(actual, (value, i) => Math.abs(value - expected[i]!)));
  expect(worst).toBeLessThan(tolerance);
}

async function post(path: string, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify(body) });
}

async function errorOf(response: Response): Promise<{ message: string; type: string; param: string | null; code: string | null }> {
  return ((await response.json()) as { error: { message: string; type: string; param: string | null; code: string | null } }).error;
}

async function embedAlone(input: string | number[]): Promise<number[]> {
  const out = await client.embeddings.create({ model: NAME, input, encoding_format: 'float' });
  return out.data[0]!.embedding;
}

describe('embeddings', () => {
  it("float vectors through the openai client: OpenAI's envelope, input order, unit length, usage", async () => {
    const out = await client.embeddings.create({ model: NAME, input: TEXTS, encoding_format: 'float' });
    expect(out.object).toBe('list');
    expect(out.model).toBe(NAME);
    expect(out.data.map((d) => [d.object, d.index])).toEqual(TEXTS.map((_, i) => ['embedding', i]));
    for (const { embedding } of out.data) {
      expect(embedding).toHaveLength(16);
      expect(Math.hypot(...embedding)).toBeCloseTo(1, 5);
    }
    const tokens = TEXTS.reduce((sum, text) => sum + extractor.tokenizer.encode(text).length, 0);
    expect(out.usage).toEqual({ prompt_tokens: tokens, total_tokens: tokens });
  });

  it("count their tokens in the server's prompt-token metric", async () => {
    const promptTokens = async () => {
      const text = await (await fetch(`${url}/metrics`)).text();
      return Number(/^gpt_neo_prompt_tokens_total (\S+)$/m.exec(text)?.[1] ?? 'NaN');
    };
    const before = await promptTokens();
    const out = await client.embeddings.create({ model: NAME, input: TEXTS, encoding_format: 'float' });
    expect(out.usage.prompt_tokens).toBeGreaterThan(TEXTS.length);
    expect(await promptTokens()).toBe(before + out.usage.prompt_tokens);
  });

  it("equal pipeline('feature-extraction') with mean pooling and normalize", async () => {
    const out = await client.embeddings.create({ model: NAME, input: TEXTS, encoding_format: 'float' });
    const reference = await extractor(TEXTS, { pooling: 'mean', normalize: true });
    out.data.forEach((d, i) => expectClose(d.embedding, reference[i]!));
  });

  it("the client's default asks for base64 and decodes it to exactly the float vectors", async () => {
    const floats = await client.embeddings.create({ model: NAME, input: TEXTS, encoding_format: 'float' });
    const decoded = await client.embeddings.create({ model: NAME, input: TEXTS });
    expect(decoded.data.map((d) => d.embedding)).toEqual(floats.data.map((d) => d.embedding));

    const raw = (await (await post('/v1/embeddings', { model: NAME, input: TEXTS[1], encoding_format: 'base64' })).json()) as {
      data: { embedding: string }[];
    };
    const bytes = Buffer.from(raw.data[0]!.embedding, 'base64');
    const expected = Buffer.alloc(16 * 4);
    floats.data[1]!.embedding.forEach((value, i) => expected.writeFloatLE(value, i * 4));
    expect(bytes.equals(expected)).toBe(true);
  });

  it('a vector alone equals it among inputs of other lengths in one request (padding changes nothing)', async () => {
    const together = await client.embeddings.create({ model: NAME, input: TEXTS, encoding_format: 'float' });
    for (const [i, text] of TEXTS.entries()) expectClose(together.data[i]!.embedding, await embedAlone(text));
  });

  it('concurrent requests each get the vectors they get alone', async () => {
    const alone: number[][] = [];
    for (const text of TEXTS) alone.push(await embedAlone(text));
    const together = await Promise.all(TEXTS.map((text) => client.embeddings.create({ model: NAME, input: [text, text.toUpperCase()], encoding_format: 'float' })));
    together.forEach((out, i) => {
      expect(out.data).toHaveLength(2);
      expectClose(out.data[0]!.embedding, alone[i]!);
    });
  });

  it('token ids and arrays of token ids embed as the text they encode', async () => {
    const ids = TEXTS.map((text) => extractor.tokenizer.encode(text));
    const byIds = await client.embeddings.create({ model: NAME, input: ids, encoding_format: 'float' });
    const one = await embedAlone(ids[1]!);
    const byText = await client.embeddings.create({ model: NAME, input: TEXTS, encoding_format: 'float' });
    byIds.data.forEach((d, i) => expectClose(d.embedding, byText.data[i]!.embedding));
    expectClose(one, byText.data[1]!.embedding);
  });

  it('refuses dimensions, empty inputs, over 2048 inputs, over-long inputs, unknown token ids and formats with 400', async () => {
    const cases: [unknown, string, string | null][] = [
      [{ input: 'hi', dimensions: 8 }, 'dimensions', 'unsupported_parameter'],
      [{ input: '' }, 'input', null],
      [{ input: ['ok', ''] }, 'input', null],
      [{ input: Array.from({ length: 2049 }, () => 'x') }, 'input', null],
      [{ input: Array.from({ length: 129 }, () => 11) }, 'input', 'context_length_exceeded'],
      [{ input: [[1, 2], [50257]] }, 'input', null],
      [{ input: 'hi', encoding_format: 'int8' }, 'encoding_format', null],
      [{ input: 42 }, 'input', null],
    ];
    for (const [body, param, code] of cases) {
      const response = await post('/v1/embeddings', { model: NAME, ...(body as object) });
      expect(response.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      const error = await errorOf(response);
      expect(error.param).toBe(param);
      expect(error.code).toBe(code);
      expect(error.type).toBe('invalid_request_error');
    }
    const message = (await errorOf(await post('/v1/embeddings', { model: NAME, input: [[1, 2], [50257]] }))).message;
    expect(message).toContain('input[1][0] = 50257 is outside the vocabulary');
    expect((await post('/v1/embeddings', { model: 'other', input: 'hi' })).status).toBe(404);
  });

  it('--pooling last gives the last token of the bare model, normalized', async () => {
    const last = await createServer({ model: MODEL, servedModelName: NAME, port: 0, threads: 1, maxBatch: 1, pooling: 'last' });
    const base = await GPTNeoModel.from_pretrained(MODEL, { threads: 1 });
    try {
      const lastUrl = await last.listen();
      const lastClient = new OpenAI({ baseURL: `${lastUrl}/v1`, apiKey: 'unused', maxRetries: 0 });
      const out = await lastClient.embeddings.create({ model: NAME, input: TEXTS });
      for (const [i, text] of TEXTS.entries()) {
        const ids = extractor.tokenizer.encode(text);
        const { last_hidden_state: h } = await base.forward({ input_ids: [ids] });
        const vector = Array.from(h.data.subarray((ids.length - 1) * 16, ids.length * 16));
        const norm = Math.hypot(...vector);
        expectClose(out.data[i]!.embedding, vector.map((v) => v / norm));
      }
    } finally {
      await last.close();
      await base.dispose();
    }
  });
});

describe('EmbeddingBatcher', () => {
  /** A stand-in for GPTNeoModel whose hidden state at token t of a row is [id, t, 1]: what each pass held shows. */
  function fakeModel(passes: number[][][]) {
    return {
      async forward({ input_ids }: { input_ids: number[][] }) {
        passes.push(input_ids);
        const T = input_ids[0]!.length;
        const data = new Float32Array(input_ids.length * T * 3);
        input_ids.forEach((row, b) => row.forEach((id, t) => data.set([id, t, 1], (b * T + t) * 3)));
        return { last_hidden_state: { data, dims: [input_ids.length, T, 3] } };
      },
      async dispose() {},
    } as unknown as GPTNeoModel;
  }

  it('loads the model once for concurrent first requests, and batches queued requests by length', async () => {
    const passes: number[][][] = [];
    let loads = 0;
    const batcher = new EmbeddingBatcher(
      async () => {
        loads++;
        await new Promise((resolve) => setTimeout(resolve, 20));
        return fakeModel(passes);
      },
      { pooling: 'last', padTokenId: 0, tokenBudget: 8 },
    );
    const rows = [[5], [6, 6, 6, 6], [7, 7], [8]];
    const results = await Promise.all(rows.map((row) => batcher.embed([row])));
    expect(loads).toBe(1);
    // The last token of each row, read after its own tokens: [id, length - 1, 1] normalized.
    results.forEach(([vector], i) => {
      const expected = [rows[i]![0]!, rows[i]!.length - 1, 1];
      expectClose(vector!, expected.map((v) => v / Math.hypot(...expected)));
    });
    // All four arrived during the load; the budget of 8 tokens takes them in one batch, sorted into passes of
    // at most 8 padded tokens, the shorter rows right-padded.
    expect(passes).toEqual([[[5, 0], [8, 0], [7, 7]], [[6, 6, 6, 6]]]);
    await batcher.close();
    await expect(batcher.embed([[1]])).rejects.toThrow('shutting down');
  });

  it('inputs queued right after a run ends are embedded too', async () => {
    const batcher = new EmbeddingBatcher(async () => fakeModel([]), { pooling: 'mean', padTokenId: 0 });
    for (let round = 0; round < 20; round++) {
      const chained = batcher.embed([[1]]).then(() => batcher.embed([[2, 3]]));
      const hung = new Promise((resolve) => setTimeout(() => resolve('hung'), 1000));
      expect(await Promise.race([chained.then((vectors) => vectors.length), hung])).toBe(1);
    }
    await batcher.close();
  });

  it('inputs of a request whose client went away leave the queue: no pass runs for them', async () => {
    const passes: number[][][] = [];
    const model = fakeModel(passes);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const gated = { ...model, forward: async (input: { input_ids: number[][] }) => (await gate, model.forward(input)) } as unknown as GPTNeoModel;
    const batcher = new EmbeddingBatcher(async () => gated, { pooling: 'mean', padTokenId: 0, tokenBudget: 2 });
    const running = batcher.embed([[1, 1]]);
    await new Promise((resolve) => setTimeout(resolve, 10)); // its pass has started and waits at the gate
    const gone = new AbortController();
    const abandoned = batcher.embed([[2], [3]], gone.signal);
    const kept = batcher.embed([[4]]);
    gone.abort(new Error('client closed the request'));
    await expect(abandoned).rejects.toThrow('client closed the request');
    release();
    await expect(running).resolves.toHaveLength(1);
    await expect(kept).resolves.toHaveLength(1);
    expect(passes).toEqual([[[1, 1]], [[4]]]);
    await batcher.close();
  });

  it('a failed load fails its requests and is tried again by the next one', async () => {
    let loads = 0;
    const batcher = new EmbeddingBatcher(
      async () => {
        if (++loads === 1) throw new Error('disk full');
        return fakeModel([]);
      },
      { pooling: 'mean', padTokenId: 0 },
    );
    await expect(batcher.embed([[1]])).rejects.toThrow('disk full');
    await expect(batcher.embed([[1, 2]])).resolves.toHaveLength(1);
    expect(loads).toBe(2);
  });
});

describe('tokenize and detokenize', () => {
  it("round trip in vLLM's shape", async () => {
    const text = 'Hello, my name is GPT-Neo';
    const response = await post('/tokenize', { model: NAME, prompt: text });
    expect(response.status).toBe(200);
    const tokenized = (await response.json()) as { tokens: number[]; count: number; max_model_len: number };
    expect(tokenized).toEqual({ tokens: extractor.tokenizer.encode(text), count: tokenized.tokens.length, max_model_len: 128 });
    const detokenized = await (await post('/detokenize', { model: NAME, tokens: tokenized.tokens })).json();
    expect(detokenized).toEqual({ prompt: text, content: text });
  });

  it("takes llama.cpp's field name and no model", async () => {
    const tokenized = (await (await post('/tokenize', { content: 'Hi there' })).json()) as { tokens: number[] };
    expect(tokenized.tokens).toEqual(extractor.tokenizer.encode('Hi there'));
    expect(((await (await post('/detokenize', { tokens: tokenized.tokens })).json()) as { content: string }).content).toBe('Hi there');
  });

  it("refuses bad bodies with OpenAI's 400 and another model with 404", async () => {
    const missing = await post('/tokenize', { model: NAME });
    expect(missing.status).toBe(400);
    expect((await errorOf(missing)).param).toBe('prompt');
    const outside = await post('/detokenize', { tokens: [1, 50257] });
    expect(outside.status).toBe(400);
    expect(await errorOf(outside)).toMatchObject({ param: 'tokens', type: 'invalid_request_error' });
    const notIds = await post('/detokenize', { tokens: ['a'] });
    expect(notIds.status).toBe(400);
    expect((await errorOf(notIds)).param).toBe('tokens.0');
    expect((await post('/tokenize', { model: 'other', prompt: 'x' })).status).toBe(404);
  });
});
