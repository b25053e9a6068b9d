import { tokenizerVocabulary } from '../constraints/index.js';
import { cutAtStop, type GenerationConfig, TextIteratorStreamer, type TokenStreamer } from '../generation/index.js';
import type { GPTNeoForCausalLM } from '../modeling/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import { encodeTexts, padRows } from './batch.js';

export interface TextGenerationOptions extends GenerationConfig {
  /** Include the prompt in generated_text (default true), as transformers does. */
  return_full_text?: boolean;
  /** Receives new tokens as they are chosen (e.g. a TextStreamer), for the first prompt's first sequence. */
  streamer?: TokenStreamer;
}

export interface TextGenerationOutput {
  generated_text: string;
}

/**
 * The text-generation pipeline: prompt text in, continued text out. Call it like transformers'
 * pipeline object: generator('EleutherAI has', { do_sample: true, min_length: 50 }).
 */
export interface TextGenerationPipeline {
  (prompt: string, options?: TextGenerationOptions): Promise<TextGenerationOutput[]>;
  (prompts: string[], options?: TextGenerationOptions): Promise<TextGenerationOutput[][]>;
  /** The same generation, yielding text pieces as tokens arrive (never a broken multi-byte character). */
  stream(prompt: string, options?: TextGenerationOptions): AsyncIterable<string>;
  readonly model: GPTNeoForCausalLM;
  readonly tokenizer: GPT2Tokenizer;
  dispose(): Promise<void>;
}

function usesConstraint(options: GenerationConfig): boolean {
  return options.json_schema !== undefined || options.constraint !== undefined;
}

export function textGenerationPipeline(model: GPTNeoForCausalLM, tokenizer: GPT2Tokenizer): TextGenerationPipeline {
  // transformers applies config.task_specific_params['text-generation'] as the pipeline's defaults.
  const taskDefaults = (model.config.task_specific_params['text-generation'] ?? {}) as GenerationConfig;

  const run = async (prompts: string[], options: TextGenerationOptions): Promise<TextGenerationOutput[][]> => {
    const { return_full_text = true, streamer, ...generationOptions } = options;
    const encoded = encodeTexts(tokenizer, prompts, 'prompt', 'to continue');
    // Batches are left-padded so every row's last token is the newest.
    const pad = tokenizer.pad_token_id ?? tokenizer.eos_token_id ?? 0;
    const { input_ids, attention_mask } = padRows(encoded, pad, 'left');
    const width = input_ids[0]!.length;
    const sequences = await model.generate({
      ...taskDefaults,
      pad_token_id: pad,
      ...generationOptions,
      input_ids,
      attention_mask,
      streamer,
      decode: (ids) => tokenizer.decode(ids),
      // Text is returned, so a stop string cuts it exactly, not at a token boundary.
      stopCut: 'text',
      vocabulary: usesConstraint(options) ? tokenizerVocabulary(tokenizer, model.config.vocab_size) : undefined,
    });
    const stops = generationOptions.stop ?? [];
    const perPrompt = sequences.length / prompts.length;
    return prompts.map((prompt, p) =>
      sequences.slice(p * perPrompt, (p + 1) * perPrompt).map((sequence) => {
        const text = cutAtStop(tokenizer.decode(sequence.slice(width), { skip_special_tokens: true }), stops);
        return { generated_text: return_full_text ? prompt + text : text };
      }),
    );
  };

  async function generator(prompt: string, options?: TextGenerationOptions): Promise<TextGenerationOutput[]>;
  async function generator(prompts: string[], options?: TextGenerationOptions): Promise<TextGenerationOutput[][]>;
  async function generator(input: string | string[], options: TextGenerationOptions = {}) {
    if (Array.isArray(input)) return run(input, options);
    return (await run([input], options))[0]!;
  }

  return Object.assign(generator, {
    model,
    tokenizer,
    stream(prompt: string, options: TextGenerationOptions = {}): AsyncIterable<string> {
      const skipSpecialIds = new Set([tokenizer.eos_token_id, tokenizer.pad_token_id].filter((id) => id !== null));
      const streamer = new TextIteratorStreamer((ids) => tokenizer.decodeBytes(ids), { skipSpecialIds, stop: options.stop });
      // Errors reach the iterator through the streamer; the promise itself must not go unhandled.
      run([prompt], { ...options, streamer }).catch(() => {});
      return streamer;
    },
    dispose: () => model.dispose(),
  });
}
