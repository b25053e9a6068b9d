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
  /** Each row's log-probability of its target [rows, 1]: minus the row's cross-entropy. */
  targetLogProbabilities: 'target_log_probabilities',
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

  // Cross-entropy in float32, as PyTorch computes it: each row's log-probability of its target is an output
  // (the loss is their weighted sum), and d loss / d logits = weight (softmax - onehot(target)). The one-hot is
  // subtracted by scattering p_target - 1 into the probabilities, so only a few [rows, vocab] tensors (0.4 GB
  // each for 2,048 tokens of GPT-2's vocabulary) are ever alive.
  const logProbabilities = g.node('LogSoftmax', [logits], { axis: -1 });
  g.node('GatherElements', [logProbabilities, targets], { axis: 1 }, { outputs: [TRAIN_IO.targetLogProbabilities] });
  const probabilities = g.node('Exp', [logProbabilities]);
  const targetProbabilities = g.node('GatherElements', [probabilities, targets], { axis: 1 });
  const minusOneHot = g.node('ScatterElements', [probabilities, targets, g.node('Sub', [targetProbabilities, g.constFloat(1)])], { axis: 1 });
  const logitsGradient = g.node('Mul', [minusOneHot, weights]);

  const wrt = [...params.trainable.map((t) => t.name), ...(embeddingsTrain ? [IO.inputsEmbeds] : [])];
  const gradients = appendGradients(g, new Map([[logits, logitsGradient]]), wrt);

  const outputs: GraphBuilder['outputs'] = [{ name: TRAIN_IO.targetLogProbabilities, type: 'float32', dims: ['rows', 1] }];
  for (const [value, gradient] of gradients) {
    const name = TRAIN_IO.gradient(value);
    g.node('Identity', [gradient], {}, { outputs: [name] });
    const shape = value === IO.inputsEmbeds ? ['batch', 'seq', config.hidden_size] : params.trainable.find((t) => t.name === value)!.shape;
    outputs.push({ name, type: 'float32', dims: shape });
  }
  keepOnlyOutputs(g, outputs);
}
