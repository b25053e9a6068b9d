// A micro-batch as the training graphs take it: checked against the model, its labels turned into the loss's
// targets and weights, and the model's own inputs (embeddings, positions, attention masks, an empty KV cache).
import { attentionBias, attentionWindow } from '../kv/index.js';
import { checkTokenIds, type GPTNeoConfig, IO } from '../model/index.js';
import { OrtTensor } from '../runtime/session.js';
import { lookupEmbeddings } from './embeddings.js';
import { TrainingInputError } from './errors.js';
import { TRAIN_IO } from './graph.js';

export interface TrainingBatch {
  input_ids: number[][];
  /** HF's causal-LM labels: position t is predicted from tokens up to t - 1; -100 is not scored. */
  labels: number[][];
}

export interface GraphBatch {
  B: number;
  T: number;
  /** B * T: row b*T + t is position t of sequence b. */
  rows: number;
  ids: number[];
  /** The label each row predicts (any valid id where the row is not scored). */
  targets: BigInt64Array;
  /** 1 / (scored rows x micro-batches) where a row is scored, 0 elsewhere: the loss is a weighted sum. */
  weights: Float32Array;
  scored: number;
  /** The model's inputs by graph input name (IO). */
  modelInputs: Record<string, OrtTensor>;
}

/** `batch` for the graphs; `parts` is how many micro-batches the step averages over. */
export function graphBatch(batch: TrainingBatch, config: GPTNeoConfig, parts: number, wte: Float32Array): GraphBatch {
  const { B, T } = checkBatch(batch, config);
  const { hidden_size: C, num_heads: H, num_layers: L } = config;
  const rows = B * T;
  const ids = batch.input_ids.flat();

  // Row b*T + t predicts labels[b][t + 1]; the last position of a row predicts nothing.
  const targets = new BigInt64Array(rows);
  const weights = new Float32Array(rows);
  let scored = 0;
  batch.labels.forEach((row, b) => {
    for (let t = 0; t + 1 < T; t++) {
      if (row[t + 1] === -100) continue;
      targets[b * T + t] = BigInt(row[t + 1]!);
      weights[b * T + t] = 1;
      scored++;
    }
  });
  if (scored === 0) throw new TrainingInputError('the batch has no labels to score (every shifted label is -100)');
  for (let i = 0; i < rows; i++) weights[i]! /= scored * parts;

  const modelInputs: Record<string, OrtTensor> = {
    [IO.inputsEmbeds]: new OrtTensor('float32', lookupEmbeddings(wte, ids, C), [B, T, C]),
    [IO.positionIds]: new OrtTensor('int64', BigInt64Array.from({ length: rows }, (_, i) => BigInt(i % T)), [B, T]),
  };
  // Training attends only to its own block, so the KV cache holds nothing; it is given one masked slot rather than
  // none because ONNX Runtime's FusedMatMul (the backward of q k^T) leaves its output uninitialised when the inner
  // dimension is 0. A masked slot has probability exactly 0, so it adds exactly 0 to every gradient.
  const blockRows = Array.from({ length: B }, () => ({ past: 0 }));
  for (const kind of new Set(config.attention_layers)) {
    const bias = attentionBias(blockRows, T, 1, attentionWindow(kind, config.window_size));
    modelInputs[IO.attentionBias(kind)] = new OrtTensor('float32', bias, [B, 1, T, T + 1]);
  }
  const D = C / H;
  const emptySlot = new Float32Array(B * H * D);
  for (let layer = 0; layer < L; layer++) {
    modelInputs[IO.cachedKeys(layer)] = new OrtTensor('float32', emptySlot, [B, H, D, 1]);
    modelInputs[IO.cachedValues(layer)] = new OrtTensor('float32', emptySlot, [B, H, 1, D]);
  }
  return { B, T, rows, ids, targets, weights, scored, modelInputs };
}

/** The head graph's inputs for rows [first, end) of the batch, `leaving` the stream leaving the last block. */
export function lossChunkInputs(batch: GraphBatch, leaving: Float32Array, first: number, end: number, config: GPTNeoConfig): Record<string, OrtTensor> {
  const { hidden_size: C, num_layers: L } = config;
  const n = end - first;
  return {
    [IO.residual(L)]: new OrtTensor('float32', leaving.subarray(first * C, end * C), [1, n, C]),
    [IO.logitRows]: new OrtTensor('int64', BigInt64Array.from({ length: n }, (_, i) => BigInt(i)), [n]),
    [TRAIN_IO.targets]: new OrtTensor('int64', batch.targets.subarray(first, end), [n, 1]),
    [TRAIN_IO.targetWeights]: new OrtTensor('float32', batch.weights.subarray(first, end), [n, 1]),
  };
}

function checkBatch(batch: TrainingBatch, config: GPTNeoConfig): { B: number; T: number } {
  const { input_ids, labels } = batch;
  const B = input_ids.length;
  const T = input_ids[0]?.length ?? 0;
  if (B === 0 || T === 0) throw new TrainingInputError('input_ids is empty');
  if (T > config.max_position_embeddings) {
    throw new TrainingInputError(`sequence length ${T} is over the model's context (max_position_embeddings ${config.max_position_embeddings})`);
  }
  if (input_ids.some((row) => row.length !== T)) throw new TrainingInputError('input_ids rows must all have the same length');
  if (labels.length !== B || labels.some((row) => row.length !== T)) throw new TrainingInputError(`labels must have the shape of input_ids [${B}, ${T}]`);
  checkTokenIds(input_ids, config.vocab_size, 'input_ids', { error: TrainingInputError });
  checkTokenIds(labels, config.vocab_size, 'labels', { error: TrainingInputError, ignore: -100 });
  return { B, T };
}
