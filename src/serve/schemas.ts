/**
 * JSON schemas of the request bodies, with OpenAI's field names, types and ranges; Fastify validates every
 * body against them (Ajv, no type coercion) before a handler runs.
 */

/** The schema's type or null (one type list rather than anyOf, so a bad value gets the schema's own message). */
const nullable = <S extends { type: string }>(schema: S) => ({ ...schema, type: [schema.type, 'null'] });

const samplingProperties = {
  model: { type: 'string', minLength: 1 },
  max_tokens: nullable({ type: 'integer', minimum: 1 }),
  temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
  top_p: nullable({ type: 'number', exclusiveMinimum: 0, maximum: 1 }),
  n: nullable({ type: 'integer', minimum: 1, maximum: 128 }),
  stop: {
    anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, maxItems: 4 }, { type: 'null' }],
  },
  seed: nullable({ type: 'integer' }),
  presence_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  frequency_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
  logit_bias: nullable({
    type: 'object',
    propertyNames: { pattern: '^[0-9]+$' },
    additionalProperties: { type: 'number', minimum: -100, maximum: 100 },
  }),
  stream: nullable({ type: 'boolean' }),
  stream_options: nullable({ type: 'object', properties: { include_usage: { type: 'boolean' } } }),
  user: { type: 'string' },
  response_format: nullable({
    type: 'object',
    required: ['type'],
    properties: {
      type: { enum: ['text', 'json_object', 'json_schema'] },
      json_schema: {
        type: 'object',
        required: ['name'],
        properties: { name: { type: 'string' }, description: { type: 'string' }, schema: { type: 'object' }, strict: { type: ['boolean', 'null'] } },
      },
    },
  }),
  // vLLM's guided decoding fields; its guided_decoding_backend is accepted and ignored (there is one engine here).
  guided_json: { anyOf: [{ type: 'object' }, { type: 'string' }, { type: 'null' }] },
  guided_regex: nullable({ type: 'string' }),
  guided_choice: nullable({ type: 'array', items: { type: 'string' }, minItems: 1 }),
  guided_decoding_backend: nullable({ type: 'string' }),
} as const;

const tokenIds = { type: 'array', items: { type: 'integer' }, minItems: 1 } as const;

/** A completion's prompt or an embedding's input: one or several texts, or one or several lists of token ids. */
const textsOrTokenIds = {
  anyOf: [{ type: 'string' }, { type: 'array', items: { type: 'string' }, minItems: 1 }, tokenIds, { type: 'array', items: tokenIds, minItems: 1 }],
} as const;

export type TextsOrTokenIds = string | string[] | number[] | number[][];

/** The rows of a textsOrTokenIds value: each a text or a list of token ids. */
export function rowsOf(value: TextsOrTokenIds): (string | number[])[] {
  if (typeof value === 'string') return [value];
  return (value as unknown[]).every((v) => typeof v === 'number') ? [value as number[]] : (value as (string | number[])[]);
}

export const completionSchema = {
  type: 'object',
  required: ['model', 'prompt'],
  properties: {
    ...samplingProperties,
    prompt: textsOrTokenIds,
    logprobs: nullable({ type: 'integer', minimum: 0, maximum: 5 }),
    echo: nullable({ type: 'boolean' }),
  },
} as const;

const textPart = {
  type: 'object',
  required: ['type', 'text'],
  properties: { type: { const: 'text' }, text: { type: 'string' } },
} as const;

export const chatCompletionSchema = {
  type: 'object',
  required: ['model', 'messages'],
  properties: {
    ...samplingProperties,
    max_completion_tokens: nullable({ type: 'integer', minimum: 1 }),
    messages: {
      type: 'array',
      minItems: 1,
      items: {
        type: 'object',
        required: ['role'],
        properties: {
          role: { enum: ['system', 'developer', 'user', 'assistant', 'tool'] },
          content: { anyOf: [{ type: 'string' }, { type: 'array', items: textPart }, { type: 'null' }] },
          name: { type: 'string' },
        },
      },
    },
    logprobs: nullable({ type: 'boolean' }),
    top_logprobs: nullable({ type: 'integer', minimum: 0, maximum: 20 }),
  },
} as const;

export const embeddingSchema = {
  type: 'object',
  required: ['model', 'input'],
  properties: {
    model: { type: 'string', minLength: 1 },
    input: textsOrTokenIds,
    encoding_format: nullable({ type: 'string', enum: ['float', 'base64'] }),
    user: { type: 'string' },
  },
} as const;

/** vLLM's `prompt`, or llama.cpp's `content`. */
export const tokenizeSchema = {
  type: 'object',
  properties: { model: { type: 'string', minLength: 1 }, prompt: { type: 'string' }, content: { type: 'string' } },
} as const;

export const detokenizeSchema = {
  type: 'object',
  required: ['tokens'],
  properties: { model: { type: 'string', minLength: 1 }, tokens: { type: 'array', items: { type: 'integer' } } },
} as const;

const TEXTS_OR_TOKEN_IDS = 'a string, an array of strings, an array of token ids or an array of arrays of token ids';

/** What a field accepts, for messages about fields whose schema is a choice of shapes. */
export const FIELD_EXPECTATIONS: Record<string, string> = {
  prompt: TEXTS_OR_TOKEN_IDS,
  input: TEXTS_OR_TOKEN_IDS,
  stop: 'a string or an array of at most 4 strings',
  guided_json: 'a JSON schema as an object or a string',
  content: 'a string or an array of text parts',
};

export interface SamplingBody {
  model: string;
  max_tokens?: number | null;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  user?: string;
  response_format?: ResponseFormatField | null;
  guided_json?: Record<string, unknown> | string | null;
  guided_regex?: string | null;
  guided_choice?: string[] | null;
  guided_decoding_backend?: string | null;
}

/** OpenAI's response_format: free text, any JSON object, or JSON matching a schema. */
export interface ResponseFormatField {
  type: 'text' | 'json_object' | 'json_schema';
  json_schema?: { name: string; description?: string; schema?: Record<string, unknown>; strict?: boolean | null };
}

export interface CompletionBody extends SamplingBody {
  prompt: TextsOrTokenIds;
  logprobs?: number | null;
  echo?: boolean | null;
}

export interface ChatMessage {
  role: string;
  content?: string | { type: 'text'; text: string }[] | null;
  name?: string;
}

export interface ChatCompletionBody extends SamplingBody {
  messages: ChatMessage[];
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
}

export interface EmbeddingBody {
  model: string;
  input: TextsOrTokenIds;
  encoding_format?: 'float' | 'base64' | null;
  /** OpenAI's shortened vectors: refused, GPT-Neo's hidden states have one width. */
  dimensions?: unknown;
  user?: string;
}

export interface TokenizeBody {
  model?: string;
  prompt?: string;
  content?: string;
}

export interface DetokenizeBody {
  model?: string;
  tokens: number[];
}
