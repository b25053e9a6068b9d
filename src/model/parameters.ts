import { ELEMENT_TYPE_CODES, type GraphBuilder } from '../onnx/graph.js';
import type { Checkpoint } from '../weights/index.js';
import type { GPTNeoConfig } from './config.js';
import type { ParameterSource } from './gpt-neo.js';
import { type BlockQuantized, type ChannelQuantized, quantizeBlockwise, quantizePerChannel } from './quantize.js';

/**
 * fp32: weights as float32. q8: the blocks' linear layers in int8 per output channel, activations in 8 bits per
 * token; the tied head stays exact. q4: every linear layer and the head in 4 bits per block of 32.
 * Embeddings and LayerNorms stay exact in every format.
 */
export type WeightFormat = 'fp32' | 'q8' | 'q4';
export const WEIGHT_FORMATS: readonly WeightFormat[] = ['fp32', 'q8', 'q4'];
const QUANT_BLOCK_SIZE = 32;

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
): ParameterSource {
  const registered = new Set<string>();
  const check = (name: string, shape: number[]) => {
    const info = checkpoint.tensors.get(name);
    if (!info) {
      throw new WeightMismatchError(`${source}: missing tensor '${name}' (expected shape [${shape.join(', ')}])`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new WeightMismatchError(
        `${source}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
  };
  const tensor = (name: string, shape: number[]): string => {
    if (registered.has(name)) return name;
    check(name, shape);
    registered.add(name);
    return g.weight(name, 'float32', shape, () => checkpoint.readFloat32(name));
  };

  const weightName = (linear: string) =>
    linear === 'lm_head' && config.tie_word_embeddings ? 'transformer.wte.weight' : `${linear}.weight`;

  // q8: int8 weights per output channel and 8-bit activations per token, multiplied exactly in int32 by
  // MatMulInteger, which ONNX Runtime runs on its VNNI/AMX u8 x s8 kernels (measured 1.8 TFLOP/s for prompts and
  // 0.9 of the memory bandwidth per token, where 8-bit MatMulNBits reached 0.3 TFLOP/s and 0.75).
  // Activations are quantized per token with their own zero point, not per tensor as DynamicQuantizeMatMul
  // does, so a token's result never depends on the other tokens of the batch. ONNX Runtime only takes one zero
  // point for all rows, so the rows' zero points are applied after the product:
  //   sum_k (a_k - zp) w_k = sum_k a_k w_k - zp * sum_k w_k.
  // q, k and v share their input's codes.
  const rowCodes = new Map<string, { codes: string; scales: string; zeroPoints: string }>();
  const quantizeRows = (x: string) => {
    let quantized = rowCodes.get(x);
    if (!quantized) {
      const axis = g.constInt64([-1]);
      const zero = g.constFloat(0);
      const min = g.node('Min', [g.node('ReduceMin', [x, axis], { keepdims: 1 }), zero]);
      const max = g.node('Max', [g.node('ReduceMax', [x, axis], { keepdims: 1 }), zero]);
      const scales = g.node('Max', [g.node('Mul', [g.node('Sub', [max, min]), g.constFloat(1 / 255)]), g.constFloat(1e-30)]);
      const zeroPoints = g.node('Round', [g.node('Div', [g.node('Neg', [min]), scales])]);
      const shifted = g.node('Add', [g.node('Round', [g.node('Div', [x, scales])]), zeroPoints]);
      const codes = g.node('Cast', [g.node('Clip', [shifted, zero, g.constFloat(255)])], { to: ELEMENT_TYPE_CODES.uint8 });
      quantized = { codes, scales, zeroPoints };
      rowCodes.set(x, quantized);
    }
    return quantized;
  };
  const int8Linear = (x: string, linear: string, N: number, K: number, bias: string | undefined) => {
    const name = weightName(linear);
    check(name, [N, K]);
    let lastRead: Promise<ChannelQuantized> | undefined;
    const weight = () => (lastRead ??= checkpoint.readFloat32(name).then((w) => quantizePerChannel(w, N, K)));
    const prefix = `${linear}.int8`;
    const codes = g.weight(`${prefix}.codes`, 'int8', [K, N], async () => (await weight()).codes);
    const scales = g.weight(`${prefix}.scales`, 'float32', [N], async () => (await weight()).scales);
    const codeSums = g.weight(`${prefix}.code_sums`, 'float32', [N], async () => (await weight()).codeSums);
    const rows = quantizeRows(x);
    const product = g.node('Cast', [g.node('MatMulInteger', [rows.codes, codes])], { to: ELEMENT_TYPE_CODES.float32 });
    const centered = g.node('Sub', [product, g.node('Mul', [rows.zeroPoints, codeSums])]);
    const y = g.node('Mul', [g.node('Mul', [centered, scales]), rows.scales]);
    return bias ? g.node('Add', [y, bias]) : y;
  };

  // q4: MatMulNBits in blocks of 32 with zero points. Accuracy level 4 lets it multiply with int8 activations
  // (quantized per block of 32 inside the kernel): 0.6 of the memory bandwidth per token, where the float path
  // reached 0.4. The writer asks for codes, scales and zero points one after another, so each weight is read
  // and quantized once.
  const int4Linear = (x: string, linear: string, N: number, K: number, bias: string | undefined) => {
    const name = weightName(linear);
    check(name, [N, K]);
    const bits = 4;
    let lastRead: Promise<BlockQuantized> | undefined;
    const weight = () => (lastRead ??= checkpoint.readFloat32(name).then((w) => quantizeBlockwise(w, N, K, bits, QUANT_BLOCK_SIZE)));
    const blocks = Math.ceil(K / QUANT_BLOCK_SIZE);
    const prefix = `${linear}.q${bits}`;
    const inputs = [
      x,
      g.weight(`${prefix}.codes`, 'uint8', [N, blocks, (QUANT_BLOCK_SIZE * bits) / 8], async () => (await weight()).codes),
      g.weight(`${prefix}.scales`, 'float32', [N, blocks], async () => (await weight()).scales),
      g.weight(`${prefix}.zero_points`, 'uint8', [N, Math.ceil((blocks * bits) / 8)], async () => (await weight()).zeroPoints),
    ];
    if (bias) inputs.push('', bias);
    const attributes = { K, N, bits, block_size: QUANT_BLOCK_SIZE, accuracy_level: 4 };
    return g.node('MatMulNBits', inputs, attributes, { domain: 'com.microsoft' });
  };

  return {
    tensor,
    linear(x, name, outFeatures, inFeatures, withBias) {
      const bias = withBias ? tensor(`${name}.bias`, [outFeatures]) : undefined;
      // q8 keeps the head exact: it is the tied embedding matrix, and per-channel int8 there cost the most top-1
      // agreement (on tiny-trained 97.9% with an 8-bit block-quantized head, 98.3% with the exact one).
      if (format === 'q8' && name !== 'lm_head') return int8Linear(x, name, outFeatures, inFeatures, bias);
      if (format === 'q4') return int4Linear(x, name, outFeatures, inFeatures, bias);
      const inputs = [x, tensor(weightName(name), [outFeatures, inFeatures])];
      if (bias) inputs.push(bias);
      // Gemm with transB reads the nn.Linear [out, in] layout as stored: no transposed copy on disk.
      return g.node('Gemm', inputs, { transB: 1 });
    },
  };
}
