// Splitting a converted model at chosen nodes: run piece by piece, it gives what the whole graph gives.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EmbeddingTable } from '../../src/convert/embeddings.js';
import type { WeightFormat } from '../../src/convert/parameters.js';
import { IO } from '../../src/model/gpt-neo.js';
import { loadConfig } from '../../src/model/config.js';
import { MODEL_FILE } from '../../src/onnx/write.js';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { GraphBuilder } from '../../src/onnx/graph.js';
import { type CutNode, splitGraph } from '../../src/onnx/split.js';
import { RuntimeSession } from '../../src/runtime/session.js';
import { type CutNodeKernel, SplitRunner } from '../../src/runtime/split-runner.js';
import { fixture, maxAbsDiff } from '../helpers/fixtures.js';
import { convertAsThePageDoes } from '../helpers/page-graph.js';

const { onnx } = onnxProto;
const MODEL = fixture('tiny-trained');
let folder: string;

/** Runs each cut node in an ONNX Runtime session of its own: a one-node model over the same weights file. */
function oneNodeSessions(target: string): CutNodeKernel & { ran: string[] } {
  const ran: string[] = [];
  return {
    ran,
    async prepare({ node, inputs, initializers }: CutNode) {
      const model = onnx.ModelProto.create({
        irVersion: 10,
        opsetImport: [{ domain: '', version: 21 }, { domain: 'com.microsoft', version: 1 }],
        graph: {
          name: 'one_node',
          node: [node],
          initializer: [...initializers.values()],
          input: inputs.map((name) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } })),
          output: (node.output ?? []).map((name) => ({ name, type: { tensorType: { elemType: onnx.TensorProto.DataType.FLOAT } } })),
        },
      });
      const session = await RuntimeSession.create(onnx.ModelProto.encode(model).finish(), { threads: 1, externalDataFolder: target });
      return {
        async run(feeds) {
          ran.push(node.opType!);
          const outputs = await session.run(feeds);
          return (node.output ?? []).map((name) => outputs[name]!);
        },
      };
    },
  };
}

async function compare(format: WeightFormat, cutOps: string[]) {
  const target = await convertAsThePageDoes(MODEL, format, folder);
  const modelBytes = await readFile(path.join(target, MODEL_FILE));
  const config = await loadConfig(MODEL);
  const embeddings = await EmbeddingTable.open(path.join(target, MODEL_FILE), IO.tokenEmbeddings);
  const whole = await RuntimeSession.create(path.join(target, MODEL_FILE), { threads: 1 });
  const kernel = oneNodeSessions(target);
  const split = await SplitRunner.open(
    splitGraph(modelBytes, (node) => cutOps.includes(node.opType!)),
    (bytes) => RuntimeSession.create(bytes, { threads: 1, externalDataFolder: target }),
    kernel,
  );
  const input = { input_ids: [[464, 2068, 7586, 21831, 18045, 625, 262], [464, 1049, 286, 262, 2068, 318, 5]] };
  const expected = await GPTNeoForCausalLM.fromRuntime(config, format, whole, embeddings).forward(input);
  const pieces = GPTNeoForCausalLM.fromRuntime(config, format, split, embeddings);
  const actual = await pieces.forward(input);
  // The KV cache's path: a prompt, then tokens one at a time.
  const generated = await pieces.generate({ input_ids: [[464, 2068, 7586]], max_new_tokens: 6, do_sample: false });
  const reference = await GPTNeoForCausalLM.fromRuntime(config, format, whole, embeddings).generate({
    input_ids: [[464, 2068, 7586]],
    max_new_tokens: 6,
    do_sample: false,
  });
  await split.release();
  await whole.release();
  embeddings.close();
  return { diff: maxAbsDiff(actual.logits.data, expected.logits.data), ran: kernel.ran, generated, reference };
}

beforeAll(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-split-'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe('a graph split at chosen nodes', () => {
  it('q4 cut at every MatMulNBits gives the whole graph\'s logits and tokens', async () => {
    const { diff, ran, generated, reference } = await compare('q4', ['MatMulNBits']);
    expect(diff).toBeLessThan(1e-5);
    expect(ran.filter((op) => op === 'MatMulNBits').length).toBeGreaterThanOrEqual(17);
    expect(generated).toEqual(reference);
  });

  it('fp32 cut at ops of several kinds (and types the split must declare) gives the same logits', async () => {
    const { diff, ran } = await compare('fp32', ['Gemm', 'Softmax', 'LayerNormalization']);
    expect(diff).toBeLessThan(1e-5);
    expect(new Set(ran)).toEqual(new Set(['Gemm', 'Softmax', 'LayerNormalization']));
  });

  it('names the op whose output type it cannot tell', async () => {
    const graph = new GraphBuilder();
    const x = graph.input('x', 'float32', [2]);
    const y = graph.node('SomeCustomOp', [x]);
    graph.output(graph.node('Relu', [graph.node('Abs', [y])]), 'out', 'float32', [2]);
    const { serializeOnnxModel } = await import('../../src/onnx/write.js');
    const bytes = await serializeOnnxModel(graph, async () => {});
    expect(() => splitGraph(bytes, (node) => node.opType === 'Abs')).toThrow(/'.*' \(op SomeCustomOp has no rule\)/);
  });
});
