// GPT-Neo as an ONNX graph, read top to bottom like the architecture:
// config -> embeddings -> blocks (attention, MLP) -> final LayerNorm -> tied LM head.
// Everything is 2-D [tokens, hidden] except inside attention, where [batch, heads, seq, head_dim] is needed.
import { ELEMENT_TYPE_CODES, type GraphBuilder } from '../onnx/graph.js';
import type { AttentionType, GPTNeoConfig } from './config.js';

/** Where the graph gets its parameters from: exact tensors, and linear layers in the chosen weight format. */
export interface ParameterSource {
  /** A float32 parameter by its Hugging Face name. */
  tensor(name: string, shape: number[]): string;
  /**
   * y = x W^T + b for a Hugging Face nn.Linear named `name` (weight [out, in]); x is [tokens, in].
   * `lm_head` resolves to `transformer.wte.weight` when the embeddings are tied.
   */
  linear(x: string, name: string, outFeatures: number, inFeatures: number, bias: boolean): string;
  /** Several bias-free linear layers over the same input, computed as one product (one pass over the weights). */
  linears(x: string, names: string[], outFeatures: number, inFeatures: number): string[];
}

/** Bumped whenever the graph or weight layout changes, so stale conversions are never reused. */
export const GRAPH_FORMAT_VERSION = 10;

/** Graph inputs and outputs, named once here and used by the runtime. */
export const IO = {
  /** wte rows of the input tokens [batch, seq, hidden], looked up by the caller (see EmbeddingTable). */
  inputsEmbeds: 'inputs_embeds',
  /** The token embedding table: a weight the graph does not read for the input, only for a tied head. */
  tokenEmbeddings: 'transformer.wte.weight',
  positionIds: 'position_ids',
  /** Which rows of [batch * seq] get logits (all for scoring, the last of each row for generation). */
  logitRows: 'logit_rows',
  attentionBias: (kind: AttentionType) => `attention_bias_${kind}`,
  /** Cached keys, stored transposed [batch, heads, head_dim, capacity] so q k^T needs no transpose of the cache. */
  cachedKeys: (layer: number) => `cached_keys_t.${layer}`,
  /** Cached values [batch, heads, capacity, head_dim]. */
  cachedValues: (layer: number) => `cached_values.${layer}`,
  /** This step's keys [batch, heads, head_dim, seq] and values [batch, heads, seq, head_dim], for the caller's cache. */
  newKeys: (layer: number) => `new_keys_t.${layer}`,
  newValues: (layer: number) => `new_values.${layer}`,
  logits: 'logits',
  /** log(sum(exp(logits))) per row in float64, so log-probabilities need no pass over the vocabulary in JS. */
  logSumExp: 'logsumexp',
  /** HF's hidden_states[i] [tokens, hidden]: the embeddings, the output of blocks 0..L-2, ln_f(block L-1). */
  hiddenStates: (index: number) => `hidden_states.${index}`,
  /**
   * The residual stream entering block `layer` (layer = num_layers: leaving the last block, before ln_f):
   * [batch, seq, hidden] where a model slice starts from it, [tokens, hidden] where one outputs it.
   */
  residual: (layer: number) => `residual.${layer}`,
  /** Question answering: span start and end scores per row [rows, 1]. */
  startLogits: 'start_logits',
  endLogits: 'end_logits',
} as const;

/**
 * The graphs one description of the model builds, by transformers' classes: the causal LM as generation runs it,
 * the same with every hidden state as an output, the bare GPTNeoModel (hidden states only) and the task heads
 * (their num_labels come from the config). Each is converted and cached on its own.
 */
export type GraphVariant =
  | 'causal-lm'
  | 'causal-lm-hidden-states'
  | 'base'
  | 'base-hidden-states'
  | 'sequence-classification'
  | 'token-classification'
  | 'question-answering';

/**
 * A part of the model, for training, which runs it a block at a time (each block's forward is recomputed
 * inside its backward, so only the residual stream between blocks is kept): the embeddings and every block,
 * one block, or the head alone. Inference builds the whole model.
 */
export interface ModelSlice {
  /** Start from the token embeddings; else from the residual stream entering block layers[0] (an input). */
  embeddings: boolean;
  /** The blocks built: [first, end). */
  layers: [number, number];
  /** End with ln_f and the head; else output the residual stream after every block built (and before the first, with the embeddings). */
  head: boolean;
}

/** How the graph is written for a runtime, where an op form differs between ONNX Runtime's builds. */
export interface GraphOptions {
  /**
   * gelu_new as elementwise ops instead of Gelu(approximate='tanh'): onnxruntime-web's WebGPU Gelu ignores the
   * attribute and computes the erf form (logits off by ~2e-3 on the tiny fixtures). The browser build uses it.
   */
  elementwiseGelu?: boolean;
  /** The part of the model built; the whole model when absent. */
  slice?: ModelSlice;
}

export function buildGPTNeoGraph(
  g: GraphBuilder,
  config: GPTNeoConfig,
  params: ParameterSource,
  variant: GraphVariant = 'causal-lm',
  options: GraphOptions = {},
): void {
  const { hidden_size: C, num_heads: H, vocab_size: V, max_position_embeddings: P } = config;
  const D = C / H;
  const slice = options.slice ?? { embeddings: true, layers: [0, config.num_layers], head: true };
  const [firstLayer, endLayer] = slice.layers;

  // ---- inputs
  const inputsEmbeds = g.input(slice.embeddings ? IO.inputsEmbeds : IO.residual(firstLayer), 'float32', ['batch', 'seq', C]);
  const positionIds = g.input(IO.positionIds, 'int64', ['batch', 'seq']);
  const logitRows = g.input(IO.logitRows, 'int64', ['rows']);
  // The KV cache lives outside the graph in preallocated buffers that the caller updates with each step's new
  // keys and values, so no step copies the whole cache. Attention runs over [cached slots, new tokens]; an
  // additive mask [batch, 1, seq, capacity + seq] (0 or float32 min) encodes causality, the local window,
  // padding and unused cache slots. Local layers only ever cache their window (a ring buffer).
  const bias = Object.fromEntries(
    [...new Set(config.attention_layers)].map((kind) => [
      kind,
      g.input(IO.attentionBias(kind), 'float32', ['batch', 1, 'seq', `cache_${kind}+seq`]),
    ]),
  ) as Record<AttentionType, string>;

  // [batch, seq] and [batch, seq, heads, head_dim] as runtime shapes, for splitting [tokens, hidden] into heads.
  const batchAndSeq = g.node('Slice', [g.node('Shape', [inputsEmbeds]), g.constInt64([0]), g.constInt64([2])]);
  const headsShape = g.node('Concat', [batchAndSeq, g.constInt64([H, D])], { axis: 0 });
  const tokensShape = g.constInt64([-1, C]);

  // ---- embeddings: h = wte[input_ids] + wpe[position_ids]
  // The caller gathers the wte rows from the weights file (only the rows of the batch's tokens are read; a
  // memory-mapped Gather pulled most of the 0.4 GB table into RAM for a long prompt). wte stays a weight
  // for that, and for the tied head.
  let h = inputsEmbeds;
  if (slice.embeddings) {
    params.tensor(IO.tokenEmbeddings, [V, C]);
    const wpe = params.tensor('transformer.wpe.weight', [P, C]);
    h = g.node('Add', [inputsEmbeds, g.node('Gather', [wpe, positionIds])]);
  }
  h = g.node('Reshape', [h, tokensShape]);

  const layerNorm = (x: string, name: string) =>
    g.node('LayerNormalization', [x, params.tensor(`${name}.weight`, [C]), params.tensor(`${name}.bias`, [C])], {
      axis: -1,
      epsilon: { float: config.layer_norm_epsilon },
    });

  // [cache capacity, seq] per attention kind, once for all its layers: where the softmax over [cached keys, new
  // keys] splits. The bias is [batch, 1, seq, capacity + seq].
  const seqLength = g.node('Slice', [batchAndSeq, g.constInt64([1]), g.constInt64([2])]);
  const splitSizes = Object.fromEntries(
    Object.entries(bias).map(([kind, kindBias]) => {
      const width = g.node('Slice', [g.node('Shape', [kindBias]), g.constInt64([3]), g.constInt64([4])]);
      return [kind, g.node('Concat', [g.node('Sub', [width, seqLength]), seqLength], { axis: 0 })];
    }),
  ) as Record<AttentionType, string>;

  const splitHeads = (x: string) => g.node('Transpose', [g.node('Reshape', [x, headsShape])], { perm: [0, 2, 1, 3] });

  // ---- attention: q k^T with NO 1/sqrt(head_dim) scaling, float32 softmax over cached and new keys
  const attention = (x: string, layer: number): string => {
    const name = `transformer.h.${layer}.attn.attention`;
    const kind = config.attention_layers[layer]!;
    const [query, key, value] = params.linears(x, ['q_proj', 'k_proj', 'v_proj'].map((p) => `${name}.${p}`), C, C);
    const q = splitHeads(query!);
    const newKeysT = g.node('Transpose', [splitHeads(key!)], { perm: [0, 1, 3, 2] });
    const newValues = splitHeads(value!);
    g.output(newKeysT, IO.newKeys(layer), 'float32', ['batch', H, D, 'seq']);
    g.output(newValues, IO.newValues(layer), 'float32', ['batch', H, 'seq', D]);
    const cachedKeysT = g.input(IO.cachedKeys(layer), 'float32', ['batch', H, D, `cache_${kind}`]);
    const cachedValues = g.input(IO.cachedValues(layer), 'float32', ['batch', H, `cache_${kind}`, D]);

    const scores = g.node('Concat', [g.node('MatMul', [q, cachedKeysT]), g.node('MatMul', [q, newKeysT])], { axis: -1 });
    const probs = g.node('Softmax', [g.node('Add', [scores, bias[kind]])], { axis: -1 });
    const [cachedProbs, newProbs] = g.nodeOutputs('Split', [probs, splitSizes[kind]], 2, { axis: -1 });
    const context = g.node('Add', [g.node('MatMul', [cachedProbs!, cachedValues]), g.node('MatMul', [newProbs!, newValues])]);
    const merged = g.node('Transpose', [context], { perm: [0, 2, 1, 3] });
    return params.linear(g.node('Reshape', [merged, tokensShape]), `${name}.out_proj`, C, C, true);
  };

  // ---- MLP: c_fc -> gelu_new (the tanh approximation) -> c_proj
  const mlp = (x: string, layer: number): string => {
    const name = `transformer.h.${layer}.mlp`;
    const inner = config.intermediate_size;
    const up = params.linear(x, `${name}.c_fc`, inner, C, true);
    const activation = options.elementwiseGelu ? geluTanh(g, up) : g.node('Gelu', [up], { approximate: 'tanh' });
    return params.linear(activation, `${name}.c_proj`, C, inner, true);
  };

  // ---- blocks: pre-LayerNorm, two residuals
  const blockInputs: string[] = [];
  for (let layer = firstLayer; layer < endLayer; layer++) {
    blockInputs.push(h);
    h = g.node('Add', [h, attention(layerNorm(h, `transformer.h.${layer}.ln_1`), layer)]);
    h = g.node('Add', [h, mlp(layerNorm(h, `transformer.h.${layer}.ln_2`), layer)]);
  }
  if (!slice.head) {
    const stream = [...blockInputs, h].slice(slice.embeddings ? 0 : 1);
    const first = slice.embeddings ? firstLayer : firstLayer + 1;
    stream.forEach((state, i) => g.output(state, IO.residual(first + i), 'float32', ['tokens', C]));
    return;
  }

  // ---- head: final LayerNorm, then lm_head (tied to wte unless the config unties it) or a task head
  const normalized = layerNorm(h, 'transformer.ln_f');
  // Every hidden state a graph outputs is kept whole for the caller (in fresh memory, not the runtime's reused
  // buffers), which made a full pass of the bare model half again as slow: the variants that need only the last one
  // output only it, and their *-hidden-states twins serve output_hidden_states.
  if (variant === 'base') g.output(normalized, IO.hiddenStates(config.num_layers), 'float32', ['tokens', C]);
  else if (variant !== 'causal-lm') {
    [...blockInputs, normalized].forEach((state, i) => g.output(state, IO.hiddenStates(i), 'float32', ['tokens', C]));
  }
  const last = g.node('Gather', [normalized, logitRows], { axis: 0 });
  if (variant !== 'causal-lm' && variant !== 'causal-lm-hidden-states') return taskHead(g, params, variant, last, C, config.num_labels);
  languageModelHead(g, params, last, V, C);
}

/** lm_head's logits, and log(sum(exp(logits))) per row for log-probabilities and the loss. */
function languageModelHead(g: GraphBuilder, params: ParameterSource, x: string, V: number, C: number): void {
  const logits = params.linear(x, 'lm_head', V, C, false);
  g.output(logits, IO.logits, 'float32', ['rows', V]);
  // Exponentials in float32 (fast), their sum in float64: a float32 sum over 50k terms drifts by ~5e-5,
  // more than the loss tolerance allows.
  const max = g.node('ReduceMax', [logits, g.constInt64([-1])], { keepdims: 1 });
  const exps = g.node('Cast', [g.node('Exp', [g.node('Sub', [logits, max])])], { to: ELEMENT_TYPE_CODES.float64 });
  const sum = g.node('ReduceSum', [exps, g.constInt64([-1])], { keepdims: 1 });
  const logSumExp = g.node('Add', [g.node('Log', [sum]), g.node('Cast', [max], { to: ELEMENT_TYPE_CODES.float64 })]);
  g.output(g.node('Squeeze', [logSumExp, g.constInt64([-1])]), IO.logSumExp, 'float64', ['rows']);
}

/** gelu_new: 0.5 x (1 + tanh(sqrt(2 / pi) (x + 0.044715 x^3))). */
function geluTanh(g: GraphBuilder, x: string): string {
  const cubic = g.node('Mul', [g.node('Mul', [g.node('Mul', [x, x]), x]), g.constFloat(0.044715)]);
  const inner = g.node('Mul', [g.node('Add', [x, cubic]), g.constFloat(Math.sqrt(2 / Math.PI))]);
  const gate = g.node('Add', [g.node('Tanh', [inner]), g.constFloat(1)]);
  return g.node('Mul', [g.node('Mul', [x, gate]), g.constFloat(0.5)]);
}

/** transformers' task heads: one linear layer over the final hidden states of the rows asked for. */
function taskHead(g: GraphBuilder, params: ParameterSource, variant: GraphVariant, x: string, C: number, labels: number): void {
  switch (variant) {
    case 'sequence-classification': // rows: each sequence's last token that is not padding
      g.output(params.linear(x, 'score', labels, C, false), IO.logits, 'float32', ['rows', labels]);
      break;
    case 'token-classification':
      g.output(params.linear(x, 'classifier', labels, C, true), IO.logits, 'float32', ['rows', labels]);
      break;
    case 'question-answering': {
      const [start, end] = g.nodeOutputs('Split', [params.linear(x, 'qa_outputs', 2, C, true), g.constInt64([1, 1])], 2, { axis: -1 });
      g.output(start!, IO.startLogits, 'float32', ['rows', 1]);
      g.output(end!, IO.endLogits, 'float32', ['rows', 1]);
      break;
    }
  }
}
