// `npm run bench:profile`: where a step of the 1.3B shape's graph spends its time, by ONNX Runtime's own profiler:
// the converted graph of a weight format, fed as the KV cache feeds it (a decoding step after `--context` cached
// tokens, or a prompt chunk of `--tokens` into an empty cache), kernel time per op type. The profiler slows every
// node, so its milliseconds are for proportions, not speeds.
import { readdir, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import * as ort from 'onnxruntime-node';
import { WEIGHT_FORMATS, type WeightFormat } from '../src/index.js';
import { ensureRandomCheckpoint } from '../test/helpers/random-checkpoint.js';
import { CAUSAL_LM_VARIANT, type Float32Kernel, IO, loadConfig, prepareOnnxModel } from './internals.js';

const program = new Command('bench:profile')
  .description("ONNX Runtime's profile of one step of the 1.3B shape's graph, kernel time per op type")
  .option('--folder <dir>', 'where the random checkpoint and its conversions live', path.join(os.homedir(), '.cache', 'gpt-neo-bench'))
  .addOption(new Option('--dtype <format>', 'weight format').choices(WEIGHT_FORMATS).default('q8'))
  .addOption(new Option('--fp32-kernel <kernel>', "fp32's linear layers (conv: weights in memory, the default on Linux)").choices(['conv', 'gemm']).default('conv'))
  .option('--context <n>', 'cached tokens attended to (0: a prompt into an empty cache)', '16')
  .option('--tokens <n>', 'new tokens per step (1: a decoding step; e.g. 256: a prompt chunk)', '1')
  .option('--steps <n>', 'profiled steps, after 3 unprofiled ones', '16')
  .option('--threads <n>', 'compute threads', '2')
  .addOption(new Option('--spinning <on|off>', "ONNX Runtime's spinning worker threads").choices(['on', 'off']).default('on'))
  .parse();
const options = program.opts<{
  folder: string; dtype: WeightFormat; fp32Kernel: Float32Kernel; context: string; tokens: string; steps: string; threads: string; spinning: string;
}>();
const [context, tokens, steps] = [options.context, options.tokens, options.steps].map(Number) as [number, number, number];

const checkpoint = await ensureRandomCheckpoint(path.join(options.folder, 'gpt-neo-1.3B-random'));
process.env.GPT_NEO_CACHE ??= path.join(options.folder, 'conversions');
const config = await loadConfig(checkpoint);
const converted = await prepareOnnxModel(checkpoint, config, options.dtype, CAUSAL_LM_VARIANT, undefined, options.fp32Kernel);
const profilePrefix = path.join(os.tmpdir(), `gpt-neo-profile-${process.pid}`);
const session = await ort.InferenceSession.create(converted.modelPath, {
  executionProviders: ['cpu'],
  intraOpNumThreads: Number(options.threads),
  interOpNumThreads: 1,
  graphOptimizationLevel: 'all',
  logSeverityLevel: 3,
  enableProfiling: true,
  profileFilePrefix: profilePrefix,
  extra: { session: { intra_op: { allow_spinning: options.spinning === 'on' ? '1' : '0' } } },
});

/** The feeds of one step: random activations and cache contents, biases that let every slot be seen. */
function stepFeeds(): Record<string, ort.Tensor> {
  const { hidden_size: C, num_heads: H, window_size: window, attention_layers } = config;
  const D = C / H;
  const random = (length: number, scale: number) => Float32Array.from({ length }, () => (Math.random() - 0.5) * scale);
  const cached = (kind: string) => (kind === 'local' ? Math.min(window, context) : context);
  const feeds: Record<string, ort.Tensor> = {
    [IO.inputsEmbeds]: new ort.Tensor('float32', random(tokens * C, 0.04), [1, tokens, C]),
    [IO.positionIds]: new ort.Tensor('int64', BigInt64Array.from({ length: tokens }, (_, t) => BigInt(context + t)), [1, tokens]),
    [IO.logitRows]: new ort.Tensor('int64', BigInt64Array.of(BigInt(tokens - 1)), [1]),
  };
  for (const kind of new Set(attention_layers)) {
    const width = cached(kind) + tokens;
    feeds[IO.attentionBias(kind)] = new ort.Tensor('float32', new Float32Array(tokens * width), [1, 1, tokens, width]);
  }
  attention_layers.forEach((kind, layer) => {
    const slots = cached(kind);
    feeds[IO.cachedKeys(layer)] = new ort.Tensor('float32', random(H * D * slots, 0.2), [1, H, D, slots]);
    feeds[IO.cachedValues(layer)] = new ort.Tensor('float32', random(H * slots * D, 0.2), [1, H, slots, D]);
  });
  return feeds;
}

const feeds = stepFeeds();
const fetches = [IO.logits];
for (let i = 0; i < 3; i++) await session.run(feeds, fetches);
const wall: number[] = [];
for (let i = 0; i < steps; i++) {
  const started = performance.now();
  await session.run(feeds, fetches);
  wall.push(performance.now() - started);
}
session.endProfiling();
await session.release();
await converted.release();

interface ProfileEvent { cat: string; name: string; ts: number; dur: number; args?: { op_name?: string } }
const profileFile = (await readdir(os.tmpdir())).find((name) => name.startsWith(path.basename(profilePrefix)));
if (!profileFile) throw new Error(`ONNX Runtime wrote no profile beside ${profilePrefix}`);
const events = JSON.parse(await readFile(path.join(os.tmpdir(), profileFile), 'utf8')) as ProfileEvent[];
await rm(path.join(os.tmpdir(), profileFile));

// The timed steps only: the unprofiled ones before them pay first-touch page faults and are profiled too.
const runs = events.filter((event) => event.cat === 'Session' && event.name === 'model_run').slice(-steps);
const timed = (event: ProfileEvent) => runs.some((run) => event.ts >= run.ts && event.ts <= run.ts + run.dur);
const byOp = new Map<string, { microseconds: number; nodes: number }>();
for (const event of events) {
  if (event.cat !== 'Node' || !event.name.endsWith('_kernel_time') || !timed(event)) continue;
  const op = event.args?.op_name ?? 'unknown';
  const entry = byOp.get(op) ?? { microseconds: 0, nodes: 0 };
  entry.microseconds += event.dur;
  entry.nodes++;
  byOp.set(op, entry);
}
const perRun = (microseconds: number) => microseconds / runs.length / 1000;
const kernels = [...byOp.values()].reduce((sum, entry) => sum + entry.microseconds, 0);
const median = [...wall].sort((a, b) => a - b)[wall.length >> 1]!;
console.log(
  `${options.dtype}, ${tokens} new token(s) after ${context} cached, ${options.threads} threads: ${median.toFixed(1)} ms per step (median of ${steps}, profiled); ` +
    `per profiled run ${perRun(runs.reduce((sum, run) => sum + run.dur, 0)).toFixed(1)} ms, of which kernels ${perRun(kernels).toFixed(1)} ms\n`,
);
console.log('| op type | ms per run | share of kernels | nodes per run |');
console.log('|---|---|---|---|');
for (const [op, entry] of [...byOp].sort((a, b) => b[1].microseconds - a[1].microseconds)) {
  console.log(`| ${op} | ${perRun(entry.microseconds).toFixed(2)} | ${((100 * entry.microseconds) / kernels).toFixed(1)}% | ${(entry.nodes / runs.length).toFixed(0)} |`);
}
