// Each gradient rule of src/onnx/autodiff.ts, op by op, against central finite differences: a tiny graph holding
// the op runs forward and backward in float32 in ONNX Runtime (as training runs it), and the same op runs
// forward in float64 for the differences. The objective is sum_k <seed_k, output_k> with random seeds, so every
// element of every output's gradient takes part.
import { afterAll, describe, expect, it } from 'vitest';
import { appendGradients, DIFFERENTIABLE_OPS, GradientError, keepOnlyOutputs } from '../../src/onnx/autodiff.js';
import { GraphBuilder } from '../../src/onnx/graph.js';
import { serializeOnnxModel } from '../../src/onnx/write.js';
import { OrtTensor, RuntimeSession } from '../../src/runtime/session.js';

type FloatType = 'float32' | 'float64';

interface CaseInput {
  name: string;
  dims: number[];
  /** Integer inputs (indices) take these values and get no gradient. */
  int64?: number[];
  /** A float input that gets no gradient (a mask, a broadcast factor). */
  constant?: boolean;
}

interface GradientCase {
  /** The op whose rule the case checks. */
  op: string;
  /** The use of it the model makes. */
  title: string;
  inputs: CaseInput[];
  /** Shape of the output of one `op` node on the inputs, in order, with `attributes`. */
  output?: number[];
  attributes?: Parameters<GraphBuilder['node']>[2];
  /** Instead of one plain node: builds the op (float32 or float64 alike); returns its outputs with their shapes. */
  build?: (g: GraphBuilder) => Array<{ name: string; dims: number[] }>;
  /** Which outputs the objective uses (default all): an unused output's gradient is zero-filled by autodiff. */
  seeded?: number[];
}

/**
 * Differences in float64 with h = 1e-6 are exact to about 1e-9 (truncation ~h^2, rounding ~1e-16 / h), so what
 * is left is the rules' float32 rounding: values of order 1 through a handful of operations, unit roundoff 6e-8,
 * measured at most 8.4e-8 (1 + |gradient|) (LayerNormalization). The tolerance, 2e-6 (1 + |gradient|), leaves
 * that a margin of 20 and still catches a subtle slip: LayerNormalization's backward without its epsilon is off
 * by ~epsilon / variance, 3e-5 here. A wrong sign, axis or term is off by a large part of the gradient itself.
 */
const STEP = 1e-6;
const TOLERANCE = 2e-6;

const sessions: RuntimeSession[] = [];
afterAll(async () => {
  for (const session of sessions) await session.release();
});

async function open(g: GraphBuilder): Promise<RuntimeSession> {
  const session = await RuntimeSession.create(await serializeOnnxModel(g, async () => {}), { threads: 1 });
  sessions.push(session);
  return session;
}

/** A fixed pseudo-random sequence in [-1, 1), so a failure reproduces. */
function values(count: number, seed: number): number[] {
  let state = seed >>> 0;
  return Array.from({ length: count }, () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return (state / 2 ** 32) * 2 - 1;
  });
}

const size = (dims: number[]) => dims.reduce((a, b) => a * b, 1);

function declareInputs(g: GraphBuilder, inputs: CaseInput[], type: FloatType): void {
  for (const input of inputs) g.input(input.name, input.int64 ? 'int64' : type, input.dims);
}

/** Checks d objective / d input for every input that is neither integer nor constant. */
async function checkGradients(testCase: GradientCase): Promise<void> {
  const differentiable = testCase.inputs.filter((input) => !input.int64 && !input.constant);
  const dims = new Map(testCase.inputs.map((input) => [input.name, input.dims]));
  // Float32 values, so the float64 differences are taken at exactly the point the float32 graph sees.
  const float32 = (count: number, seed: number) => Array.from(new Float32Array(values(count, seed)));
  const point = new Map(testCase.inputs.filter((input) => !input.int64).map((input, i) => [input.name, float32(size(input.dims), 7 + i)]));
  const feeds = (type: FloatType, floats: Map<string, number[]>) => {
    const tensors: Record<string, OrtTensor> = {};
    for (const input of testCase.inputs) if (input.int64) tensors[input.name] = new OrtTensor('int64', BigInt64Array.from(input.int64, BigInt), input.dims);
    for (const [name, data] of floats) tensors[name] = new OrtTensor(type, type === 'float32' ? Float32Array.from(data) : Float64Array.from(data), dims.get(name)!);
    return tensors;
  };

  const backward = new GraphBuilder();
  declareInputs(backward, testCase.inputs, 'float32');
  const outputs = buildCase(backward, testCase);
  const seeded = (testCase.seeded ?? outputs.map((_, k) => k)).map((k) => ({ ...outputs[k]!, seed: `seed_${k}` }));
  const seeds = new Map(seeded.map(({ seed, dims: seedDims }, k) => [seed, float32(size(seedDims), 101 + k)]));
  for (const { seed, dims: seedDims } of seeded) {
    backward.input(seed, 'float32', seedDims);
    dims.set(seed, seedDims);
  }
  const gradients = appendGradients(backward, new Map(seeded.map(({ name, seed }) => [name, seed])), differentiable.map((input) => input.name));
  for (const { name } of differentiable) backward.node('Identity', [gradients.get(name)!], {}, { outputs: [`grad_${name}`] });
  keepOnlyOutputs(backward, differentiable.map((input) => ({ name: `grad_${input.name}`, type: 'float32', dims: input.dims })));
  const analytic = await (await open(backward)).run(feeds('float32', new Map([...point, ...seeds])));

  const forward = new GraphBuilder();
  declareInputs(forward, testCase.inputs, 'float64');
  buildCase(forward, testCase);
  for (const { name, dims: outputDims } of seeded) forward.output(name, `out_${name}`, 'float64', outputDims);
  const forwardSession = await open(forward);
  const objective = async (at: Map<string, number[]>) => {
    const results = await forwardSession.run(feeds('float64', at));
    let sum = 0;
    for (const { name, seed } of seeded) {
      const y = results[`out_${name}`]!.data as Float64Array;
      const w = seeds.get(seed)!;
      for (let i = 0; i < y.length; i++) sum += w[i]! * y[i]!;
    }
    return sum;
  };

  for (const input of differentiable) {
    const gradient = analytic[`grad_${input.name}`]!;
    expect(gradient.dims, `shape of the gradient of ${input.name}`).toEqual(input.dims);
    const x = point.get(input.name)!;
    for (let i = 0; i < x.length; i++) {
      const shifted = (by: number) => new Map([...point, [input.name, x.map((v, j) => (j === i ? v + by : v))]]);
      const difference = ((await objective(shifted(STEP))) - (await objective(shifted(-STEP)))) / (2 * STEP);
      const rule = (gradient.data as Float32Array)[i]!;
      expect(Math.abs(rule - difference), `d/d ${input.name}[${i}]: rule ${rule}, differences ${difference}`).toBeLessThanOrEqual(
        TOLERANCE * (1 + Math.abs(difference)),
      );
    }
  }
}

function buildCase(g: GraphBuilder, testCase: GradientCase): Array<{ name: string; dims: number[] }> {
  if (testCase.build) return testCase.build(g);
  return [{ name: g.node(testCase.op, testCase.inputs.map((input) => input.name), testCase.attributes), dims: testCase.output! }];
}

const cases: GradientCase[] = [
  { op: 'Identity', title: 'passes the gradient on', inputs: [{ name: 'x', dims: [2, 3] }], output: [2, 3] },
  { op: 'Add', title: 'of two tensors of one shape', inputs: [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [2, 3] }], output: [2, 3] },
  {
    op: 'Add',
    title: 'of a broadcast constant (the attention mask)',
    inputs: [{ name: 'x', dims: [2, 3, 4] }, { name: 'mask', dims: [2, 1, 4], constant: true }],
    output: [2, 3, 4],
  },
  { op: 'Sub', title: 'of two tensors', inputs: [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [2, 3] }], output: [2, 3] },
  { op: 'Mul', title: 'of two tensors', inputs: [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [2, 3] }], output: [2, 3] },
  {
    op: 'Mul',
    title: 'by a broadcast constant (LoRA scaling, dropout masks)',
    inputs: [{ name: 'x', dims: [3, 4] }, { name: 'factor', dims: [4], constant: true }],
    output: [3, 4],
  },
  {
    op: 'Mul',
    title: 'of a value by itself: both contributions summed',
    inputs: [{ name: 'x', dims: [2, 3] }],
    build: (g) => [{ name: g.node('Mul', ['x', 'x']), dims: [2, 3] }],
  },
  { op: 'MatMul', title: '[m, k] [k, n]', inputs: [{ name: 'a', dims: [3, 4] }, { name: 'b', dims: [4, 2] }], output: [3, 2] },
  {
    op: 'MatMul',
    title: 'over batch and head axes (attention)',
    inputs: [{ name: 'q', dims: [2, 2, 3, 4] }, { name: 'kT', dims: [2, 2, 4, 3] }],
    output: [2, 2, 3, 3],
  },
  {
    op: 'Gemm',
    title: 'with transB and a bias [n] (nn.Linear)',
    inputs: [{ name: 'x', dims: [3, 4] }, { name: 'w', dims: [5, 4] }, { name: 'bias', dims: [5] }],
    output: [3, 5],
    attributes: { transB: 1 },
  },
  {
    op: 'Gemm',
    title: 'without transB, with a bias [1, n]',
    inputs: [{ name: 'x', dims: [3, 4] }, { name: 'w', dims: [4, 5] }, { name: 'bias', dims: [1, 5] }],
    output: [3, 5],
  },
  {
    op: 'Gemm',
    title: 'without a bias (LoRA A and B)',
    inputs: [{ name: 'x', dims: [3, 4] }, { name: 'w', dims: [2, 4] }],
    output: [3, 2],
    attributes: { transB: 1 },
  },
  {
    op: 'Transpose',
    title: 'swapping heads and positions',
    inputs: [{ name: 'x', dims: [2, 3, 4, 5] }],
    output: [2, 4, 3, 5],
    attributes: { perm: [0, 2, 1, 3] },
  },
  {
    op: 'Transpose',
    title: 'by a permutation that is not its own inverse',
    inputs: [{ name: 'x', dims: [2, 3, 4] }],
    output: [4, 2, 3],
    attributes: { perm: [2, 0, 1] },
  },
  {
    op: 'Reshape',
    title: 'to rows of features',
    inputs: [{ name: 'x', dims: [2, 3, 4] }],
    build: (g) => [{ name: g.node('Reshape', ['x', g.constInt64([6, 4])]), dims: [6, 4] }],
  },
  {
    op: 'Concat',
    title: 'on axis 0',
    inputs: [{ name: 'a', dims: [2, 3] }, { name: 'b', dims: [1, 3] }],
    output: [3, 3],
    attributes: { axis: 0 },
  },
  {
    op: 'Concat',
    title: 'on the last axis, one input constant (the scores of the cache and the block)',
    inputs: [{ name: 'cached', dims: [2, 3, 1], constant: true }, { name: 'fresh', dims: [2, 3, 4] }],
    output: [2, 3, 5],
    attributes: { axis: -1 },
  },
  {
    op: 'Split',
    title: 'on the last axis, both outputs used',
    inputs: [{ name: 'x', dims: [2, 5] }],
    build: (g) => {
      const [left, right] = g.nodeOutputs('Split', ['x', g.constInt64([2, 3])], 2, { axis: -1 });
      return [
        { name: left!, dims: [2, 2] },
        { name: right!, dims: [2, 3] },
      ];
    },
  },
  {
    op: 'Split',
    title: 'with one output unused (its gradient zero)',
    inputs: [{ name: 'x', dims: [3, 4] }],
    build: (g) => {
      const [top, bottom] = g.nodeOutputs('Split', ['x', g.constInt64([1, 2])], 2, { axis: 0 });
      return [
        { name: top!, dims: [1, 4] },
        { name: bottom!, dims: [2, 4] },
      ];
    },
    seeded: [1],
  },
  {
    op: 'Gather',
    title: 'of rows, some repeated (an embedding lookup)',
    inputs: [{ name: 'table', dims: [5, 3] }, { name: 'ids', dims: [2, 3], int64: [4, 1, 4, 0, 4, 2] }],
    output: [2, 3, 3],
  },
  { op: 'Softmax', title: 'over the last axis', inputs: [{ name: 'x', dims: [2, 3, 4] }], output: [2, 3, 4], attributes: { axis: -1 } },
  {
    op: 'LayerNormalization',
    title: 'over the last axis, with scale and bias',
    inputs: [{ name: 'x', dims: [2, 3, 4] }, { name: 'scale', dims: [4] }, { name: 'bias', dims: [4] }],
    output: [2, 3, 4],
    attributes: { axis: -1, epsilon: { float: 1e-5 } },
  },
  { op: 'Gelu', title: "approximate = 'tanh' (gelu_new)", inputs: [{ name: 'x', dims: [3, 4] }], output: [3, 4], attributes: { approximate: 'tanh' } },
];

describe('autodiff rules against central finite differences in float64', () => {
  for (const testCase of cases) {
    it(`${testCase.op} ${testCase.title}`, async () => {
      await checkGradients(testCase);
    });
  }

  it('has a case for every op with a rule', () => {
    expect(DIFFERENTIABLE_OPS.filter((rule) => !cases.some((testCase) => testCase.op === rule))).toEqual([]);
  });

  it('refuses an op it has no rule for, naming it', () => {
    const g = new GraphBuilder();
    g.input('x', 'float32', [2]);
    const y = g.node('Sin', ['x']);
    expect(() => appendGradients(g, new Map([[y, 'x']]), ['x'])).toThrow(GradientError);
    expect(() => appendGradients(g, new Map([[y, 'x']]), ['x'])).toThrow(/'Sin'/);
  });
});
