import { adapterTarget, appendLoraUpdate, initialLoraMatrix, type LoraConfig, loraScaling, loraTensorName } from '../lora/index.js';
import type { GraphBuilder } from '../onnx/graph.js';
import type { GPTNeoConfig } from '../model/config.js';
import type { ParameterSource } from '../model/gpt-neo.js';
import type { Checkpoint } from '../weights/index.js';
import { TrainingInputError } from './errors.js';

/** A tensor the optimizer updates: a graph input fed from JS memory at every step. */
export interface TrainableTensor {
  name: string;
  shape: number[];
  /** Read from the checkpoint, or one of LoRA's matrices, which start as PEFT initialises them. */
  init: 'checkpoint' | 'lora_A' | 'lora_B';
}

export interface TrainingParameters extends ParameterSource {
  /** In the order the model description asked for them: Hugging Face's named_parameters() order. */
  readonly trainable: TrainableTensor[];
  /** LoRA's frozen base weights: graph inputs too, fed from the checkpoint's values, but given no gradient. */
  readonly frozen: Array<{ name: string; shape: number[] }>;
  /** The linear layers that got a LoRA adapter, by module name. */
  readonly adaptedModules: string[];
  /** LoRA targets that matched a linear layer of this graph (known once it is built). */
  readonly matchedTargets: ReadonlySet<string>;
  /** With LoRA dropout: the inputs taking each adapter's dropout mask [tokens, in features] (all ones when evaluating). */
  readonly dropoutMasks: Array<{ name: string; features: number }>;
}

/**
 * The model's parameters for a training graph. Every parameter is a graph input, so the same graph runs with
 * the values the optimizer just wrote, and one graph serves every block of the same layout (training runs the
 * model block by block). Full fine-tuning trains them all. LoRA freezes them and gives each targeted linear
 * layer PEFT's low-rank update, y = x W^T + b + (alpha / r) (x A^T) B^T, with A and B the trainable inputs.
 */
export function trainingParameters(
  g: GraphBuilder,
  config: GPTNeoConfig,
  checkpoint: Checkpoint,
  lora: LoraConfig | undefined,
): TrainingParameters {
  const trainable: TrainableTensor[] = [];
  const frozen: Array<{ name: string; shape: number[] }> = [];
  const adaptedModules: string[] = [];
  const dropoutMasks: Array<{ name: string; features: number }> = [];
  const registered = new Set<string>();
  const matchedTargets = new Set<string>();

  const tensor = (name: string, shape: number[]): string => {
    if (registered.has(name)) return name;
    registered.add(name);
    const info = checkpoint.tensors.get(name);
    if (!info) throw new TrainingInputError(`the checkpoint has no tensor '${name}' (expected shape [${shape.join(', ')}])`);
    if (info.shape.join() !== shape.join()) {
      throw new TrainingInputError(`tensor '${name}' has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
    }
    if (lora) frozen.push({ name, shape });
    else trainable.push({ name, shape, init: 'checkpoint' });
    return g.input(name, 'float32', shape);
  };
  const trainableInput = (name: string, shape: number[], init: TrainableTensor['init']) => {
    trainable.push({ name, shape, init });
    return g.input(name, 'float32', shape);
  };

  const linear = (x: string, module: string, outFeatures: number, inFeatures: number, withBias: boolean): string => {
    const weightName = module === 'lm_head' && config.tie_word_embeddings ? 'transformer.wte.weight' : `${module}.weight`;
    const weight = tensor(weightName, [outFeatures, inFeatures]);
    const inputs = withBias ? [x, weight, tensor(`${module}.bias`, [outFeatures])] : [x, weight];
    const y = g.node('Gemm', inputs, { transB: 1 });
    const target = lora && adapterTarget(module, lora);
    if (!lora || target === undefined) return y;
    matchedTargets.add(target);
    adaptedModules.push(module);
    const a = trainableInput(loraTensorName(module, 'A'), [lora.r, inFeatures], 'lora_A');
    const b = trainableInput(loraTensorName(module, 'B'), [outFeatures, lora.r], 'lora_B');
    let dropoutMask: string | undefined;
    if (lora.dropout > 0) {
      dropoutMask = g.input(`lora_dropout_mask.${module}`, 'float32', ['tokens', inFeatures]);
      dropoutMasks.push({ name: dropoutMask, features: inFeatures });
    }
    return appendLoraUpdate(g, { x, y, a, b, dropoutMask, scaling: loraScaling(lora.r, lora.alpha) });
  };

  return {
    trainable,
    frozen,
    adaptedModules,
    dropoutMasks,
    tensor,
    linear,
    linears: (x, names, outFeatures, inFeatures) => names.map((name) => linear(x, name, outFeatures, inFeatures, false)),
    matchedTargets,
  };
}

/** A trainable tensor's value before the first step: the checkpoint's, or LoRA's initialisation drawn from `random`. */
export async function initialValue(tensor: TrainableTensor, checkpoint: Checkpoint, random: { next(): number }): Promise<Float32Array> {
  if (tensor.init === 'checkpoint') return checkpoint.readFloat32(tensor.name);
  return initialLoraMatrix(tensor.init === 'lora_A' ? 'A' : 'B', tensor.shape, random);
}
