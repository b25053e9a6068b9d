import { RuntimeSession } from '../runtime/session.js';
import type { InferenceRunner } from '../runtime/tensor.js';
import type { GPTNeoConfig } from '../model/config.js';
import { type OnnxModel, prepareOnnxModel } from './convert.js';
import { InputError } from '../model/errors.js';
import { EmbeddingTable } from './embeddings.js';
import type { TokenEmbeddings } from '../model/types.js';
import { type GraphVariant, IO } from '../model/gpt-neo.js';
import { WEIGHT_FORMATS, type WeightFormat } from './parameters.js';

export interface FromPretrainedOptions {
  /** Weight format the model runs in; checkpoints in f32, f16 or bf16 load into any of them. */
  dtype?: WeightFormat;
  /** Intra-op threads; default: number of cores. */
  threads?: number;
  /** ONNX Runtime's worker threads spin briefly while waiting for work (default on; `npm run bench` measures both). */
  spinning?: boolean;
  /** A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), merged into the weights at load. */
  adapter?: string;
  /**
   * Run from weights in process memory (default on Linux) rather than memory-mapped from the converted file.
   * fp32 then multiplies its blocks' linear layers as convolutions over weights ONNX Runtime reorders into its own
   * memory, and its float32 head is read into 2 MiB pages; q8's and q4's weights are always repacked. Mapped
   * weights take no private memory of their own: several processes share one copy in the page cache, and the
   * kernel can drop them under memory pressure. The environment variable GPT_NEO_WEIGHTS_IN_MEMORY=0 (or 1) sets
   * the default. See docs/speed.md.
   */
  weightsInMemory?: boolean;
}

/** One graph variant of a checkpoint, converted and opened in ONNX Runtime, with its token embeddings. */
export interface ConvertedModel {
  config: GPTNeoConfig;
  dtype: WeightFormat;
  runtime: InferenceRunner;
  embeddings: TokenEmbeddings;
  /** Held until closed: the conversion is read in place, so no cache removal may take it meanwhile. */
  conversion?: OnnxModel;
}

/** Converts (on first use) and opens a model folder as the given graph variant. */
export async function openConvertedModel(
  folder: string,
  config: GPTNeoConfig,
  options: FromPretrainedOptions = {},
  variant: GraphVariant = 'causal-lm',
): Promise<ConvertedModel> {
  const dtype = options.dtype ?? 'fp32';
  if (!WEIGHT_FORMATS.includes(dtype)) {
    throw new InputError(`dtype '${dtype}' is not supported (choose one of ${WEIGHT_FORMATS.join(', ')})`);
  }
  const inMemory = dtype === 'fp32' && (options.weightsInMemory ?? weightsInMemoryByDefault());
  const conversion = await prepareOnnxModel(folder, config, dtype, variant, options.adapter, inMemory ? 'conv' : 'gemm');
  const { modelPath } = conversion;
  try {
    // fp32 weights are not pre-packed: Gemm reads them in place, Conv's are reordered by a graph optimization.
    const runtimeOptions = { threads: options.threads, spinning: options.spinning, prepackWeights: dtype !== 'fp32' };
    const runtime = await (inMemory
      ? RuntimeSession.createWithWeightsInMemory(modelPath, runtimeOptions)
      : RuntimeSession.create(modelPath, runtimeOptions));
    return { config, dtype, runtime, embeddings: await EmbeddingTable.open(modelPath, IO.tokenEmbeddings), conversion };
  } catch (error) {
    await conversion.release();
    throw error;
  }
}

function weightsInMemoryByDefault(): boolean {
  const setting = process.env.GPT_NEO_WEIGHTS_IN_MEMORY;
  if (setting === undefined || setting === '') return process.platform === 'linux';
  if (setting !== '0' && setting !== '1') throw new InputError(`GPT_NEO_WEIGHTS_IN_MEMORY must be 0 or 1, got '${setting}'`);
  return setting === '1';
}

export async function closeConvertedModel(model: ConvertedModel): Promise<void> {
  model.embeddings.close();
  await model.runtime.release();
  await model.conversion?.release();
}
