import { ELEMENT_TYPE_CODES, type GraphBuilder } from '../onnx/graph.js';
import type { Checkpoint } from '../weights/index.js';
import type { GPTNeoConfig, ParameterSource } from '../model/index.js';
import { type BlockQuantized, type ChannelQuantized, quantizeBlockwise, quantizePerChannel } from './quantize.js';

/**
 * fp32: weights as float32. q8: every linear layer in int8 per output channel, activations in 8 bits per token,
 * the head's best candidates recomputed in float32. q4: every linear layer and the head in 4 bits per block of 32.
 * Embeddings and LayerNorms stay exact in every format.
 */
export type WeightFormat = 'fp32' | 'q8' | 'q4';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['fp32', 'q8', 'q4'];
const QUANT_BLOCK_SIZE = 32;
const HEAD_CANDIDATES = 64;

/**
 * Bytes one parameter of a linear layer takes in each format: its code plus its share of the scales (float32)
 * and zero points (q4: 4 bits per block; q8's per-channel scales are negligible).
 */
export const LINEAR_BYTES_PER_PARAMETER: Record<WeightFormat, number> = { fp32: 4, q8: 1, q4: 0.5 + (4 + 0.5) / QUANT_BLOCK_SIZE };

/**
 * How fp32's linear layers multiply. 'gemm': Gemm over the weights as stored, read in place by ONNX Runtime (from
 * the memory-mapped file, or from memory a caller feeds), the form every runtime has. 'conv': 1x1 convolutions,
 * whose constant weights ONNX Runtime's CPU provider reorders at load into its own memory for its blocked (NCHWc)
 * kernels: batch-1 decode 1.06x (Intel) to 1.31x (AMD) Gemm's over weights in 2 MiB pages (docs/speed.md), but
 * no sharing of one mapped copy between processes.
 */
export type Float32Kernel = 'gemm' | 'conv';

export class WeightMismatchError extends Error {}

/**
 * Parameters read from a Hugging Face checkpoint. Each tensor is checked against the shape the config
 * implies before anything is converted, and read from disk only when the model file is written.
 */
export function checkpointParameters(
  g: GraphBuilder,
  checkpoint: Checkpoint,
  config: GPTNeoConfig,
  format: WeightFormat,
  source: string,
  float32Kernel: Float32Kernel = 'gemm',
): ParameterSource {
  const weights = new CheckpointWeights(g, checkpoint, config, source);
  const product = (x: string, layer: LinearLayers) => {
    if (format === 'q4') return int4Linear(weights, x, layer);
    if (layer.names[0] === 'lm_head') {
      if (format === 'q8') return rescoredHead(weights, x, layer);
      // fp32's head, declared as a graph input too (ONNX: an initializer that a caller may override), is not a
      // constant: ONNX Runtime reads it in place, from the file mapping or from memory a session feeds it from,
      // rather than reorder it.
      g.input(weights.weightName('lm_head'), 'float32', [layer.N, layer.K]);
      return gemmLinear(weights, x, layer);
    }
    if (format === 'q8') return int8Linear(weights, x, layer);
    return float32Kernel === 'conv' ? convLinear(weights, x, layer) : gemmLinear(weights, x, layer);
  };
  return {
    tensor: (name, shape) => weights.tensor(name, shape),
    linear(x, name, outFeatures, inFeatures, withBias) {
      const bias = withBias ? weights.tensor(`${name}.bias`, [outFeatures]) : undefined;
      return product(x, { names: [name], N: outFeatures, K: inFeatures, bias });
    },
    linears(x, names, outFeatures, inFeatures) {
      // Split sizes as an input, not num_outputs: onnxruntime-web's WebGPU Split ignores num_outputs (empty outputs).
      const sizes = g.constInt64(names.map(() => outFeatures));
      return g.nodeOutputs('Split', [product(x, { names, N: outFeatures, K: inFeatures }), sizes], names.length, { axis: -1 });
    },
  };
}

/** One or more nn.Linear layers over the same input ([N, K] weights each), multiplied as one stacked product. */
interface LinearLayers {
  names: string[];
  N: number;
  K: number;
  bias?: string;
}

/** The checkpoint's tensors as graph weights: checked now, read when the model file is written. */
class CheckpointWeights {
  private readonly registered = new Set<string>();

  constructor(
    readonly g: GraphBuilder,
    private readonly checkpoint: Checkpoint,
    private readonly config: GPTNeoConfig,
    private readonly source: string,
  ) {}

  /** The checkpoint tensor holding a linear layer's weight (a tied head reads the token embeddings). */
  weightName(linear: string): string {
    return linear === 'lm_head' && this.config.tie_word_embeddings ? 'transformer.wte.weight' : `${linear}.weight`;
  }

  check(name: string, shape: number[]): void {
    const info = this.checkpoint.tensors.get(name);
    if (!info) {
      throw new WeightMismatchError(`${this.source}: missing tensor '${name}' (expected shape [${shape.join(', ')}])`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new WeightMismatchError(`${this.source}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
  }

  /** A float32 tensor as stored, registered once. */
  tensor(name: string, shape: number[]): string {
    if (this.registered.has(name)) return name;
    this.check(name, shape);
    this.registered.add(name);
    return this.g.weight(name, 'float32', shape, () => this.checkpoint.readFloat32(name));
  }

  /**
   * The weights of the layers stacked along their outputs ([sum N, K]): one product reads them in one pass. The
   * writer asks for the `parts` of a converted weight (codes, scales, ...) one after another: each weight is read
   * and converted once, and dropped after its last part, so conversion holds one weight at a time.
   */
  stacked<T>(layer: LinearLayers, parts: number, convert: (weight: Float32Array, rows: number) => T): () => Promise<T> {
    const { N, K } = layer;
    const names = layer.names.map((linear) => this.weightName(linear));
    for (const name of names) this.check(name, [N, K]);
    let result: Promise<T> | undefined;
    let unread = parts;
    return () => {
      const converted = (result ??= Promise.all(names.map((name) => this.checkpoint.readFloat32(name))).then((read) => {
        if (read.length === 1) return convert(read[0]!, N);
        const stacked = new Float32Array(read.length * N * K);
        read.forEach((part, i) => stacked.set(part, i * N * K));
        return convert(stacked, read.length * N);
      }));
      if (--unread === 0) result = undefined;
      return converted;
    };
  }

  /** The layers' float32 weights stacked as they are, under `suffix`, in the shape `dims` (the same bytes). */
  stackedFloat32(layer: LinearLayers, suffix: string, dims: number[]): string {
    return this.g.weight(`${stackedName(layer)}.${suffix}`, 'float32', dims, this.stacked(layer, 1, (w) => w));
  }
}

const stackedName = (layer: LinearLayers) => layer.names.join('+');

/** fp32 as Gemm: transB reads the nn.Linear [out, in] layout as stored, no transposed copy on disk. */
function gemmLinear(weights: CheckpointWeights, x: string, layer: LinearLayers): string {
  const { names, N, K, bias } = layer;
  const weight = names.length === 1 ? weights.tensor(weights.weightName(names[0]!), [N, K]) : weights.stackedFloat32(layer, 'weight', [names.length * N, K]);
  return weights.g.node('Gemm', bias ? [x, weight, bias] : [x, weight], { transB: 1 });
}

/** fp32 as a 1x1 convolution: x [T, K] as an image of K channels, T pixels high; the [N, K] weights as N filters (the same bytes). */
function convLinear(weights: CheckpointWeights, x: string, layer: LinearLayers): string {
  const { g } = weights;
  const { names, N, K, bias } = layer;
  const stackedN = names.length * N;
  const weight = weights.stackedFloat32(layer, 'conv', [stackedN, K, 1, 1]);
  const image = g.node('Reshape', [g.node('Transpose', [x], { perm: [1, 0] }), g.constInt64([1, K, -1, 1])]);
  const y = g.node('Conv', bias ? [image, weight, bias] : [image, weight], { kernel_shape: [1, 1] });
  return g.node('Transpose', [g.node('Reshape', [y, g.constInt64([stackedN, -1])])], { perm: [1, 0] });
}

// q8: int8 weights per output channel and 8-bit activations per token, multiplied exactly in int32 by
// ONNX Runtime's integer GEMM on VNNI/AMX u8 x s8 kernels (measured 1.8 TFLOP/s for prompts, and per token
// 0.71 to 0.75 of the memory bandwidth over 1.2 GB of weights; 8-bit MatMulNBits reached 0.3 TFLOP/s and
// less per token).
// Activations are quantized per token with their own zero point, not per tensor as DynamicQuantizeMatMul
// does, so a token's result never depends on the other tokens of the batch. ONNX Runtime only takes one zero
// point for all rows, so the rows' zero points zp_t are applied after the product, with s_t the row scale,
// s_n the channel scale and S_n the sum of channel n's codes:
//   y_tn = s_t (P_tn s_n) - (s_t zp_t) (S_n s_n) + b_n,   P = codes_t x codes_n.
// QuantizeLinear (one block per row), MatMulIntegerToFloat (P s_n) and one rank-1 Gemm for the offsets keep
// the passes over [tokens, N] few: a 256-token prompt chunk spent 0.66 s in kernels instead of 0.9 s with
// separate Round/Cast/Sub/Mul nodes.
function int8Linear(weights: CheckpointWeights, x: string, layer: LinearLayers): string {
  const { g } = weights;
  const { names, N, K, bias } = layer;
  const weight = weights.stacked(layer, 3, (w, rows): ChannelQuantized => quantizePerChannel(w, rows, K));
  const prefix = `${stackedName(layer)}.int8`;
  const stackedN = names.length * N;
  const codes = g.weight(`${prefix}.codes`, 'int8', [K, stackedN], async () => (await weight()).codes);
  const scales = g.weight(`${prefix}.scales`, 'float32', [stackedN], async () => (await weight()).scales);
  const negatedScaledSums = g.weight(`${prefix}.negated_scaled_code_sums`, 'float32', [1, stackedN], async () => {
    const { codeSums, scales } = await weight();
    return codeSums.map((sum, n) => -sum * scales[n]!);
  });

  const axis = g.constInt64([-1]);
  const zero = g.constFloat(0);
  const negatedMin = g.node('Max', [g.node('Neg', [g.node('ReduceMin', [x, axis], { keepdims: 1 })]), zero]);
  const max = g.node('Max', [g.node('ReduceMax', [x, axis], { keepdims: 1 }), zero]);
  const rowScales = g.node('Mul', [g.node('Max', [g.node('Add', [max, negatedMin]), g.constFloat(1e-30)]), g.constFloat(1 / 255)]);
  const zeroPoints = g.node('Round', [g.node('Div', [negatedMin, rowScales])]);
  const rowCodes = g.node('QuantizeLinear', [x, rowScales, g.node('Cast', [zeroPoints], { to: ELEMENT_TYPE_CODES.uint8 })], {
    axis: 1,
    block_size: K,
  });

  const product = g.node('MatMulIntegerToFloat', [rowCodes, codes, g.constFloat(1), scales], {}, { domain: 'com.microsoft' });
  const rowOffsets = g.node('Mul', [rowScales, zeroPoints]);
  const offsets = g.node('Gemm', bias ? [rowOffsets, negatedScaledSums, bias] : [rowOffsets, negatedScaledSums]);
  return g.node('Add', [g.node('Mul', [product, rowScales]), offsets]);
}

// q4: MatMulNBits in blocks of 32 with zero points. Accuracy level 4 lets it multiply with int8 activations
// (quantized per block of 32 inside the kernel): 0.50 to 0.59 of the memory bandwidth per token, compute-bound
// on these 2 cores, where the float path reached 0.4.
function int4Linear(weights: CheckpointWeights, x: string, layer: LinearLayers): string {
  const { g } = weights;
  const { names, N, K, bias } = layer;
  const bits = 4;
  const weight = weights.stacked(layer, 3, (w, rows): BlockQuantized => quantizeBlockwise(w, rows, K, bits, QUANT_BLOCK_SIZE));
  const blocks = Math.ceil(K / QUANT_BLOCK_SIZE);
  const prefix = `${stackedName(layer)}.q${bits}`;
  const stackedN = names.length * N;
  const inputs = [
    x,
    g.weight(`${prefix}.codes`, 'uint8', [stackedN, blocks, (QUANT_BLOCK_SIZE * bits) / 8], async () => (await weight()).codes),
    g.weight(`${prefix}.scales`, 'float32', [stackedN, blocks], async () => (await weight()).scales),
    g.weight(`${prefix}.zero_points`, 'uint8', [stackedN, Math.ceil((blocks * bits) / 8)], async () => (await weight()).zeroPoints),
  ];
  if (bias) inputs.push('', bias);
  const attributes = { K, N: stackedN, bits, block_size: QUANT_BLOCK_SIZE, accuracy_level: 4 };
  return g.node('MatMulNBits', inputs, attributes, { domain: 'com.microsoft' });
}

// q8's head: int8 logits over the whole vocabulary, then the HEAD_CANDIDATES highest recomputed exactly from
// the float32 rows. Top-1 agreement is lost to the 8-bit activations, not the weights (on tiny-trained an int8
// head agreed on 97.6% of top-1 tokens, near-exact int8 weights on 97.9%, the float32 head on 98.3%), and the
// float32 head read whole was 16% of a token's bytes. Reading 64 of its rows keeps the exact head's choice
// wherever it is among the int8 head's 64 best; the rest of the vocabulary keeps int8 logits.
function rescoredHead(weights: CheckpointWeights, x: string, layer: LinearLayers): string {
  const { g } = weights;
  const { N, K } = layer;
  const approximate = int8Linear(weights, x, layer);
  const [, candidates] = g.nodeOutputs('TopK', [approximate, g.constInt64([Math.min(HEAD_CANDIDATES, N)])], 2, { axis: -1 });
  const rows = g.node('Gather', [weights.tensor(weights.weightName('lm_head'), [N, K]), candidates!], { axis: 0 });
  const exact = g.node('MatMul', [rows, g.node('Unsqueeze', [x, g.constInt64([-1])])]);
  return g.node('ScatterElements', [approximate, candidates!, g.node('Squeeze', [exact, g.constInt64([-1])])], { axis: -1 });
}
