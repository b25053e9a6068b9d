// `npm run bench:browser-kernels`: why decoding in the page is slower than in Node. Times the project's
// linear layers alone (as the model builds them in each weight format, one token through 134 M parameters) in
// onnxruntime-node and in headless Chromium's onnxruntime-web (WebAssembly, 2 threads), fastest of several runs.
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import type { WeightFormat } from '../src/index.js';
import { launchChromium } from '../test/helpers/chromium.js';
import { noise } from '../test/helpers/random-checkpoint.js';
import { fastestOf } from './fastest-run.js';
import { LINEAR_BYTES_PER_PARAMETER, MODEL_FILE, OrtTensor, RuntimeSession, startDemoServer, writeOnnxModel } from './internals.js';
import { randomLinearLayers } from './linear-layers.js';

/** Eight 2048 -> 8192 layers (the 1.3B's c_fc): 134 M parameters, 0.5 GB in fp32, which a page can hold. */
const K = 2048;
const N = 8192;
const LAYERS = 8;
const RUNS = 8;

const program = new Command('bench:browser-kernels')
  .description("Linear layers per weight format in onnxruntime-node and in Chromium's onnxruntime-web")
  .option('--dtypes <list>', 'weight formats', 'fp32,q8,q4')
  .option('--threads <n>', 'threads in both', '2')
  .option('--ort-web <dir>', "another onnxruntime-web package folder to time in the page (e.g. a newer version installed elsewhere)")
  .parse();
const options = program.opts<{ dtypes: string; threads: string; ortWeb?: string }>();
const threads = Number(options.threads);

const folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-kernels-'));
const formats = options.dtypes.split(',') as WeightFormat[];
const input = noise(K, 0);
const nodeMs: Record<string, number> = {};
try {
  for (const format of formats) {
    await writeOnnxModel(randomLinearLayers(format, LAYERS, N, K), path.join(folder, format), `Writing ${format} linear layers`);
    const session = await RuntimeSession.create(path.join(folder, format, MODEL_FILE), { threads, prepackWeights: format !== 'fp32' });
    const feeds = { x: new OrtTensor('float32', input, [1, K]) };
    nodeMs[format] = 1000 * (await fastestOf(() => session.run(feeds), RUNS));
    await session.release();
  }

  const ortWeb = options.ortWeb ? path.resolve(options.ortWeb, 'dist') : path.dirname(fileURLToPath(import.meta.resolve('onnxruntime-web')));
  const ortWebVersion = (JSON.parse(await readFile(path.join(ortWeb, '..', 'package.json'), 'utf8')) as { version: string }).version;
  const server = await startDemoServer({ model: folder, dtype: 'fp32', port: 0, folders: { '/ort-web/': ortWeb } });
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(new URL('demo-config.json', server.url).href);
    const inPage = await page.evaluate(
      async ({ formats, threads, input, runs, K }) => {
        // onnxruntime-web's WebAssembly-only bundle, served from its package: what the browser build loads for device 'wasm'.
        const ort = await import(`${location.origin}/ort-web/ort.wasm.min.mjs`);
        ort.env.wasm.wasmPaths = '/ort-web/';
        ort.env.wasm.numThreads = threads;
        const times: Record<string, number> = {};
        for (const format of formats) {
          const bytes = async (file: string) => new Uint8Array(await (await fetch(`/model/${format}/${file}`)).arrayBuffer());
          const session = await ort.InferenceSession.create(await bytes('model.onnx'), {
            executionProviders: ['wasm'],
            graphOptimizationLevel: 'all',
            externalData: [{ path: 'weights.bin', data: await bytes('weights.bin') }],
            logSeverityLevel: 3,
          });
          const feeds = { x: new ort.Tensor('float32', Float32Array.from(input), [1, K]) };
          let best = Infinity;
          for (let run = 0; run < runs + 1; run++) {
            const started = performance.now();
            await session.run(feeds);
            if (run >= 1) best = Math.min(best, performance.now() - started);
          }
          times[format] = best;
          await session.release();
        }
        return { times, isolated: crossOriginIsolated, threads: ort.env.wasm.numThreads };
      },
      { formats, threads, input: [...input], runs: RUNS, K },
    );
    if (!inPage.isolated) throw new Error('the page is not cross-origin isolated: WebAssembly would run on one thread');

    console.log(`\nMachine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores; ${threads} threads in Node and in the page; onnxruntime-web ${ortWebVersion}`);
    console.log(`${LAYERS} linear layers ${K} -> ${N} (${((LAYERS * K * N) / 1e6).toFixed(0)} M parameters), batch 1, fastest of ${RUNS} runs`);
    const header = ['dtype', 'Node ms', 'Node GB/s', 'Chromium ms', 'Chromium GB/s', 'Chromium / Node'];
    console.log(`| ${header.join(' | ')} |\n|${header.map(() => '---').join('|')}|`);
    for (const format of formats) {
      const bytes = LAYERS * N * K * LINEAR_BYTES_PER_PARAMETER[format];
      const [node, web] = [nodeMs[format]!, inPage.times[format]!];
      const row = [format, node.toFixed(1), (bytes / node / 1e6).toFixed(1), web.toFixed(1), (bytes / web / 1e6).toFixed(1), (node / web).toFixed(3)];
      console.log(`| ${row.join(' | ')} |`);
    }
  } finally {
    await browser.close();
    await server.close();
  }
} finally {
  await rm(folder, { recursive: true, force: true });
}
