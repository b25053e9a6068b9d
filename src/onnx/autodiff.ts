// Reverse-mode differentiation of a graph built with GraphBuilder: every op the model uses on a path from its
// parameters to its outputs has a gradient rule here, written with ordinary ONNX (and ONNX Runtime contrib)
// ops, so the backward pass is appended to the very graph the model description built and runs in the same
// ONNX Runtime session. onnxruntime-node has no training API; this is what replaces it.
import onnxProto from 'onnx-proto';
import type { GraphBuilder } from './graph.js';

const { onnx } = onnxProto;

type NodeProto = GraphBuilder['nodes'][number];

/** A gradient rule: given the node and the gradients of its outputs, the gradients of the inputs asked for. */
type GradientRule = (context: RuleContext) => Array<string | undefined>;

interface RuleContext {
  g: GraphBuilder;
  node: NodeProto;
  /** The gradient of each output (a zero tensor stands in for outputs nothing depends on). */
  outputGradients: string[];
  /** Whether input i needs a gradient. */
  wants: (input: number) => boolean;
  attribute: (name: string) => number | number[] | string | undefined;
  /** The rank of a graph input or weight, for rules that must know it. */
  rankOf: (value: string) => number;
}

export class GradientError extends Error {}

/** Ops whose outputs carry no gradient (shape arithmetic, integer results). */
const CONSTANT_OPS = new Set(['Shape', 'ConstantOfShape', 'Size', 'Range', 'Equal', 'Not', 'Less', 'Greater', 'ArgMax']);

/**
 * Appends the backward pass of `g` to `g`: starting from `seeds` (value -> gradient of the objective with
 * respect to it), returns the gradient of every value in `wrt`. Contributions of a value used several times
 * (a tied weight, a residual stream) are summed.
 */
export function appendGradients(g: GraphBuilder, seeds: ReadonlyMap<string, string>, wrt: readonly string[]): Map<string, string> {
  const forward = g.nodes.slice();
  const requiresGradient = new Set(wrt);
  for (const node of forward) {
    if (CONSTANT_OPS.has(node.opType)) continue;
    if ((node.input ?? []).some((input) => requiresGradient.has(input))) for (const output of node.output ?? []) requiresGradient.add(output);
  }

  const contributions = new Map<string, string[]>();
  const contribute = (value: string, gradient: string) => {
    const list = contributions.get(value);
    if (list) list.push(gradient);
    else contributions.set(value, [gradient]);
  };
  // Summed when first read, after every consumer (later in the graph) has contributed.
  const gradientOf = (value: string): string | undefined => {
    const list = contributions.get(value);
    if (!list) return undefined;
    const total = list.length === 1 ? list[0]! : g.node('Sum', list);
    contributions.set(value, [total]);
    return total;
  };
  for (const [value, gradient] of seeds) contribute(value, gradient);

  const ranks = new Map<string, number>([...g.inputs, ...g.weights].map((info) => [info.name, info.dims.length]));
  for (let n = forward.length - 1; n >= 0; n--) {
    const node = forward[n]!;
    const inputs = node.input ?? [];
    const outputs = node.output ?? [];
    if (!inputs.some((input) => requiresGradient.has(input))) continue;
    const gradients = outputs.map(gradientOf);
    if (gradients.every((gradient) => gradient === undefined)) continue;
    const rule = RULES[node.opType];
    if (!rule) throw new GradientError(`no gradient rule for ONNX op '${node.opType}' (node ${node.name})`);
    const outputGradients = gradients.map(
      (gradient, i) => gradient ?? g.node('ConstantOfShape', [g.node('Shape', [outputs[i]!])]),
    );
    const inputGradients = rule({
      g,
      node,
      outputGradients,
      wants: (i) => requiresGradient.has(inputs[i] ?? ''),
      attribute: (name) => attributeValue(node, name),
      rankOf: (value) => {
        const rank = ranks.get(value);
        if (rank === undefined) throw new GradientError(`${node.opType} gradient needs the rank of '${value}', which is not a graph input or weight`);
        return rank;
      },
    });
    inputGradients.forEach((gradient, i) => {
      if (gradient !== undefined && requiresGradient.has(inputs[i]!)) contribute(inputs[i]!, gradient);
    });
  }

  return new Map(
    wrt.map((value) => {
      const gradient = gradientOf(value);
      if (gradient === undefined) throw new GradientError(`'${value}' does not affect the objective: it has no gradient`);
      return [value, gradient];
    }),
  );
}

/**
 * Keeps only the nodes, constants and inputs that the given outputs need, and makes them the graph's outputs
 * (a training graph does not compute the inference graph's KV-cache outputs).
 */
export function keepOnlyOutputs(g: GraphBuilder, outputs: GraphBuilder['outputs']): void {
  const needed = new Set(outputs.map((output) => output.name));
  const kept: NodeProto[] = [];
  for (let n = g.nodes.length - 1; n >= 0; n--) {
    const node = g.nodes[n]!;
    if (!(node.output ?? []).some((output) => needed.has(output))) continue;
    kept.push(node);
    for (const input of node.input ?? []) if (input) needed.add(input);
  }
  g.nodes.splice(0, g.nodes.length, ...kept.reverse());
  g.outputs.splice(0, g.outputs.length, ...outputs);
  const keptConstants = g.constants.filter((constant) => needed.has(constant.name ?? ''));
  g.constants.splice(0, g.constants.length, ...keptConstants);
  const keptInputs = g.inputs.filter((input) => needed.has(input.name));
  g.inputs.splice(0, g.inputs.length, ...keptInputs);
}

function attributeValue(node: NodeProto, name: string): number | number[] | string | undefined {
  const attribute = (node.attribute ?? []).find((a) => a.name === name);
  if (!attribute) return undefined;
  const { AttributeType } = onnx.AttributeProto;
  switch (attribute.type) {
    case AttributeType.INTS:
      return (attribute.ints ?? []).map(Number);
    case AttributeType.STRING:
      return Buffer.from(attribute.s ?? []).toString();
    case AttributeType.FLOAT:
      return attribute.f ?? 0;
    default:
      return Number(attribute.i ?? 0);
  }
}

/** y = a b over the last two axes (batch axes equal): da = dy b^T, db = a^T dy, without materialised transposes. */
function matMulGradients({ g, node, outputGradients: [dy], wants }: RuleContext) {
  const [a, b] = node.input as [string, string];
  return [
    wants(0) ? g.node('FusedMatMul', [dy!, b], { transB: 1 }, { domain: 'com.microsoft' }) : undefined,
    wants(1) ? g.node('FusedMatMul', [a, dy!], { transA: 1 }, { domain: 'com.microsoft' }) : undefined,
  ];
}

const RULES: Record<string, GradientRule> = {
  Identity: ({ outputGradients: [dy] }) => [dy],
  // The model only adds tensors of equal shapes on paths that need gradients (broadcast additions such as the
  // attention bias add a constant); Gemm's bias has its own rule.
  Add: ({ outputGradients: [dy] }) => [dy, dy],
  Sub: ({ g, outputGradients: [dy], wants }) => [dy, wants(1) ? g.node('Neg', [dy!]) : undefined],
  Mul: ({ g, node, outputGradients: [dy], wants }) => {
    const [a, b] = node.input as [string, string];
    return [wants(0) ? g.node('Mul', [dy!, b]) : undefined, wants(1) ? g.node('Mul', [dy!, a]) : undefined];
  },
  MatMul: matMulGradients,
  // y = alpha A op(B) + beta C, as the graph uses it: alpha = beta = 1, A not transposed, C a row of biases.
  Gemm: ({ g, node, outputGradients: [dy], wants, attribute, rankOf }) => {
    const [a, b, c] = node.input as [string, string, string | undefined];
    if (attribute('transA') || (attribute('alpha') ?? 1) !== 1 || (attribute('beta') ?? 1) !== 1) {
      throw new GradientError(`Gemm gradient supports only alpha = beta = 1 without transA (node ${node.name})`);
    }
    const transB = attribute('transB') === 1;
    const da = wants(0) ? g.node('Gemm', [dy!, b], transB ? {} : { transB: 1 }) : undefined;
    const db = wants(1) ? (transB ? g.node('Gemm', [dy!, a], { transA: 1 }) : g.node('Gemm', [a, dy!], { transA: 1 })) : undefined;
    const dc =
      c && wants(2) ? g.node('ReduceSum', [dy!, g.constInt64([0])], { keepdims: rankOf(c) === 2 ? 1 : 0 }) : undefined;
    return [da, db, dc];
  },
  Transpose: ({ g, outputGradients: [dy], attribute }) => {
    const perm = attribute('perm') as number[];
    const inverse = perm.map((_, axis) => perm.indexOf(axis));
    return [g.node('Transpose', [dy!], { perm: inverse })];
  },
  Reshape: ({ g, node, outputGradients: [dy] }) => [g.node('Reshape', [dy!, g.node('Shape', [node.input![0]!])])],
  Concat: ({ g, node, outputGradients: [dy], attribute }) => {
    const axis = attribute('axis') as number;
    const inputs = node.input as string[];
    const sizes = g.node(
      'Concat',
      inputs.map((input) => g.node('Gather', [g.node('Shape', [input]), g.constInt64([axis])])),
      { axis: 0 },
    );
    return g.nodeOutputs('Split', [dy!, sizes], inputs.length, { axis });
  },
  Split: ({ g, outputGradients, attribute }) => [g.node('Concat', outputGradients, { axis: attribute('axis') as number })],
  // Rows gathered along axis 0 (an embedding lookup, a choice of rows): their gradients are added back into
  // the rows they came from, repeated rows summing.
  Gather: ({ g, node, outputGradients: [dy], attribute }) => {
    if (attribute('axis')) throw new GradientError(`Gather gradient supports only axis 0 (node ${node.name})`);
    const [data, indices] = node.input as [string, string];
    const zeros = g.node('ConstantOfShape', [g.node('Shape', [data])]);
    const where = g.node('Unsqueeze', [indices, g.constInt64([-1])]);
    return [g.node('ScatterND', [zeros, where, dy!], { reduction: 'add' })];
  },
  // y = softmax(x): dx = y (dy - sum(dy y)) over the softmax axis.
  Softmax: ({ g, node, outputGradients: [dy], attribute }) => {
    const axis = attribute('axis') ?? -1;
    if (axis !== -1) throw new GradientError(`Softmax gradient supports only the last axis (node ${node.name})`);
    const y = node.output![0]!;
    const dot = g.node('ReduceSum', [g.node('Mul', [dy!, y]), g.constInt64([-1])], { keepdims: 1 });
    return [g.node('Mul', [y, g.node('Sub', [dy!, dot])])];
  },
  // Over the last axis: x^ = (x - mean) / sqrt(var + eps), y = x^ scale + bias. The statistics are recomputed
  // (cheap next to the matrix products). dx = (g - mean(g) - x^ mean(g x^)) / sqrt(var + eps), g = dy scale.
  LayerNormalization: ({ g, node, outputGradients: [dy], wants, attribute }) => {
    const axis = attribute('axis') ?? -1;
    if (axis !== -1) throw new GradientError(`LayerNormalization gradient supports only the last axis (node ${node.name})`);
    const [x, scale] = node.input as [string, string];
    const epsilon = (attribute('epsilon') as number | undefined) ?? 1e-5;
    const last = g.constInt64([-1]);
    const mean = (v: string) => g.node('ReduceMean', [v, last], { keepdims: 1 });
    const centered = g.node('Sub', [x, mean(x)]);
    const inverseStd = g.node('Reciprocal', [
      g.node('Sqrt', [g.node('Add', [mean(g.node('Mul', [centered, centered])), g.constFloat(epsilon)])]),
    ]);
    const normalized = g.node('Mul', [centered, inverseStd]);
    // Sums over every leading axis: the gradient is viewed as [rows, features].
    const rows = g.node('Concat', [g.constInt64([-1]), g.node('Shape', [scale])], { axis: 0 });
    const sumRows = (v: string) => g.node('ReduceSum', [g.node('Reshape', [v, rows]), g.constInt64([0])], { keepdims: 0 });
    const scaled = g.node('Mul', [dy!, scale]);
    const dx = wants(0)
      ? g.node('Mul', [
          inverseStd,
          g.node('Sub', [
            g.node('Sub', [scaled, mean(scaled)]),
            g.node('Mul', [normalized, mean(g.node('Mul', [scaled, normalized]))]),
          ]),
        ])
      : undefined;
    return [dx, wants(1) ? sumRows(g.node('Mul', [dy!, normalized])) : undefined, wants(2) ? sumRows(dy!) : undefined];
  },
  // gelu_new: y = x/2 (1 + tanh(u)), u = k (x + c x^3), k = sqrt(2/pi), c = 0.044715.
  // dy/dx = (1 + t)/2 + x/2 (1 - t^2) k (1 + 3 c x^2), t = tanh(u).
  Gelu: ({ g, node, outputGradients: [dy], attribute }) => {
    if (attribute('approximate') !== 'tanh') throw new GradientError(`Gelu gradient is written for approximate = tanh (node ${node.name})`);
    const x = node.input![0]!;
    const k = Math.sqrt(2 / Math.PI);
    const c = 0.044715;
    const squared = g.node('Mul', [x, x]);
    const inner = g.node('Mul', [x, g.node('Add', [g.constFloat(k), g.node('Mul', [squared, g.constFloat(k * c)])])]);
    const t = g.node('Tanh', [inner]);
    const half = g.constFloat(0.5);
    const slope = g.node('Add', [g.constFloat(k), g.node('Mul', [squared, g.constFloat(3 * k * c)])]);
    const outer = g.node('Mul', [g.node('Mul', [x, half]), g.node('Mul', [g.node('Sub', [g.constFloat(1), g.node('Mul', [t, t])]), slope])]);
    const derivative = g.node('Add', [g.node('Mul', [g.node('Add', [g.constFloat(1), t]), half]), outer]);
    return [g.node('Mul', [dy!, derivative])];
  },
};

/** The ops appendGradients can differentiate through (besides those whose outputs carry no gradient). */
export const DIFFERENTIABLE_OPS: readonly string[] = Object.keys(RULES);
