import { describe, expect, it } from 'vitest';
import { GenerationError, validateGenerationConfig, type GenerationConfig } from '../../src/generation/index.js';

const context = { promptLength: 10, maxPositions: 128 };

function rejects(config: GenerationConfig, message: RegExp, ctx = context): void {
  expect(() => validateGenerationConfig(config, ctx)).toThrow(GenerationError);
  expect(() => validateGenerationConfig(config, ctx)).toThrow(message);
}

describe('validateGenerationConfig', () => {
  it('accepts the defaults and a full valid config', () => {
    expect(() => validateGenerationConfig({}, context)).not.toThrow();
    expect(() =>
      validateGenerationConfig(
        {
          max_new_tokens: 100,
          min_new_tokens: 5,
          do_sample: true,
          temperature: 0.8,
          top_k: 40,
          top_p: 0.95,
          typical_p: 1,
          repetition_penalty: 1.2,
          no_repeat_ngram_size: 3,
          bad_words_ids: [[5], [6, 7]],
          eos_token_id: [1, 2],
          pad_token_id: 0,
          num_return_sequences: 4,
          stop: ['\n\n'],
          seed: 7,
        },
        context,
      ),
    ).not.toThrow();
  });

  it('rejects sampling parameters outside their ranges, naming option and value', () => {
    rejects({ do_sample: true, temperature: -0.5 }, /temperature must be >= 0.*got -0\.5/);
    rejects({ top_p: 0 }, /top_p must be in \(0, 1\], got 0/);
    rejects({ top_p: 1.5 }, /top_p must be in \(0, 1\], got 1\.5/);
    rejects({ top_k: -1 }, /top_k must be an integer >= 0, got -1/);
    rejects({ top_k: 2.5 }, /top_k must be an integer >= 0/);
    rejects({ typical_p: 0 }, /typical_p must be in \(0, 1\]/);
    rejects({ repetition_penalty: 0 }, /repetition_penalty must be > 0/);
    rejects({ repetition_penalty: -1 }, /repetition_penalty must be > 0/);
    rejects({ temperature: Number.NaN }, /temperature must be a finite number/);
  });

  it('rejects beam and sequence counts transformers rejects', () => {
    rejects({ num_beams: 0 }, /num_beams must be an integer >= 1, got 0/);
    rejects({ num_return_sequences: 2 }, /num_return_sequences \(2\) must be 1: greedy decoding/);
    rejects({ do_sample: true, temperature: 0, num_return_sequences: 2 }, /temperature 0 means greedy decoding/);
    rejects({ num_beams: 2, num_return_sequences: 3 }, /num_return_sequences \(3\) must be <= num_beams \(2\)/);
    rejects({ num_beams: 2, early_stopping: 'sometimes' as unknown as boolean }, /early_stopping must be true, false or 'never'/);
  });

  it('rejects lengths past the context window with the limit', () => {
    rejects({ max_new_tokens: 119 }, /max_new_tokens \(119\) plus the prompt length \(10\) exceeds .* 128 positions; at most 118/);
    rejects({ max_length: 129 }, /max_length \(129\) exceeds the model's context window of 128/);
    rejects({}, /prompt has 200 tokens, more than the model's context window of 128/, { promptLength: 200, maxPositions: 128 });
    rejects({ max_new_tokens: 0 }, /max_new_tokens must be an integer >= 1, got 0/);
    expect(() => validateGenerationConfig({ max_new_tokens: 118 }, context)).not.toThrow();
  });

  it('rejects a max_length the prompt already fills (the default 20 included)', () => {
    rejects({}, /max_length \(20 \(the default\)\) .* must exceed the prompt length \(25\).*max_new_tokens/, {
      promptLength: 25,
      maxPositions: 128,
    });
    rejects({ max_length: 10 }, /max_length \(10\) counts the prompt/);
  });

  it('rejects malformed token options', () => {
    rejects({ bad_words_ids: [[]] }, /bad_words_ids must be a list of non-empty lists/);
    rejects({ bad_words_ids: [[1, -2]] }, /bad_words_ids/);
    rejects({ eos_token_id: -1 }, /eos_token_id must be an integer >= 0/);
    rejects({ pad_token_id: 1.5 }, /pad_token_id must be an integer >= 0/);
    rejects({ stop: [''] }, /stop must be a list of non-empty strings/);
    rejects({ seed: 0.5 }, /seed must be a safe integer/);
  });
});
