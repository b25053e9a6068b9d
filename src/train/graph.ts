import { appendGradients, keepOnlyOutputs } from '../onnx/autodiff.js';
import type { GraphBuilder } from '../onnx/graph.js';
import type { GPTNeoConfig } from '../model/config.js';
import { buildGPTNeoGraph, IO } from '../model/gpt-neo.js';
import type { TrainingParameters } from './parameters.js';

/** The training graphs' own inputs and outputs (the model's are in IO). */
export const TRAIN_IO = {
  /** The label each logits row predicts [rows, 1] (any valid id where the row is not scored). */
  targets: 'targets',
  /** 1 / (scored rows) where a row is scored, 0 elsewhere [rows, 1]: the loss is a weighted sum. */
  targetWeights: 'target_weights',
  /** Each row's log-probability of its target [rows, 1]: minus the row's cross-entropy. */
  targetLogProbabilities: 'target_log_probabilities',
  /** The gradient of the loss with respect to a value: an output, or an input where the backward starts from it. */
  gradient: (value: string) => `grad.${value}`,
} as const;

// Training runs the model in pieces built from the same model description as inference (buildGPTNeoGraph with
// a slice), so that the backward pass keeps only the residual stream between blocks, not every activation of
// every block (activation checkpointing, as Hugging Face's gradient_checkpointing):
//   1. the forward pass: embeddings and every block, outputting the residual stream entering each block;
//   2. the head: ln_f, the LM head and the loss, with the backward to the residual stream leaving the last block;
//   3. per block, last to first: the block's forward again from its saved input, then its backward.

/** The forward pass without the head: the residual stream entering every block and leaving the last. */
export function buildResidualStreamGraph(g: GraphBuilder, config: GPTNeoConfig, params: TrainingParameters): void {
  const L = config.num_layers;
  buildGPTNeoGraph(g, config, params, 'causal-lm', { slice: { embeddings: true, layers: [0, L], head: false } });
  keepOnlyOutputs(
    g,
    Array.from({ length: L + 1 }, (_, layer) => ({ name: IO.residual(layer), type: 'float32' as const, dims: ['tokens', config.hidden_size] })),
  );
}

/**
 * The causal-LM loss over the rows of the residual stream leaving the last block, and its backward to that
 * stream and to the head's parameters (ln_f and the LM head, which is wte when tied).
 */
export function buildHeadTrainingGraph(g: GraphBuilder, config: GPTNeoConfig, params: TrainingParameters): void {
  const L = config.num_layers;
  buildGPTNeoGraph(g, config, params, 'causal-lm', { slice: { embeddings: false, layers: [L, L], head: true } });
  const targets = g.input(TRAIN_IO.targets, 'int64', ['rows', 1]);
  const weights = g.input(TRAIN_IO.targetWeights, 'float32', ['rows', 1]);
  const logits = IO.logits;

  // Cross-entropy in float32, as PyTorch computes it: each row's log-probability of its target is an output
  // (the loss is their weighted sum), and d loss / d logits = weight (softmax - onehot(target)). The one-hot is
  // subtracted by scattering p_target - 1 into the probabilities, so only a few [rows, vocab] tensors are alive.
  const logProbabilities = g.node('LogSoftmax', [logits], { axis: -1 });
  g.node('GatherElements', [logProbabilities, targets], { axis: 1 }, { outputs: [TRAIN_IO.targetLogProbabilities] });
  const probabilities = g.node('Exp', [logProbabilities]);
  const targetProbabilities = g.node('GatherElements', [probabilities, targets], { axis: 1 });
  const minusOneHot = g.node('ScatterElements', [probabilities, targets, g.node('Sub', [targetProbabilities, g.constFloat(1)])], { axis: 1 });
  const logitsGradient = g.node('Mul', [minusOneHot, weights]);

  const outputs: GraphBuilder['outputs'] = [{ name: TRAIN_IO.targetLogProbabilities, type: 'float32', dims: ['rows', 1] }];
  appendBackward(g, config, params, new Map([[logits, logitsGradient]]), IO.residual(L), outputs);
}

/**
 * One block's forward from the residual stream entering it, and its backward from the gradient of the stream
 * leaving it (an input) to its parameters and the stream entering it. `layer` names the block whose parameter
 * names the graph's inputs carry; every block of the same layout runs it with its own values.
 */
export function buildBlockTrainingGraph(g: GraphBuilder, config: GPTNeoConfig, params: TrainingParameters, layer: number): void {
  buildGPTNeoGraph(g, config, params, 'causal-lm', { slice: { embeddings: false, layers: [layer, layer + 1], head: false } });
  const leaving = IO.residual(layer + 1);
  const seed = g.input(TRAIN_IO.gradient(leaving), 'float32', ['tokens', config.hidden_size]);
  appendBackward(g, config, params, new Map([[leaving, seed]]), IO.residual(layer), []);
}

/** Appends the backward pass from `seeds` to the trainable parameters and the residual-stream input, and keeps only what it needs. */
function appendBackward(
  g: GraphBuilder,
  config: GPTNeoConfig,
  params: TrainingParameters,
  seeds: ReadonlyMap<string, string>,
  streamInput: string,
  outputs: GraphBuilder['outputs'],
): void {
  const gradients = appendGradients(g, seeds, [...params.trainable.map((t) => t.name), streamInput]);
  for (const [value, gradient] of gradients) {
    const name = TRAIN_IO.gradient(value);
    g.node('Identity', [gradient], {}, { outputs: [name] });
    const shape = value === streamInput ? ['batch', 'seq', config.hidden_size] : params.trainable.find((t) => t.name === value)!.shape;
    outputs.push({ name, type: 'float32', dims: shape });
  }
  keepOnlyOutputs(g, outputs);
}
