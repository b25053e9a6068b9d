import type { GraphBuilder } from '../onnx/graph.js';
import type { Checkpoint } from '../weights/index.js';
import type { GPTNeoConfig } from './config.js';
import type { ParameterSource } from './gpt-neo.js';
import { type BlockQuantized, quantizeBlockwise } from './quantize.js';

/** fp32: weights as float32. q8 / q4: linear layers quantized in blocks of 32 (embeddings and LayerNorms stay exact). */
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

  // MatMulNBits takes codes, scales and zero points as three initializers; the writer asks for them one
  // after another, so each weight is read and quantized once.
  let lastQuantized: { name: string; result: Promise<BlockQuantized> } | undefined;
  const quantized = (name: string, N: number, K: number, bits: 4 | 8) => {
    if (lastQuantized?.name !== name) {
      const result = checkpoint.readFloat32(name).then((w) => quantizeBlockwise(w, N, K, bits, QUANT_BLOCK_SIZE));
      lastQuantized = { name, result };
    }
    return lastQuantized.result;
  };
  const quantizedLinear = (x: string, linear: string, N: number, K: number, bias: string | undefined, bits: 4 | 8) => {
    const name = weightName(linear);
    check(name, [N, K]);
    const blocks = Math.ceil(K / QUANT_BLOCK_SIZE);
    const prefix = `${linear}.q${bits}`;
    const inputs = [
      x,
      g.weight(`${prefix}.codes`, 'uint8', [N, blocks, (QUANT_BLOCK_SIZE * bits) / 8], async () => (await quantized(name, N, K, bits)).codes),
      g.weight(`${prefix}.scales`, 'float32', [N, blocks], async () => (await quantized(name, N, K, bits)).scales),
      g.weight(`${prefix}.zero_points`, 'uint8', [N, Math.ceil((blocks * bits) / 8)], async () => (await quantized(name, N, K, bits)).zeroPoints),
    ];
    if (bias) inputs.push('', bias);
    return g.node('MatMulNBits', inputs, { K, N, bits, block_size: QUANT_BLOCK_SIZE }, { domain: 'com.microsoft' });
  };

  return {
    tensor,
    linear(x, name, outFeatures, inFeatures, withBias) {
      const bias = withBias ? tensor(`${name}.bias`, [outFeatures]) : undefined;
      if (format !== 'fp32') return quantizedLinear(x, name, outFeatures, inFeatures, bias, format === 'q8' ? 8 : 4);
      const inputs = [x, tensor(weightName(name), [outFeatures, inFeatures])];
      if (bias) inputs.push(bias);
      // Gemm with transB reads the nn.Linear [out, in] layout as stored: no transposed copy on disk.
      return g.node('Gemm', inputs, { transB: 1 });
    },
  };
}
