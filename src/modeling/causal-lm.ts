import { closeConvertedModel, type ConvertedModel, type FromPretrainedOptions, openConvertedModel, type WeightFormat } from '../convert/index.js';
import type { TokenVocabulary } from '../constraints/index.js';
import { type Decode, generateOutput, type GenerateOutput, type GenerationConfig, type StopCut, type TokenStreamer } from '../generation/index.js';
import { KVCache, KVSession } from '../kv/index.js';
import {
  checkTokenIds,
  type DecoderSession,
  type Float32Tensor,
  type ForwardInput,
  type GPTNeoConfig,
  InputError,
  IO,
  loadConfig,
  type LogitsOutput,
  type TokenEmbeddings,
} from '../model/index.js';
import type { InferenceRunner } from '../runtime/tensor.js';
import { fullPass, hiddenStateOutputs, LazyVariant } from './full-pass.js';

export interface CausalLMOutput {
  logits: LogitsOutput;
  /** Mean cross-entropy over labels != -100, each position predicting the next label (HF's shift). */
  loss?: number;
  /** With output_hidden_states: num_layers + 1 tensors [batch, seq, hidden], as transformers returns them. */
  hidden_states?: Float32Tensor[];
}

/** model.generate() arguments: the prompt rows plus any generation option, by its Hugging Face name. */
export interface GenerateArguments extends GenerationConfig {
  input_ids: number[][];
  attention_mask?: number[][];
  streamer?: TokenStreamer;
  /** Token decoder, needed for `stop` strings. */
  decode?: Decode;
  /** How a stop string cuts a sequence: 'token' (default) or 'text' (kept through it, for callers that cut its text). */
  stopCut?: StopCut;
  /** The tokenizer's tokens as bytes, needed for json_schema / constraint (the pipeline passes it). */
  vocabulary?: TokenVocabulary;
}

export class GPTNeoForCausalLM {
  private constructor(
    readonly config: GPTNeoConfig,
    readonly dtype: WeightFormat,
    private readonly model: ConvertedModel,
    /** The graph variant with hidden states as outputs, converted and opened on the first forward that asks for them. */
    private readonly withHiddenStates: LazyVariant,
  ) {}

  /** A model over a runtime loaded elsewhere: the browser build converts and loads models its own way (src/browser). */
  static fromRuntime(config: GPTNeoConfig, dtype: WeightFormat, runtime: InferenceRunner, embeddings: TokenEmbeddings): GPTNeoForCausalLM {
    const noHiddenStates = () => Promise.reject(new InputError('output_hidden_states needs a model loaded with from_pretrained'));
    return new GPTNeoForCausalLM(config, dtype, { config, dtype, runtime, embeddings }, new LazyVariant(noHiddenStates));
  }

  /** Loads a model folder (config.json + weights); the first load of a folder converts it for ONNX Runtime. */
  static async from_pretrained(folder: string, options: FromPretrainedOptions = {}): Promise<GPTNeoForCausalLM> {
    const config = await loadConfig(folder);
    const model = await openConvertedModel(folder, config, options);
    const openWithHiddenStates = () => openConvertedModel(folder, config, options, 'causal-lm-hidden-states');
    return new GPTNeoForCausalLM(config, model.dtype, model, new LazyVariant(openWithHiddenStates));
  }

  /** A batch and its KV cache; `maxLength` (tokens per row it will hold) sizes the cache once. */
  createSession(batchSize: number, maxLength?: number): DecoderSession {
    return new KVSession(this.model.runtime, this.config, this.model.embeddings, batchSize, maxLength);
  }

  /** One full pass like HF forward(): positions 0..T-1 unless position_ids are given. */
  async forward(input: ForwardInput & { labels?: number[][]; output_hidden_states?: boolean }): Promise<CausalLMOutput> {
    if (input.output_hidden_states) {
      const hiddenStates = hiddenStateOutputs(this.config);
      const model = await this.withHiddenStates.get();
      const pass = await fullPass(model, input, [IO.logits, IO.logSumExp, ...hiddenStates]);
      const logits = { ...pass.perToken(IO.logits), logsumexp: pass.outputs[IO.logSumExp]!.data as Float64Array };
      const hidden_states = hiddenStates.map(pass.perToken);
      return input.labels ? { logits, loss: causalLMLoss(logits, input.labels), hidden_states } : { logits, hidden_states };
    }
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
  async generate(args: GenerateArguments & { return_dict_in_generate: true }): Promise<GenerateOutput>;
  async generate(args: GenerateArguments): Promise<number[][]>;
  async generate({ input_ids, attention_mask, streamer, decode, stopCut, vocabulary, ...options }: GenerateArguments): Promise<number[][] | GenerateOutput> {
    const config: GenerationConfig = {
      eos_token_id: this.config.eos_token_id,
      pad_token_id: this.config.pad_token_id,
      ...options,
    };
    const output = await generateOutput(this, { input_ids, attention_mask, config, streamer, decode, stopCut, vocabulary });
    return options.return_dict_in_generate ? output : output.sequences;
  }

  /** A KV cache of `rows` rows that sequences take and free between steps (continuous batching), each of up to `length` tokens. */
  createKVCache(rows: number, length = this.maxPositions): KVCache {
    return new KVCache(this.model.runtime, this.config, this.model.embeddings, { rows, length });
  }

  get vocabSize(): number {
    return this.config.vocab_size;
  }

  get maxPositions(): number {
    return this.config.max_position_embeddings;
  }

  async dispose(): Promise<void> {
    await closeConvertedModel(this.model);
    await this.withHiddenStates.close();
  }
}

/** HF causal-LM loss: position t predicts labels[t+1]; mean over labels that are not -100. */
export function causalLMLoss(logits: LogitsOutput, labels: number[][]): number {
  const [B, T, V] = logits.dims as [number, number, number];
  if (labels.length !== B || labels.some((row) => row.length !== T)) {
    throw new InputError(`labels must have the shape of input_ids [${B}, ${T}]`);
  }
  checkTokenIds(labels, V, 'labels', { ignore: -100 });
  let total = 0;
  let count = 0;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t + 1 < T; t++) {
      const label = labels[b]![t + 1]!;
      if (label === -100) continue;
      total += logits.logsumexp[b * T + t]! - logits.data[(b * T + t) * V + label]!;
      count++;
    }
  }
  return count === 0 ? Number.NaN : total / count;
}
