// The page's quantized path run in Node: the graph split at its quantized products, those on the project's
// WebAssembly kernel (one thread), the rest in ONNX Runtime; against the whole graph in ONNX Runtime.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildKernels } from '../../scripts/build-kernels.mjs';
import { KERNEL_OPS, QuantizedProducts } from '../../src/browser/kernels/products.js';
import { EmbeddingTable } from '../../src/convert/embeddings.js';
import { IO } from '../../src/model/gpt-neo.js';
import { loadConfig } from '../../src/model/config.js';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { splitGraph } from '../../src/onnx/split.js';
import { MODEL_FILE, WEIGHTS_FILE } from '../../src/onnx/write.js';
import { RuntimeSession } from '../../src/runtime/session.js';
import { SplitRunner } from '../../src/runtime/split-runner.js';
import { argmax, fixture } from '../helpers/fixtures.js';
import { convertAsThePageDoes } from '../helpers/page-graph.js';

const MODEL = fixture('tiny-trained');
let folder: string;
let wasm: Uint8Array;

beforeAll(async () => {
  folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-kernel-'));
  wasm = await readFile(path.join(await buildKernels(), 'linear.wasm'));
});
afterAll(async () => {
  await rm(folder, { recursive: true, force: true });
});

describe.each([
  ['q4', 'MatMulNBits (4 bits, accuracy level 4)'],
  ['q8', 'MatMulIntegerToFloat'],
] as const)('%s', (format, op) => {
  it(`gives the logits and greedy tokens of ONNX Runtime's ${op}`, async () => {
    const target = await convertAsThePageDoes(MODEL, format, folder);
    const config = await loadConfig(MODEL);
    const modelPath = path.join(target, MODEL_FILE);
    const embeddings = await EmbeddingTable.open(modelPath, IO.tokenEmbeddings);
    const weights = await readFile(path.join(target, WEIGHTS_FILE));
    const products = await QuantizedProducts.create(weights, { wasm, threads: 1 });
    const pieces = splitGraph(await readFile(modelPath), (node) => KERNEL_OPS.has(node.opType!));
    expect(pieces.cuts).toBe(17); // 4 blocks x 4 products, and the head
    const split = await SplitRunner.open(pieces, (bytes) => RuntimeSession.create(bytes, { threads: 1, externalDataFolder: target }), products);
    const whole = await RuntimeSession.create(modelPath, { threads: 1 });
    const ours = GPTNeoForCausalLM.fromRuntime(config, format, split, embeddings);
    const theirs = GPTNeoForCausalLM.fromRuntime(config, format, whole, embeddings);

    const input_ids = [[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13, 383, 2068]];
    const [a, b] = [await ours.forward({ input_ids }), await theirs.forward({ input_ids })];
    const V = a.logits.dims[2]!;
    let worst = 0;
    let spread = 0;
    for (let i = 0; i < a.logits.data.length; i++) {
      worst = Math.max(worst, Math.abs(a.logits.data[i]! - b.logits.data[i]!));
      spread = Math.max(spread, Math.abs(b.logits.data[i]!));
    }
    // The same integer arithmetic: only rounding ties and the order of float sums may differ.
    expect(worst).toBeLessThan(1e-5 * spread);
    for (let t = 0; t < input_ids[0]!.length; t++) {
      expect(argmax(a.logits.data.subarray(t * V, (t + 1) * V))).toBe(argmax(b.logits.data.subarray(t * V, (t + 1) * V)));
    }
    const prompt = { input_ids: [[464, 2068, 7586]], max_new_tokens: 12, do_sample: false };
    expect(await ours.generate(prompt)).toEqual(await theirs.generate(prompt));

    await split.release();
    await whole.release();
    embeddings.close();
  });
});
