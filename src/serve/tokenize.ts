/**
 * POST /tokenize and /detokenize in vLLM's shapes (`{prompt}` → `{tokens, count, max_model_len}`, `{tokens}` →
 * `{prompt}`), with llama.cpp's names beside them (`content` in both directions), so clients of either can
 * count and build prompts with the served model's own tokenizer.
 */
import type { FastifyInstance } from 'fastify';
import { checkTokenIds } from '../model/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import { invalidParameter, invalidRequest } from './errors.js';
import { type DetokenizeBody, detokenizeSchema, type TokenizeBody, tokenizeSchema } from './schemas.js';

export interface TokenizeContext {
  tokenizer: GPT2Tokenizer;
  maxPositions: number;
  checkModel(requested: string): void;
}

export function registerTokenize(app: FastifyInstance, context: TokenizeContext): void {
  const { tokenizer } = context;
  app.post('/tokenize', { schema: { body: tokenizeSchema } }, async (request) => {
    const body = request.body as TokenizeBody;
    if (body.model !== undefined) context.checkModel(body.model);
    const text = body.prompt ?? body.content;
    if (text === undefined) throw invalidRequest(`'prompt' is required.`, 'prompt');
    const tokens = tokenizer.encode(text);
    return { tokens, count: tokens.length, max_model_len: context.maxPositions };
  });

  app.post('/detokenize', { schema: { body: detokenizeSchema } }, async (request) => {
    const body = request.body as DetokenizeBody;
    if (body.model !== undefined) context.checkModel(body.model);
    checkTokenIds(body.tokens, tokenizer.vocab_size, 'tokens', { error: invalidParameter('tokens') });
    const prompt = tokenizer.decode(body.tokens);
    return { prompt, content: prompt };
  });
}
