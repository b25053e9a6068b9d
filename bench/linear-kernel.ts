// `npm run bench:linear-kernel`: the page's own matmul kernels
// (kernels/linear.ts, WebAssembly SIMD128) on one thread, against the ops they replace in the page
// (onnxruntime-web's WebAssembly build, here run by Node on one thread) and onnxruntime-node's native ones (one
// thread): the 4-bit product against MatMulNBits, the int8 one against MatMulIntegerToFloat. One token through a
// 2048 -> 8192 layer (the 1.3B's c_fc) and through several such layers, whose weights no cache holds; then a
// prompt chunk. Fastest of several runs each.
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
  type ChannelQuantized,
  GraphBuilder,
  instantiateLinearKernel,
  type LinearKernel,
  linearKernelMemoryFor,
  MODEL_FILE,
  OrtTensor,
  quantizeBlockwise,
  quantizePerChannel,
  RuntimeSession,
  writeOnnxModel,
} from './internals.js';

const K = 2048;
const N = 8192;
const BLOCKS = K / 32;
const FORMATS = ['int4', 'int8'] as const;
type FormatName = (typeof FORMATS)[number];

const program = new Command('bench:linear-kernel')
  .description("The page's int4 and int8 kernels against onnxruntime-web's and onnxruntime-node's MatMulNBits and MatMulIntegerToFloat, one thread each")
  .option('--formats <list>', `comma-separated, of ${FORMATS.join(', ')}`, FORMATS.join(','))
  .option('--layers <n>', 'layers in the pass that exceeds the caches', '8')
  .option('--runs <n>', 'timed runs per measurement (after two warm-up runs)', '20')
  .option('--prompt-rows <n>', 'rows of the prompt chunk', '64')
  .parse();
const options = program.opts<{ formats: string; layers: string; runs: string; promptRows: string }>();
const formats = options.formats.split(',').map((name) => {
  if (!(FORMATS as readonly string[]).includes(name)) program.error(`unknown format '${name}'; one of ${FORMATS.join(', ')}`);
  return name as FormatName;
});
const layers = Number(options.layers);
const runs = Number(options.runs);
const promptRows = Number(options.promptRows);

/** Times for one layer at one row, all layers at one row, and one layer at promptRows rows, in seconds. */
interface Times {
  layer: number;
  all: number;
  prompt: number;
}

/** One weight format: its layers' graph for ONNX Runtime, its inputs, and its product on the kernel. */
interface Format {
  /** What the table's header says of the layers. */
  describe: string;
  /** What a token reads per layer. */
  layerBytes: number;
  op: string;
  graph(count: number): GraphBuilder;
  /** The graph's input for `rows` rows, as onnxruntime-node and onnxruntime-web take it. */
  feeds(rows: number): Record<string, OrtTensor>;
  webFeeds(rows: number): Record<string, ortWeb.Tensor>;
  /** Places the layers in the kernel's memory and returns a run of `count` layers over `rows` rows. */
  onKernel(kernel: LinearKernel, heap: Heap): (rows: number, count: number) => void;
  /** Bytes of the kernel's memory it needs. */
  kernelBytes: number;
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

/** Bump allocation in the kernel's memory, 64-byte aligned. */
class Heap {
  private top: number;
  constructor(
    private readonly memory: WebAssembly.Memory,
    kernel: LinearKernel,
  ) {
    this.top = kernel.heapBase();
  }
  alloc(size: number): number {
    const at = this.top;
    this.top = (this.top + size + 63) & ~63;
    return at;
  }
  put(array: Float32Array | Uint8Array | Int8Array): number {
    const at = this.alloc(array.byteLength);
    this.write(at, array);
    return at;
  }
  write(at: number, array: Float32Array | Uint8Array | Int8Array): void {
    new Uint8Array(this.memory.buffer, at, array.byteLength).set(new Uint8Array(array.buffer, array.byteOffset, array.byteLength));
  }
}

async function timeKernel(format: Format): Promise<Times> {
  const memory = linearKernelMemoryFor(format.kernelBytes + layers * 64 * 8, false);
  const kernel = await instantiateLinearKernel(await readFile(await kernelFile()), memory);
  const run = format.onKernel(kernel, new Heap(memory, kernel));
  const timed = (rows: number, count: number) => async () => run(rows, count);
  return {
    layer: await fastestOf(timed(1, 1), runs),
    all: await fastestOf(timed(1, layers), runs),
    prompt: await fastestOf(timed(promptRows, 1), Math.max(1, runs >> 3)),
  };
}

/** q4: MatMulNBits at bits 4, block 32, accuracy level 4 over float activations, as parameters.ts builds it. */
function int4Format(): Format {
  console.log(`Quantizing ${layers} random ${K} -> ${N} layers to 4 bits...`);
  const weights: BlockQuantized[] = Array.from({ length: layers }, (_, i) => quantizeBlockwise(noise(N * K, i + 1), N, K, 4, 32));
  const x = noise(promptRows * K, 0);
  const layerBytes = N * (K / 2) + N * BLOCKS * 4 + N * Math.ceil(BLOCKS / 2);
  const prompt = promptRows * K;
  return {
    describe: `bits 4, block 32, accuracy_level 4; GB/s of packed weights (codes, scales, zero points: ${(layerBytes / 1e6).toFixed(1)} MB a layer)`,
    layerBytes,
    op: 'MatMulNBits',
    graph(count) {
      const g = new GraphBuilder();
      const input = g.input('x', 'float32', ['rows', K]);
      weights.slice(0, count).forEach((q, i) => {
        const inputs = [
          input,
          g.weight(`layer.${i}.codes`, 'uint8', [N, BLOCKS, 16], async () => q.codes),
          g.weight(`layer.${i}.scales`, 'float32', [N, BLOCKS], async () => q.scales),
          g.weight(`layer.${i}.zero_points`, 'uint8', [N, Math.ceil(BLOCKS / 2)], async () => q.zeroPoints),
        ];
        const y = g.node('MatMulNBits', inputs, { K, N, bits: 4, block_size: 32, accuracy_level: 4 }, { domain: 'com.microsoft' });
        g.output(y, `y.${i}`, 'float32', ['rows', N]);
      });
      return g;
    },
    feeds: (rows) => ({ x: new OrtTensor('float32', x.subarray(0, rows * K), [rows, K]) }),
    webFeeds: (rows) => ({ x: new ortWeb.Tensor('float32', x.slice(0, rows * K), [rows, K]) }),
    kernelBytes: layers * layerBytes + 4 * (prompt + promptRows * N) + 2 * prompt + promptRows * BLOCKS * 8,
    onKernel(kernel, heap) {
      const layerAt = weights.map((q) => ({ codes: heap.put(q.codes), scales: heap.put(q.scales), zeroPoints: heap.put(q.zeroPoints) }));
      const xAt = heap.put(x);
      const xq = heap.alloc(kernel.quantizedActivationBytes(promptRows, K));
      const y = heap.alloc(4 * promptRows * N);
      return (rows, count) => {
        kernel.quantizeActivations(xAt, rows, K, xq);
        for (const { codes, scales, zeroPoints } of layerAt.slice(0, count)) kernel.matmulInt4(y, xq, rows, K, codes, scales, zeroPoints, 0, N, 0, N);
      };
    },
  };
}

/**
 * q8: MatMulIntegerToFloat over the per-row uint8 activation codes, as parameters.ts builds it (the quantization
 * of the activations and the zero-point correction around it are the graph's, not the product's, and left out).
 */
function int8Format(): Format {
  console.log(`Quantizing ${layers} random ${K} -> ${N} layers to int8...`);
  const weights: ChannelQuantized[] = Array.from({ length: layers }, (_, i) => quantizePerChannel(noise(N * K, i + 1), N, K));
  // noise() spans +-0.02 sqrt(3): mapped onto 0..255 as a row's QuantizeLinear would.
  const a = Uint8Array.from(noise(promptRows * K, 0), (v) => Math.round((v / (0.04 * Math.sqrt(3)) + 0.5) * 255));
  const layerBytes = K * N + N * 4;
  const prompt = promptRows * K;
  return {
    describe: `int8 codes [K, N], float scales per column; GB/s of codes and scales (${(layerBytes / 1e6).toFixed(1)} MB a layer)`,
    layerBytes,
    op: 'MatMulIntegerToFloat',
    graph(count) {
      const g = new GraphBuilder();
      const input = g.input('a', 'uint8', ['rows', K]);
      const aScale = g.constFloat(1);
      weights.slice(0, count).forEach((q, i) => {
        const codes = g.weight(`layer.${i}.codes`, 'int8', [K, N], async () => q.codes);
        const scales = g.weight(`layer.${i}.scales`, 'float32', [N], async () => q.scales);
        const y = g.node('MatMulIntegerToFloat', [input, codes, aScale, scales], {}, { domain: 'com.microsoft' });
        g.output(y, `y.${i}`, 'float32', ['rows', N]);
      });
      return g;
    },
    feeds: (rows) => ({ a: new OrtTensor('uint8', a.subarray(0, rows * K), [rows, K]) }),
    webFeeds: (rows) => ({ a: new ortWeb.Tensor('uint8', a.slice(0, rows * K), [rows, K]) }),
    // One layer's codes more, the staging area they are packed from.
    kernelBytes: (layers + 1) * layerBytes + prompt * 3 + 4 * promptRows * N,
    onKernel(kernel, heap) {
      // The codes as stored pass through one staging area, as a node's do at load; the product reads the packed copy.
      const staging = heap.alloc(K * N);
      const layerAt = weights.map((q) => {
        heap.write(staging, q.codes);
        const packed = heap.alloc(kernel.int8PackedBytes(K, N));
        kernel.packInt8(staging, K, N, packed);
        return { packed, scales: heap.put(q.scales) };
      });
      const aAt = heap.put(a);
      const prepared = heap.alloc(kernel.int8ActivationBytes(promptRows, K));
      const y = heap.alloc(4 * promptRows * N);
      return (rows, count) => {
        kernel.prepareInt8Activations(aAt, rows, K, prepared);
        for (const { packed, scales } of layerAt.slice(0, count)) kernel.matmulInt8(y, prepared, rows, K, packed, 1, scales, N, 0, N);
      };
    },
  };
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

async function measure(name: FormatName, folder: string): Promise<void> {
  const format = name === 'int4' ? int4Format() : int8Format();
  const folders = { one: path.join(folder, name, 'one'), all: path.join(folder, name, 'all') };
  await writeOnnxModel(format.graph(1), folders.one, 'Writing one layer');
  await writeOnnxModel(format.graph(layers), folders.all, `Writing ${layers} layers`);

  const ours = await timeKernel(format);
  const native = await timeOrt(folders, async (model) => {
    const session = await RuntimeSession.create(path.join(model, MODEL_FILE), { threads: 1 });
    return { run: (rows) => session.run(format.feeds(rows)), close: () => session.release() };
  });
  ortWeb.env.wasm.numThreads = 1;
  const web = await timeOrt(folders, async (model) => {
    const session = await ortWeb.InferenceSession.create(await readFile(path.join(model, MODEL_FILE)), {
      executionProviders: ['wasm'],
      graphOptimizationLevel: 'all',
      externalData: [{ path: 'weights.bin', data: await readFile(path.join(model, 'weights.bin')) }],
      logSeverityLevel: 3,
    });
    return { run: (rows) => session.run(format.webFeeds(rows)), close: () => session.release() };
  });

  console.log(`\n${K} -> ${N} layers, ${format.describe}; fastest of ${runs} runs`);
  const header = ['implementation', '1 layer ms', 'GB/s', `${layers} layers ms`, 'GB/s', `${promptRows} rows, 1 layer ms`, 'GMAC/s'];
  console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
  const rows: Array<[string, Times]> = [
    [`${name} kernel (WebAssembly SIMD)`, ours],
    [`onnxruntime-web ${format.op} (WebAssembly)`, web],
    [`onnxruntime-node ${format.op} (native)`, native],
  ];
  for (const [label, t] of rows) {
    const gbs = (bytes: number, seconds: number) => (bytes / seconds / 1e9).toFixed(2);
    const cells = [label, (t.layer * 1e3).toFixed(2), gbs(format.layerBytes, t.layer), (t.all * 1e3).toFixed(1), gbs(layers * format.layerBytes, t.all), (t.prompt * 1e3).toFixed(1), ((promptRows * N * K) / t.prompt / 1e9).toFixed(1)];
    console.log(`| ${cells.join(' | ')} |`);
  }
}

const folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-linear-kernel-'));
try {
  console.log(`Machine: ${os.cpus()[0]?.model ?? 'unknown CPU'}; Node ${process.versions.node}; onnxruntime-web ${ortWeb.env.versions.web}; one thread each`);
  // One format at a time, so that only its layers are in memory.
  for (const name of formats) await measure(name, folder);
} finally {
  await rm(folder, { recursive: true, force: true });
}
