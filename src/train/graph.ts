import { appendGradients, keepOnlyOutputs } from '../onnx/autodiff.js';
import type { GraphBuilder } from '../onnx/graph.js';
import type { GPTNeoConfig } from '../model/config.js';
import { buildGPTNeoGraph, IO } from '../model/gpt-neo.js';
import type { TrainingParameters } from './parameters.js';

/** The training graph's own inputs and outputs (the model's are in IO). */
export const TRAIN_IO = {
  /** The label each logits row predicts [rows, 1] (any valid id where the row is not scored). */
  targets: 'targets',
  /** 1 / (scored rows) where a row is scored, 0 elsewhere [rows, 1]: the loss is a weighted sum. */
  targetWeights: 'target_weights',
  /** Each row's logit of its target [rows, 1]; with IO.logSumExp it gives the cross-entropy. */
  targetLogits: 'target_logits',
  gradient: (value: string) => `grad.${value}`,
} as const;

/**
 * GPT-Neo's forward graph, from the same model description as inference, followed by the causal-LM loss's
 * gradient and the backward pass to every trainable parameter (and to inputs_embeds when the embeddings
 * train: the caller adds those rows into wte's gradient, next to the tied head's contribution).
 */
export function buildTrainingGraph(g: GraphBuilder, config: GPTNeoConfig, params: TrainingParameters, embeddingsTrain: boolean): void {
  buildGPTNeoGraph(g, config, params);
  const targets = g.input(TRAIN_IO.targets, 'int64', ['rows', 1]);
  const weights = g.input(TRAIN_IO.targetWeights, 'float32', ['rows', 1]);
  const logits = IO.logits;

  // d loss / d logits of a weighted mean cross-entropy: weight (softmax(logits) - onehot(target)).
  const probabilities = g.node('Softmax', [logits], { axis: -1 });
  const weightedTargets = g.node('ScatterElements', [g.node('ConstantOfShape', [g.node('Shape', [logits])]), targets, weights], { axis: 1 });
  const logitsGradient = g.node('Sub', [g.node('Mul', [probabilities, weights]), weightedTargets]);

  const wrt = [...params.trainable.map((t) => t.name), ...(embeddingsTrain ? [IO.inputsEmbeds] : [])];
  const gradients = appendGradients(g, new Map([[logits, logitsGradient]]), wrt);

  const outputs: GraphBuilder['outputs'] = [{ name: IO.logSumExp, type: 'float64', dims: ['rows'] }];
  g.node('GatherElements', [logits, targets], { axis: 1 }, { outputs: [TRAIN_IO.targetLogits] });
  outputs.push({ name: TRAIN_IO.targetLogits, type: 'float32', dims: ['rows', 1] });
  for (const [value, gradient] of gradients) {
    const name = TRAIN_IO.gradient(value);
    g.node('Identity', [gradient], {}, { outputs: [name] });
    const shape = value === IO.inputsEmbeds ? ['batch', 'seq', config.hidden_size] : params.trainable.find((t) => t.name === value)!.shape;
    outputs.push({ name, type: 'float32', dims: shape });
  }
  keepOnlyOutputs(g, outputs);
}
