// One pass over whole sequences with nothing cached, for the graph variants that return hidden states or a task
// head's scores. Generation and scoring go through GPTNeoDecoderSession, which keeps a KV cache between calls.
import { OrtTensor } from '../runtime/session.js';
import type { AttentionType, GPTNeoConfig } from './config.js';
import { checkRectangle, HIDDEN, InputError } from './decoder-session.js';
import { IO } from './gpt-neo.js';
import type { ConvertedModel } from './load.js';
import type { Float32Tensor, ForwardInput } from './types.js';

export interface FullPass {
  batch: number;
  seq: number;
  outputs: Record<string, OrtTensor>;
  /** A per-token output [batch * seq, width] as [batch, seq, width]. */
  perToken(name: string): Float32Tensor;
}

/** The graph outputs behind HF's hidden_states: num_layers + 1 of them. */
export function hiddenStateOutputs(config: GPTNeoConfig): string[] {
  return Array.from({ length: config.num_layers + 1 }, (_, i) => IO.hiddenStates(i));
}

/**
 * Runs `input` through the model and returns the outputs named in `fetches`. `rows` picks, from the checked
 * input, the rows of [batch * seq] the head reads (default all, in order).
 */
export async function fullPass(
  model: ConvertedModel,
  input: ForwardInput,
  fetches: string[],
  rows?: (inputIds: number[][], seq: number) => number[],
): Promise<FullPass> {
  const { config, runtime, embeddings } = model;
  const { B, T, ids, positions, mask } = validate(config, input);
  const headRows = BigInt64Array.from(rows?.(input.input_ids, T) ?? Array.from({ length: B * T }, (_, i) => i), BigInt);
  const feeds: Record<string, OrtTensor> = {
    [IO.inputsEmbeds]: new OrtTensor('float32', embeddings.lookup(ids), [B, T, config.hidden_size]),
    [IO.positionIds]: new OrtTensor('int64', positions, [B, T]),
    [IO.logitRows]: new OrtTensor('int64', headRows, [headRows.length]),
  };
  for (const kind of new Set(config.attention_layers)) {
    feeds[IO.attentionBias(kind)] = new OrtTensor('float32', attentionBias(config, kind, mask, T), [B, 1, T, T]);
  }
  const D = config.hidden_size / config.num_heads;
  const empty = new Float32Array(0);
  config.attention_layers.forEach((_, layer) => {
    feeds[IO.cachedKeys(layer)] = new OrtTensor('float32', empty, [B, config.num_heads, D, 0]);
    feeds[IO.cachedValues(layer)] = new OrtTensor('float32', empty, [B, config.num_heads, 0, D]);
  });
  const outputs = await runtime.run(feeds, fetches);
  return {
    batch: B,
    seq: T,
    outputs,
    perToken(name) {
      const data = outputs[name]!.data as Float32Array;
      return { data, dims: [B, T, data.length / (B * T)] };
    },
  };
}

/** Checks the input as HF's forward would (shapes, vocabulary, positions) and lays it out for the graph. */
function validate(config: GPTNeoConfig, input: ForwardInput) {
  const { vocab_size: V, max_position_embeddings: P } = config;
  if (!Array.isArray(input.input_ids) || input.input_ids.length === 0) throw new InputError('input_ids must be a non-empty list of token rows');
  const B = input.input_ids.length;
  const T = checkRectangle(input.input_ids, 'input_ids', B);
  if (T === 0) throw new InputError('input_ids: every row needs at least one token');
  if (T > P) throw new InputError(`sequence length ${T} exceeds max_position_embeddings ${P} of this model`);
  const ids = Int32Array.from(input.input_ids.flat(), (id, i) => {
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new InputError(`input_ids[${Math.floor(i / T)}][${i % T}] = ${id} is outside the vocabulary (0..${V - 1})`);
    }
    return id;
  });
  const mask = input.attention_mask ?? input.input_ids.map((row) => row.map(() => 1));
  if (checkRectangle(mask, 'attention_mask', B) !== T) {
    throw new InputError(`attention_mask rows must have ${T} entries like input_ids, got ${mask[0]!.length}`);
  }
  const positionIds = input.position_ids ?? input.input_ids.map((row) => row.map((_, t) => t));
  if (checkRectangle(positionIds, 'position_ids', B) !== T) throw new InputError(`position_ids rows must have ${T} entries like input_ids`);
  const positions = BigInt64Array.from(positionIds.flat(), (p, i) => {
    if (!Number.isInteger(p) || p < 0 || p >= P) {
      throw new InputError(`position_ids[${Math.floor(i / T)}][${i % T}] = ${p} is outside 0..${P - 1} (max_position_embeddings)`);
    }
    return BigInt(p);
  });
  return { B, T, ids, positions, mask };
}

/** [batch, 1, T, T]: token t sees token k iff k <= t, t - k < window (local layers) and k is not padding. */
function attentionBias(config: GPTNeoConfig, kind: AttentionType, mask: number[][], T: number): Float32Array {
  const window = kind === 'local' ? config.window_size : Infinity;
  const bias = new Float32Array(mask.length * T * T).fill(HIDDEN);
  mask.forEach((row, b) => {
    for (let t = 0; t < T; t++) {
      for (let k = Math.max(0, t - window + 1); k <= t; k++) if (row[k]) bias[(b * T + t) * T + k] = 0;
    }
  });
  return bias;
}
