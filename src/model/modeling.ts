import { generate, type GenerationConfig, type TokenStreamer } from '../generation/index.js';
import type { Decode } from '../generation/index.js';
import { RuntimeSession } from '../runtime/session.js';
import type { InferenceRunner } from '../runtime/tensor.js';
import { type GPTNeoConfig, loadConfig } from './config.js';
import { prepareOnnxModel } from './convert.js';
import { GPTNeoDecoderSession, InputError } from './decoder-session.js';
import { EmbeddingTable, type TokenEmbeddings } from './embeddings.js';
import { IO } from './gpt-neo.js';
import { WEIGHT_FORMATS, type WeightFormat } from './parameters.js';
import type { DecoderSession, ForwardInput, LogitsOutput } from './types.js';

export interface FromPretrainedOptions {
  /** Weight format the model runs in; checkpoints in f32, f16 or bf16 load into any of them. */
  dtype?: WeightFormat;
  /** Intra-op threads; default: number of cores. */
  threads?: number;
  /** ONNX Runtime's worker threads spin briefly while waiting for work (default on; `npm run bench` measures both). */
  spinning?: boolean;
}

export interface CausalLMOutput {
  logits: LogitsOutput;
  /** Mean cross-entropy over labels != -100, each position predicting the next label (HF's shift). */
  loss?: number;
}

/** model.generate() arguments: the prompt rows plus any generation option, by its Hugging Face name. */
export interface GenerateArguments extends GenerationConfig {
  input_ids: number[][];
  attention_mask?: number[][];
  streamer?: TokenStreamer;
  /** Token decoder, needed for `stop` strings. */
  decode?: Decode;
}

export class GPTNeoForCausalLM {
  private constructor(
    readonly config: GPTNeoConfig,
    readonly dtype: WeightFormat,
    private readonly runtime: InferenceRunner,
    private readonly embeddings: TokenEmbeddings,
  ) {}

  /** A model over a runtime loaded elsewhere: the browser build converts and loads models its own way (src/browser). */
  static fromRuntime(config: GPTNeoConfig, dtype: WeightFormat, runtime: InferenceRunner, embeddings: TokenEmbeddings): GPTNeoForCausalLM {
    return new GPTNeoForCausalLM(config, dtype, runtime, embeddings);
  }

  /** Loads a model folder (config.json + weights); the first load of a folder converts it for ONNX Runtime. */
  static async from_pretrained(folder: string, options: FromPretrainedOptions = {}): Promise<GPTNeoForCausalLM> {
    const dtype = options.dtype ?? 'fp32';
    if (!WEIGHT_FORMATS.includes(dtype)) {
      throw new InputError(`dtype '${dtype}' is not supported (choose one of ${WEIGHT_FORMATS.join(', ')})`);
    }
    const config = await loadConfig(folder);
    const modelPath = await prepareOnnxModel(folder, config, dtype);
    // fp32 weights are read in place from the memory-mapped conversion (see RuntimeOptions.prepackWeights).
    const runtime = await RuntimeSession.create(modelPath, {
      threads: options.threads,
      spinning: options.spinning,
      prepackWeights: dtype !== 'fp32',
    });
    return new GPTNeoForCausalLM(config, dtype, runtime, await EmbeddingTable.open(modelPath, IO.tokenEmbeddings));
  }

  /** A batch and its KV cache; `maxLength` (tokens per row it will hold) sizes the cache once. */
  createSession(batchSize: number, maxLength?: number): DecoderSession {
    return new GPTNeoDecoderSession(this.runtime, this.config, this.embeddings, batchSize, maxLength);
  }

  /** One full pass like HF forward(): positions 0..T-1 unless position_ids are given. */
  async forward(input: ForwardInput & { labels?: number[][] }): Promise<CausalLMOutput> {
    const session = this.createSession(input.input_ids.length);
    try {
      const logits = await session.forward(input, { allPositions: true });
      return input.labels ? { logits, loss: causalLMLoss(logits, input.labels) } : { logits };
    } finally {
      session.dispose();
    }
  }

  /**
   * transformers' generate(): greedy unless do_sample or num_beams say otherwise; returns prompt + new
   * tokens per sequence. Positions come from attention_mask (cumsum - 1), so left-padded rows give
   * the tokens they would give alone.
   */
  async generate({ input_ids, attention_mask, streamer, decode, ...options }: GenerateArguments): Promise<number[][]> {
    const config: GenerationConfig = {
      eos_token_id: this.config.eos_token_id,
      pad_token_id: this.config.pad_token_id,
      ...options,
    };
    return generate(this, { input_ids, attention_mask, config, streamer, decode });
  }

  get vocabSize(): number {
    return this.config.vocab_size;
  }

  get maxPositions(): number {
    return this.config.max_position_embeddings;
  }

  async dispose(): Promise<void> {
    this.embeddings.close();
    await this.runtime.release();
  }
}

/** HF causal-LM loss: position t predicts labels[t+1]; mean over labels that are not -100. */
export function causalLMLoss(logits: LogitsOutput, labels: number[][]): number {
  const [B, T, V] = logits.dims as [number, number, number];
  if (labels.length !== B || labels.some((row) => row.length !== T)) {
    throw new InputError(`labels must have the shape of input_ids [${B}, ${T}]`);
  }
  let total = 0;
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const label = labels[b]![t + 1]!;
      if (label === -100) continue;
      if (!Number.isInteger(label) || label < 0 || label >= V) {
        throw new InputError(`labels[${b}][${t + 1}] = ${label} is outside the vocabulary (0..${V - 1}) and not -100`);
      }
      total += logits.logsumexp[b * T + t]! - logits.data[(b * T + t) * V + label]!;
      count++;
    }
  }
  return count === 0 ? Number.NaN : total / count;
}
