// `npm run build:bench && node dist-bench/bench/linear-kernel.js`: the page's own 4-bit matmul kernel
// (kernels/linear.ts, WebAssembly SIMD128) on one thread, against the MatMulNBits it replaces in the page
// (onnxruntime-web's WebAssembly build, here run by Node on one thread) and onnxruntime-node's native one
// (one thread). One token through a 2048 -> 8192 layer (the 1.3B's c_fc) and through several such layers, whose
// weights no cache holds; then a prompt chunk. Fastest of several runs each.
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Command } from 'commander';
import * as ortWeb from 'onnxruntime-web';
import { noise } from '../test/helpers/random-checkpoint.js';
import { CHECKOUT } from './checkout.js';
import { fastestOf } from './fastest-run.js';
import {
  type BlockQuantized,
  GraphBuilder,
  instantiateLinearKernel,
  linearKernelMemoryFor,
  MODEL_FILE,
  OrtTensor,
  quantizeBlockwise,
  RuntimeSession,
  writeOnnxModel,
} from './internals.js';

const K = 2048;
const N = 8192;
const BLOCKS = K / 32;
/** What a token reads per layer: packed codes, scales and zero points. */
const LAYER_BYTES = N * (K / 2) + N * BLOCKS * 4 + N * Math.ceil(BLOCKS / 2);

const program = new Command('bench:linear-kernel')
  .description("The page's int4 kernel against onnxruntime-web's and onnxruntime-node's MatMulNBits, one thread each")
  .option('--layers <n>', 'layers in the pass that exceeds the caches', '8')
  .option('--runs <n>', 'timed runs per measurement (after two warm-up runs)', '20')
  .option('--prompt-rows <n>', 'rows of the prompt chunk', '64')
  .parse();
const options = program.opts<{ layers: string; runs: string; promptRows: string }>();
const layers = Number(options.layers);
const runs = Number(options.runs);
const promptRows = Number(options.promptRows);

/** Times for one layer at one row, all layers at one row, and one layer at promptRows rows, in seconds. */
interface Times {
  layer: number;
  all: number;
  prompt: number;
}

async function kernelFile(): Promise<string> {
  const wasm = path.join(CHECKOUT, 'dist', 'kernels', 'linear.wasm');
  const sources = ['kernels/linear.ts', 'scripts/build-kernels.mjs'].map((file) => statSync(path.join(CHECKOUT, file)).mtimeMs);
  if (!existsSync(wasm) || statSync(wasm).mtimeMs < Math.max(...sources)) {
    const script = pathToFileURL(path.join(CHECKOUT, 'scripts', 'build-kernels.mjs')).href;
    const { buildKernels } = (await import(script)) as typeof import('../scripts/build-kernels.mjs');
    await buildKernels();
  }
  return wasm;
}

async function timeKernel(weights: BlockQuantized[], x: Float32Array): Promise<Times> {
  const prompt = promptRows * K;
  const bytes = weights.length * LAYER_BYTES + 4 * (prompt + promptRows * N) + 2 * prompt + promptRows * BLOCKS * 8 + 64 * 8;
  const memory = linearKernelMemoryFor(bytes, false);
  const kernel = await instantiateLinearKernel(await readFile(await kernelFile()), memory);
  let top = kernel.heapBase();
  const alloc = (size: number) => {
    const at = top;
    top = (top + size + 63) & ~63;
    return at;
  };
  const put = (array: Float32Array | Uint8Array) => {
    const at = alloc(array.byteLength);
    new Uint8Array(memory.buffer, at, array.byteLength).set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
    return at;
  };
  const layerAt = weights.map((q) => ({ codes: put(q.codes), scales: put(q.scales), zeroPoints: put(q.zeroPoints) }));
  const xAt = put(x.subarray(0, prompt));
  const xq = alloc(kernel.quantizedActivationBytes(promptRows, K));
  const y = alloc(4 * promptRows * N);
  const run = (rows: number, count: number) => async () => {
    kernel.quantizeActivations(xAt, rows, K, xq);
    for (const { codes, scales, zeroPoints } of layerAt.slice(0, count)) kernel.matmulInt4(y, xq, rows, K, codes, scales, zeroPoints, 0, N, 0, N);
  };
  return {
    layer: await fastestOf(run(1, 1), runs),
    all: await fastestOf(run(1, layers), runs),
    prompt: await fastestOf(run(promptRows, 1), Math.max(1, runs >> 3)),
  };
}

/** `count` MatMulNBits layers over one input of dynamic rows, as src/convert/parameters.ts builds q4 layers. */
function graphOf(weights: BlockQuantized[], count: number): GraphBuilder {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', ['rows', K]);
  weights.slice(0, count).forEach((q, i) => {
    const inputs = [
      x,
      g.weight(`layer.${i}.codes`, 'uint8', [N, BLOCKS, 16], async () => q.codes),
      g.weight(`layer.${i}.scales`, 'float32', [N, BLOCKS], async () => q.scales),
      g.weight(`layer.${i}.zero_points`, 'uint8', [N, Math.ceil(BLOCKS / 2)], async () => q.zeroPoints),
    ];
    const y = g.node('MatMulNBits', inputs, { K, N, bits: 4, block_size: 32, accuracy_level: 4 }, { domain: 'com.microsoft' });
    g.output(y, `y.${i}`, 'float32', ['rows', N]);
  });
  return g;
}

/** Times the graphs in `folders` (one layer, all layers) with `open`, which returns a run function per model. */
async function timeOrt(folders: { one: string; all: string }, open: (folder: string) => Promise<{ run: (rows: number) => Promise<unknown>; close: () => Promise<void> }>): Promise<Times> {
  const one = await open(folders.one);
  const all = await open(folders.all);
  try {
    return {
      layer: await fastestOf(() => one.run(1), runs),
      all: await fastestOf(() => all.run(1), Math.max(1, runs >> 2)),
      prompt: await fastestOf(() => one.run(promptRows), Math.max(1, runs >> 3)),
    };
  } finally {
    await one.close();
    await all.close();
  }
}

const folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-linear-kernel-'));
try {
  console.log(`Quantizing ${layers} random ${K} -> ${N} layers...`);
  const weights = Array.from({ length: layers }, (_, i) => quantizeBlockwise(noise(N * K, i + 1), N, K, 4, 32));
  const x = noise(promptRows * K, 0);
  const feeds = (rows: number) => ({ x: new OrtTensor('float32', x.subarray(0, rows * K), [rows, K]) });
  const folders = { one: path.join(folder, 'one'), all: path.join(folder, 'all') };
  await writeOnnxModel(graphOf(weights, 1), folders.one, 'Writing one layer');
  await writeOnnxModel(graphOf(weights, layers), folders.all, `Writing ${layers} layers`);

  const ours = await timeKernel(weights, x);
  const native = await timeOrt(folders, async (model) => {
    const session = await RuntimeSession.create(path.join(model, MODEL_FILE), { threads: 1 });
    return { run: (rows) => session.run(feeds(rows)), close: () => session.release() };
  });
  ortWeb.env.wasm.numThreads = 1;
  const web = await timeOrt(folders, async (model) => {
    const session = await ortWeb.InferenceSession.create(await readFile(path.join(model, MODEL_FILE)), {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
      externalData: [{ path: 'weights.bin', data: await readFile(path.join(model, 'weights.bin')) }],
      logSeverityLevel: 3,
    });
    const webFeeds = (rows: number) => ({ x: new ortWeb.Tensor('float32', x.slice(0, rows * K), [rows, K]) });
    return { run: (rows) => session.run(webFeeds(rows)), close: () => session.release() };
  });

  console.log(`\nMachine: ${os.cpus()[0]?.model ?? 'unknown CPU'}; Node ${process.versions.node}; onnxruntime-web ${ortWeb.env.versions.web}; one thread each`);
  console.log(`${K} -> ${N} layers, bits 4, block 32, accuracy_level 4; GB/s of packed weights (codes, scales, zero points: ${(LAYER_BYTES / 1e6).toFixed(1)} MB a layer); fastest of ${runs} runs`);
  const header = ['implementation', '1 layer ms', 'GB/s', `${layers} layers ms`, 'GB/s', `${promptRows} rows, 1 layer ms`, 'GMAC/s'];
  console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
  const rows: Array<[string, Times]> = [
    ['int4 kernel (WebAssembly SIMD)', ours],
    ['onnxruntime-web (WebAssembly)', web],
    ['onnxruntime-node (native)', native],
  ];
  for (const [name, t] of rows) {
    const gbs = (bytes: number, seconds: number) => (bytes / seconds / 1e9).toFixed(2);
    const cells = [name, (t.layer * 1e3).toFixed(2), gbs(LAYER_BYTES, t.layer), (t.all * 1e3).toFixed(1), gbs(layers * LAYER_BYTES, t.all), (t.prompt * 1e3).toFixed(1), ((promptRows * N * K) / t.prompt / 1e9).toFixed(1)];
    console.log(`| ${cells.join(' | ')} |`);
  }
} finally {
  await rm(folder, { recursive: true, force: true });
}
