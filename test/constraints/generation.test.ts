// Structured outputs end to end on a random-weight GPT-Neo with GPT-2's real 50,257-token vocabulary: left
// alone it never writes JSON; constrained, 50 sampled outputs per schema (temperature 1, five seeds) all parse
// and validate with Ajv, and so do greedy, beam-search, batched and streamed outputs.
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline, type TextGenerationPipeline } from '../../src/pipeline/index.js';
import { fixture } from '../helpers/fixtures.js';

const addFormats = addFormatsModule as unknown as (ajv: Ajv2020) => Ajv2020;
const ajv = addFormats(new Ajv2020({ strict: false }));
const PROMPT = 'Extract the person: Winston Smith, 39, lives in London.\nJSON:';
const SEEDS = [1, 2, 3, 4, 5];

/** Every supported keyword appears in at least one of these. */
export const SCHEMAS: Record<string, unknown> = {
  person: {
    type: 'object',
    properties: { name: { type: 'string', maxLength: 12 }, age: { type: 'integer', minimum: 0, maximum: 120 } },
    required: ['name', 'age'],
    additionalProperties: false,
  },
  scalars: {
    type: 'object',
    properties: {
      kind: { const: 'x' },
      color: { enum: ['red', 'green', 3, null] },
      value: { anyOf: [{ type: 'integer', exclusiveMinimum: -50, exclusiveMaximum: 50 }, { type: 'boolean' }, { type: 'null' }] },
      maybe: { type: ['string', 'null'], minLength: 1, maxLength: 5 },
      ratio: { type: 'number' },
    },
    required: ['kind', 'color'],
    additionalProperties: false,
  },
  arrays: {
    type: 'array',
    prefixItems: [{ type: 'string', maxLength: 4 }, { type: 'integer' }],
    items: { type: 'boolean' },
    minItems: 2,
    maxItems: 5,
  },
  dates: {
    type: 'object',
    properties: { d: { type: 'string', format: 'date' }, dt: { type: 'string', format: 'date-time' } },
    required: ['d', 'dt'],
    additionalProperties: false,
  },
  identifiers: {
    type: 'object',
    properties: { t: { type: 'string', format: 'time' }, id: { type: 'string', format: 'uuid' }, mail: { type: 'string', format: 'email', maxLength: 24 } },
    required: ['t', 'id', 'mail'],
    additionalProperties: false,
  },
  patterns: {
    type: 'object',
    properties: { code: { type: 'string', pattern: '^[A-Z]{2}-\\d{3}$' }, short: { type: 'string', minLength: 2, maxLength: 6 } },
    required: ['code', 'short'],
    additionalProperties: false,
  },
  tree: {
    $defs: {
      node: {
        type: 'object',
        properties: { label: { oneOf: [{ type: 'string', maxLength: 3 }, { type: 'integer' }] }, kids: { type: 'array', items: { $ref: '#/$defs/node' }, maxItems: 2 } },
        required: ['label'],
        additionalProperties: false,
      },
    },
    $ref: '#/$defs/node',
  },
};

let generator: TextGenerationPipeline;
beforeAll(async () => {
  generator = await pipeline('text-generation', fixture('tiny-gpt2vocab'), { threads: 1 });
});
afterAll(async () => generator?.dispose());

/** 50 sampled outputs: five seeds, ten sequences each, closed within 50 new tokens unless `options` say otherwise. */
async function sampled(options: Record<string, unknown>): Promise<string[]> {
  const texts: string[] = [];
  for (const seed of SEEDS) {
    const out = await generator(PROMPT, { do_sample: true, temperature: 1, top_k: 0, seed, num_return_sequences: 10, max_new_tokens: 50, return_full_text: false, ...options });
    texts.push(...out.map((o) => o.generated_text));
  }
  return texts;
}

function expectValid(schema: unknown, texts: string[]): void {
  const validate = ajv.compile(schema as object);
  for (const text of texts) {
    expect(() => JSON.parse(text), text).not.toThrow();
    expect(validate(JSON.parse(text)), `${text}\n${JSON.stringify(validate.errors)}`).toBe(true);
  }
}

describe('structured outputs from a random model', () => {
  it('left alone, the model writes no JSON', async () => {
    const texts = await generator(PROMPT, { do_sample: true, seed: 1, num_return_sequences: 5, max_new_tokens: 30, return_full_text: false });
    for (const { generated_text } of texts) expect(() => JSON.parse(generated_text)).toThrow();
  });

  for (const [name, schema] of Object.entries(SCHEMAS)) {
    it(`50 sampled outputs of schema "${name}" parse and validate`, async () => {
      // The formats' shortest outputs are 60 to 90 bytes long.
      const long = name === 'dates' || name === 'identifiers';
      expectValid(schema, await sampled({ json_schema: schema, ...(long ? { max_new_tokens: 100 } : {}) }));
    });
  }

  it('json_object: 50 sampled outputs are JSON objects', async () => {
    const texts = await sampled({ constraint: { json_object: true } });
    for (const text of texts) expect(JSON.parse(text), text).toBeTypeOf('object');
    expectValid({ type: 'object' }, texts);
  });

  it('regex and choice: 50 sampled outputs each match', async () => {
    for (const text of await sampled({ constraint: { regex: '\\(\\d{3}\\) \\d{3}-\\d{4}( ext\\. \\d{1,4})?' } })) {
      expect(text).toMatch(/^\(\d{3}\) \d{3}-\d{4}( ext\. \d{1,4})?$/);
    }
    for (const text of await sampled({ constraint: { choice: ['positive', 'negative', 'neutral ☺'] } })) {
      expect(['positive', 'negative', 'neutral ☺']).toContain(text);
    }
  });

  it('greedy, beam search, a batch of prompts and a stream all give valid outputs', async () => {
    const schema = SCHEMAS.person;
    const [greedy] = await generator(PROMPT, { json_schema: schema, max_new_tokens: 60, return_full_text: false });
    const beams = await generator(PROMPT, { json_schema: schema, max_new_tokens: 60, num_beams: 3, num_return_sequences: 3, return_full_text: false });
    const batch = (await generator([PROMPT, 'Another one:'], { json_schema: schema, max_new_tokens: 60, do_sample: true, seed: 7, return_full_text: false })).flat();
    let streamed = '';
    for await (const piece of generator.stream(PROMPT, { json_schema: schema, max_new_tokens: 60, do_sample: true, seed: 3, return_full_text: false })) streamed += piece;
    expectValid(schema, [greedy!.generated_text, ...beams.map((b) => b.generated_text), ...batch.map((b) => b.generated_text), streamed]);
  });

  it('outputs close within a tight token budget; a budget below the shortest output is cut at the limit', async () => {
    expectValid(SCHEMAS.tree, await sampled({ json_schema: SCHEMAS.tree, max_new_tokens: 12 }));
    const [cut] = await generator(PROMPT, { json_schema: SCHEMAS.identifiers, max_new_tokens: 5, return_full_text: false });
    expect(() => JSON.parse(cut!.generated_text)).toThrow();
  });

  it('bad constraints are refused with what is wrong', async () => {
    await expect(generator(PROMPT, { json_schema: { type: 'object', patternProperties: {} } })).rejects.toThrow('unsupported JSON Schema keyword "patternProperties" at #');
    await expect(generator(PROMPT, { constraint: { regex: '(?<=a)b' } })).rejects.toThrow(/lookbehind/);
    await expect(generator(PROMPT, { json_schema: {}, constraint: { regex: 'a' } })).rejects.toThrow(/cannot both be set/);
  });
});

describe('constraints beside logits processors and stop strings', () => {
  it('a stop string cuts a constrained output where it matches', async () => {
    const texts = await generator(PROMPT, { json_schema: SCHEMAS.person, stop: [','], do_sample: true, seed: 2, num_return_sequences: 5, max_new_tokens: 50, return_full_text: false });
    for (const { generated_text } of texts) {
      expect(generated_text).not.toContain(',');
      expect(generated_text.startsWith('{')).toBe(true);
    }
  });

  it('the constraint wins when processors would ban every token it allows', async () => {
    const [out] = await generator(PROMPT, { constraint: { choice: ['aaaa'] }, no_repeat_ngram_size: 1, min_new_tokens: 40, max_new_tokens: 50, return_full_text: false });
    expect(out!.generated_text).toBe('aaaa');
  });
});
