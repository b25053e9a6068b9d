// Structured outputs over HTTP with the official `openai` client: response_format (json_schema, json_object)
// and vLLM's guided_json / guided_regex / guided_choice, whole and streamed, beside unconstrained requests in
// the same continuous batch; bad constraints are 400s that name the field.
import { Ajv2020 } from 'ajv/dist/2020.js';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createServer, type GPTNeoServer } from '../../src/serve/index.js';
import { fixture } from '../helpers/fixtures.js';

const NAME = 'tiny-neo';
const PERSON = {
  type: 'object',
  properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 }, tags: { type: 'array', items: { enum: ['a', 'b'] }, maxItems: 3 } },
  required: ['name', 'age', 'tags'],
  additionalProperties: false,
};
const validPerson = new Ajv2020().compile(PERSON);

let server: GPTNeoServer;
let client: OpenAI;
beforeAll(async () => {
  server = await createServer({ model: fixture('tiny-gpt2vocab'), servedModelName: NAME, port: 0, threads: 1, maxBatch: 8, maxBody: 64 * 1024 });
  client = new OpenAI({ baseURL: `${await server.listen()}/v1`, apiKey: 'unused', maxRetries: 0 });
});
afterAll(async () => server?.close());

/** vLLM's extra request fields, which the openai client sends as they are. */
type Guided = { guided_json?: unknown; guided_regex?: string; guided_choice?: string[] };
const completion = (body: OpenAI.CompletionCreateParamsNonStreaming & Guided) => client.completions.create(body);

describe('structured outputs over HTTP', () => {
  it('chat response_format json_schema (strict): 50 sampled choices all parse and validate, beside an unconstrained request', async () => {
    const [constrained, free] = await Promise.all([
      client.chat.completions.create({
        model: NAME,
        messages: [{ role: 'user', content: 'Who is Winston Smith? Answer in JSON.' }],
        max_completion_tokens: 60,
        n: 50,
        seed: 1,
        response_format: { type: 'json_schema', json_schema: { name: 'person', schema: PERSON, strict: true } },
      }),
      client.completions.create({ model: NAME, prompt: 'Hello', max_tokens: 30, temperature: 1, seed: 2 }),
    ]);
    for (const choice of constrained.choices) {
      expect(validPerson(JSON.parse(choice.message.content!)), choice.message.content!).toBe(true);
      expect(choice.finish_reason).toBe('stop');
    }
    expect(free.choices[0]!.finish_reason).toBe('length');
  });

  it('streamed chunks join into a valid output (response_format json_object and guided_json)', async () => {
    const stream = await client.chat.completions.create({
      model: NAME, messages: [{ role: 'user', content: 'JSON please' }], max_completion_tokens: 60, stream: true, seed: 3,
      response_format: { type: 'json_object' },
    });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(JSON.parse(text)).toBeTypeOf('object');
    const completions = await client.completions.create({ model: NAME, prompt: 'Person:', max_tokens: 60, stream: true, seed: 4, guided_json: PERSON } as OpenAI.CompletionCreateParamsStreaming & Guided);
    let streamed = '';
    for await (const chunk of completions) streamed += chunk.choices[0]?.text ?? '';
    expect(validPerson(JSON.parse(streamed)), streamed).toBe(true);
  });

  it('guided_regex and guided_choice on /v1/completions, n > 1 and greedy', async () => {
    const phone = await completion({ model: NAME, prompt: 'Call', max_tokens: 30, n: 10, seed: 5, guided_regex: '\\+\\d{2} \\d{3}-\\d{4}' });
    for (const choice of phone.choices) expect(choice.text).toMatch(/^\+\d{2} \d{3}-\d{4}$/);
    const mood = await completion({ model: NAME, prompt: 'Mood:', max_tokens: 10, temperature: 0, guided_choice: ['happy', 'sad'] });
    expect(['happy', 'sad']).toContain(mood.choices[0]!.text);
  });

  it('bad constraints are 400s naming the field and the problem', async () => {
    const refused = async (body: Record<string, unknown>) => {
      const error = await completion({ model: NAME, prompt: 'x', max_tokens: 5, ...body } as never).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.BadRequestError);
      return error as InstanceType<typeof OpenAI.BadRequestError>;
    };
    const keyword = await refused({ guided_json: { type: 'object', properties: { a: { type: 'string', contentMediaType: 'x' } } } });
    expect(keyword.message).toMatch(/unsupported JSON Schema keyword "contentMediaType" at #\/properties\/a/);
    expect(keyword.param).toBe('guided_json');
    expect((await refused({ guided_regex: '(a)\\1' })).message).toMatch(/backreferences/);
    expect((await refused({ guided_regex: '[' })).message).toMatch(/not a valid JavaScript regular expression/);
    expect((await refused({ response_format: { type: 'json_schema', json_schema: { name: 'x', schema: { type: 'nope' } } } })).param).toBe('response_format');
    expect((await refused({ guided_choice: ['a'], guided_regex: 'a' })).message).toMatch(/only one of/);
    expect((await refused({ guided_json: '{not json' })).param).toBe('guided_json');
  });
});
