/** OpenAI's sampling parameters in terms of generate()'s options and logits processors. */
import type { GenerationConfig, LogitsProcessor } from '../generation/index.js';
import { checkTokenIds } from '../model/index.js';
import { invalidParameter } from './errors.js';
import type { SamplingBody } from './schemas.js';

/**
 * Generation options for choice `choice` of a request: temperature 0 is greedy (exactly generate()'s
 * do_sample: false), OpenAI has no top-k, and choice i of a seeded request samples with seed + i, so
 * choice 0 gives what generate() gives with the same seed.
 */
export function generationOptions(body: SamplingBody, maxNewTokens: number, choice: number, eosTokenId: number | null): GenerationConfig {
  const temperature = body.temperature ?? 1;
  return {
    max_new_tokens: maxNewTokens,
    do_sample: temperature > 0,
    temperature,
    top_p: body.top_p ?? 1,
    top_k: 0,
    seed: body.seed === undefined || body.seed === null ? undefined : body.seed + choice,
    stop: stopStrings(body.stop),
    eos_token_id: eosTokenId,
    pad_token_id: eosTokenId,
  };
}

export function stopStrings(stop: SamplingBody['stop']): string[] {
  if (stop === undefined || stop === null) return [];
  return (typeof stop === 'string' ? [stop] : stop).filter((s) => s.length > 0);
}

/**
 * logit_bias, then presence and frequency penalties as OpenAI defines them: the logit of token j drops by
 * count[j] * frequency_penalty + (count[j] > 0) * presence_penalty, counting the tokens generated so far.
 */
export function openAIProcessors(body: SamplingBody, promptLength: number, vocabSize: number): LogitsProcessor[] {
  const processors: LogitsProcessor[] = [];
  const bias = Object.entries(body.logit_bias ?? {}).map(([token, value]) => [Number(token), value] as const);
  checkTokenIds(bias.map(([token]) => token), vocabSize, 'logit_bias', { error: invalidParameter('logit_bias'), indexed: false });
  if (bias.length > 0) {
    processors.push((scores) => {
      for (const [token, value] of bias) scores[token]! += value;
    });
  }
  const presence = body.presence_penalty ?? 0;
  const frequency = body.frequency_penalty ?? 0;
  if (presence !== 0 || frequency !== 0) {
    processors.push((scores, row) => {
      const counts = new Map<number, number>();
      for (let i = promptLength; i < row.tokens.length; i++) counts.set(row.tokens[i]!, (counts.get(row.tokens[i]!) ?? 0) + 1);
      for (const [token, count] of counts) scores[token]! -= count * frequency + presence;
    });
  }
  return processors;
}
