import type { GraphBuilder } from '../onnx/graph.js';
import type { Checkpoint } from '../weights/index.js';
import type { GPTNeoConfig } from './config.js';
import type { ParameterSource } from './gpt-neo.js';

export type WeightFormat = 'fp32';

export class WeightMismatchError extends Error {}

/**
 * Parameters read from a Hugging Face checkpoint. Each tensor is checked against the shape the config
 * implies before anything is converted, and read from disk only when the model file is written.
 */
export function checkpointParameters(
  g: GraphBuilder,
  checkpoint: Checkpoint,
  config: GPTNeoConfig,
  source: string,
): ParameterSource {
  const registered = new Set<string>();
  const tensor = (name: string, shape: number[]): string => {
    if (registered.has(name)) return name;
    const info = checkpoint.tensors.get(name);
    if (!info) {
      throw new WeightMismatchError(`${source}: missing tensor '${name}' (expected shape [${shape.join(', ')}])`);
    }
    if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
      throw new WeightMismatchError(
        `${source}: tensor '${name}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`,
      );
    }
    registered.add(name);
    return g.weight(name, 'float32', shape, () => checkpoint.readFloat32(name));
  };
  const weightName = (linear: string) =>
    linear === 'lm_head' && config.tie_word_embeddings ? 'transformer.wte.weight' : `${linear}.weight`;

  return {
    tensor,
    linear(x, name, outFeatures, inFeatures, bias) {
      const inputs = [x, tensor(weightName(name), [outFeatures, inFeatures])];
      if (bias) inputs.push(tensor(`${name}.bias`, [outFeatures]));
      // Gemm with transB reads the nn.Linear [out, in] layout as stored: no transposed copy on disk.
      return g.node('Gemm', inputs, { transB: 1 });
    },
  };
}
