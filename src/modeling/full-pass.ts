// One pass over whole sequences with nothing cached, for the graph variants that return hidden states or a task
// head's scores. Generation and scoring go through a KVSession, which keeps a KV cache between calls.
import { closeConvertedModel, type ConvertedModel } from '../convert/index.js';
import { attentionBias, attentionWindow } from '../kv/index.js';
import { type AttentionType, checkForwardInput, type Float32Tensor, type ForwardInput, type GPTNeoConfig, IO } from '../model/index.js';
import { OrtTensor } from '../runtime/tensor.js';

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
  const { batch: B, T, inputIds, attentionMask: mask, positionIds } = checkForwardInput(config, input);
  const ids = Int32Array.from(inputIds.flat());
  const positions = BigInt64Array.from(positionIds.flat(), BigInt);
  const headRows = BigInt64Array.from(rows?.(input.input_ids, T) ?? Array.from({ length: B * T }, (_, i) => i), BigInt);
  const feeds: Record<string, OrtTensor> = {
    [IO.inputsEmbeds]: new OrtTensor('float32', embeddings.lookup(ids), [B, T, config.hidden_size]),
    [IO.positionIds]: new OrtTensor('int64', positions, [B, T]),
    [IO.logitRows]: new OrtTensor('int64', headRows, [headRows.length]),
  };
  for (const kind of new Set(config.attention_layers)) {
    feeds[IO.attentionBias(kind)] = new OrtTensor('float32', fullAttentionBias(config, kind, mask, T), [B, 1, T, T]);
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

/** [batch, 1, T, T]: token t sees token k iff k <= t, t - k < window (local layers) and k is not padding. */
function fullAttentionBias(config: GPTNeoConfig, kind: AttentionType, mask: number[][], T: number): Float32Array {
  const rows = mask.map((row) => ({ past: 0, visible: (slot: number) => row[slot] === 1 }));
  return attentionBias(rows, T, 0, attentionWindow(kind, config.window_size));
}

/**
 * A graph variant opened on first use (the one with every hidden state as an output, which the class's own graph
 * leaves out): a failed conversion is not kept, so the next call tries again; close() closes it if it opened.
 */
export class LazyVariant {
  private opened?: Promise<ConvertedModel>;

  constructor(private readonly open: () => Promise<ConvertedModel>) {}

  get(): Promise<ConvertedModel> {
    return (this.opened ??= this.open().catch((error: unknown) => {
      this.opened = undefined;
      throw error;
    }));
  }

  async close(): Promise<void> {
    const model = await this.opened?.catch(() => undefined);
    if (model) await closeConvertedModel(model);
  }
}
