// `npm run bench`: decode and prefill speed, start-up time and peak memory of GPT-Neo 1.3B-shaped
// random weights in every weight format, against the memory bandwidth measured in the same run.
// With --peers <folder>: the same speeds side by side with the engines installed there (bench/peers/).
import { execFile } from 'node:child_process';
import { rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Command, Option } from 'commander';
import { WEIGHT_FORMATS, type WeightFormat } from '../src/index.js';
import { ensureRandomCheckpoint } from '../test/helpers/random-checkpoint.js';
import { measureReadBandwidth } from './bandwidth.js';
import { CHECKOUT } from './checkout.js';
import { measureLinearLayers } from './linear-layers.js';
import { CONTEXTS_OPTIONS, type LlamaCppPeer, type OpenedPeers, openPeers, PEER_CONTEXTS, type PeerName } from './peers/index.js';
import type { RunReport } from './run.js';
import type { ServeReport } from './serve.js';
import { batchedScalingLine, runSideBySide, sideBySideTable, spread, summarize } from './side-by-side.js';

const program = new Command('bench')
  .description('Benchmark GPT-Neo 1.3B-shaped random weights (written once to the cache folder, never committed)')
  .option('--folder <dir>', 'where the random checkpoint and its conversions live', path.join(os.homedir(), '.cache', 'gpt-neo-bench'))
  .addOption(new Option('--dtypes <list>', 'weight formats to run, comma separated').default(WEIGHT_FORMATS.join(',')))
  .option('--threads <n>', 'compute threads', String(os.availableParallelism()))
  .option('--decode-tokens <n>', 'tokens decoded per measurement', '32')
  .addOption(new Option('--scenario <name>', 'weight formats, the HTTP server, or both').choices(['formats', 'serve', 'all']).default('all'))
  .addOption(new Option('--serve-dtype <format>', 'weight format of the server scenario').choices(WEIGHT_FORMATS).default('q8'))
  .addOption(
    new Option(
      '--peers <dir>',
      'compare with the engines installed in this peers folder (llama.cpp through node-llama-cpp, transformers.js; see bench/README.md): ' +
        'side by side instead of the formats scenario, and with --scenario serve or all, llama.cpp\'s batched scaling beside the server\'s',
    ).env('GPT_NEO_PEERS'),
  )
  .option('--rounds <n>', 'interleaved rounds of the comparison with --peers', '3')
  .option(`--${CONTEXTS_OPTIONS['llama.cpp']} <list>`, 'prompt lengths llama.cpp decodes after with --peers', PEER_CONTEXTS.join(','))
  .option(
    `--${CONTEXTS_OPTIONS['transformers.js']} <list>`,
    'prompt lengths transformers.js decodes after with --peers (after 1900 it decodes at under 1 tok/s and its prompt takes about a minute)',
    '16',
  )
  .parse();
const options = program.opts<{
  folder: string; dtypes: string; threads: string; decodeTokens: string; scenario: string; serveDtype: WeightFormat; peers?: string; rounds: string;
  llamacppContexts: string; transformersjsContexts: string;
}>();
// With --peers the comparison replaces the scenarios unless one is asked for by name.
const scenario = options.peers !== undefined && program.getOptionValueSource('scenario') === 'default' ? 'formats' : options.scenario;

/**
 * glibc's malloc advises its heap for 2 MiB pages, so ONNX Runtime's pre-packed q8/q4 weights and the KV cache are
 * not read through 4 KiB pages (docs/speed.md); read by glibc at process start, so set for the child. An explicit
 * GLIBC_TUNABLES in the bench's environment wins (GLIBC_TUNABLES= measures without).
 */
const MALLOC_HUGE_PAGES = { GLIBC_TUNABLES: process.env.GLIBC_TUNABLES ?? 'glibc.malloc.hugetlb=1' };

/** Streams and new tokens per stream of bench/serve.ts's concurrent streams, which llama.cpp's batched run repeats. */
const SERVE_STREAMS = 8;
const SERVE_NEW_TOKENS = 64;

const formats = options.dtypes.split(',') as WeightFormat[];
const unknownFormat = formats.find((format) => !WEIGHT_FORMATS.includes(format));
if (unknownFormat !== undefined) program.error(`--dtypes: unknown weight format '${unknownFormat}' (choose from ${WEIGHT_FORMATS.join(', ')})`);
// Before the checkpoint, which may take minutes to write: a peers folder lacking everything fails at once.
const opened = options.peers === undefined ? undefined : tryOpenPeers(options.peers, scenario === 'serve' ? [options.serveDtype] : formats);
for (const line of opened?.skipped ?? []) console.error(line);

const checkpoint = await ensureRandomCheckpoint(path.join(options.folder, 'gpt-neo-1.3B-random'));
const threads = Number(options.threads);

const runScript = path.join(path.dirname(fileURLToPath(import.meta.url)), 'run.js');
const cache = path.join(options.folder, 'conversions');
/** GPT-2's tokenizer files, for the server scenario (the random checkpoint has none). */
const tokenizerFixture = path.join(CHECKOUT, 'test', 'fixtures', 'gpt-neo', 'tiny-gpt2vocab');

/** Each measurement runs in a fresh process, so start-up time and peak RSS are the process's own. */
async function runChild(dtype: WeightFormat, spinning: 'on' | 'off'): Promise<RunReport> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [runScript, checkpoint, dtype, String(threads), options.decodeTokens, spinning],
    { env: { ...process.env, ...MALLOC_HUGE_PAGES, GPT_NEO_CACHE: cache, GPT_NEO_NO_PROGRESS: '1' }, maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout) as RunReport;
}

if (opened !== undefined) {
  if (scenario !== 'serve') await compareSideBySide(opened);
  if (scenario !== 'formats') await serveScenario(opened.llamaCpp);
  process.exit(0);
}

function tryOpenPeers(folder: string, peerFormats: readonly WeightFormat[]): OpenedPeers {
  const contexts = {
    'llama.cpp': peerContexts('llama.cpp', options.llamacppContexts),
    'transformers.js': peerContexts('transformers.js', options.transformersjsContexts),
  };
  try {
    // The same malloc settings as ours, so neither side has 2 MiB pages the other lacks.
    return openPeers(folder, peerFormats, { contexts, env: { ...process.env, ...MALLOC_HUGE_PAGES } });
  } catch (error) {
    return program.error(error instanceof Error ? error.message : String(error));
  }
}

/** A peer's --<peer>-contexts list, each one of the compared prompt lengths. */
function peerContexts(peer: PeerName, list: string): number[] {
  const option = `--${CONTEXTS_OPTIONS[peer]}`;
  const contexts = list.split(',').map(Number);
  const stray = contexts.find((context) => !(PEER_CONTEXTS as readonly number[]).includes(context));
  if (stray !== undefined) program.error(`${option}: ${stray} is not one of the compared prompt lengths (${PEER_CONTEXTS.join(', ')})`);
  return contexts;
}

async function compareSideBySide({ peers }: OpenedPeers): Promise<void> {
  const rounds = Number(options.rounds);
  const decodeTokens = Number(options.decodeTokens);
  const run = await runSideBySide({
    formats, rounds, threads, decodeTokens, peers,
    ours: async (format) => {
      const report = await runChild(format, 'on');
      return { decode: { [PEER_CONTEXTS[0]]: report.decodeShort, [PEER_CONTEXTS[1]]: report.decodeLong }, prefill512: report.prefill512 };
    },
    log: (message) => console.error(message),
  });
  console.log(`\nMachine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores\n`);
  console.log(sideBySideTable(summarize(run.samples, formats, peers), { rounds, threads, decodeTokens, peers, engines: run.engines, formats }));
}

console.error(`measuring memory read bandwidth with ${threads} threads...`);
const bandwidth = await measureReadBandwidth(threads);

const rows: string[][] = [];
for (const dtype of scenario === 'serve' ? [] : formats) {
  await rm(path.join(cache, 'onnx'), { recursive: true, force: true });
  console.error(`${dtype}: cold start (converting)...`);
  const cold = await runChild(dtype, 'on');
  console.error(`${dtype}: warm start...`);
  const warm = await runChild(dtype, 'on');
  console.error(`${dtype}: warm start, threads not spinning...`);
  const notSpinning = await runChild(dtype, 'off');
  console.error(`${dtype}: linear layers alone...`);
  const linearLayers = await measureLinearLayers(dtype, threads);
  const limit = bandwidth / warm.weightBytesPerToken;
  const effective = warm.decodeShort * warm.weightBytesPerToken;
  rows.push([
    dtype,
    (warm.weightBytes / 1e9).toFixed(2),
    (warm.weightBytesPerToken / 1e9).toFixed(2),
    warm.decodeShort.toFixed(2),
    notSpinning.decodeShort.toFixed(2),
    (effective / 1e9).toFixed(1),
    limit.toFixed(2),
    (warm.decodeShort / limit).toFixed(2),
    (linearLayers / 1e9).toFixed(1),
    (linearLayers / bandwidth).toFixed(2),
    (effective / linearLayers).toFixed(2),
    warm.decodeLong.toFixed(2),
    (warm.decodeLong / warm.decodeShort).toFixed(2),
    warm.prefill512.toFixed(1),
    cold.firstTokenSeconds.toFixed(1),
    warm.firstTokenSeconds.toFixed(1),
    (warm.peakRssBytes / 1e9).toFixed(2),
    ((1.25 * warm.weightBytes + 0.5e9) / 1e9).toFixed(2),
  ]);
}

const header = [
  'dtype', 'weights (GB)', 'weights read/token (GB)', 'decode tok/s @16', '(spinning off)', 'effective GB/s', 'limit tok/s', 'ratio',
  'linear layers alone GB/s', 'their ratio', 'decode / linear layers',
  'decode tok/s @1900', '@1900 / @16', 'prefill 512 tok/s', 'first token cold (s)', 'first token warm (s)',
  'peak RSS (GB)', 'RSS budget (GB)',
];
console.log(`\nMachine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ${threads} threads`);
console.log(`Measured read bandwidth: ${(bandwidth / 1e9).toFixed(1)} GB/s (float32 GEMV over 1 GiB in ONNX Runtime)`);
if (rows.length > 0) {
  console.log('Linear layers alone: one token through 1.2 B parameters of linear layers in that format, nothing else (the kernels\' own ceiling)\n');
  console.log(`| ${header.join(' | ')} |`);
  console.log(`|${header.map(() => '---').join('|')}|`);
  for (const row of rows) console.log(`| ${row.join(' | ')} |`);
}

if (scenario !== 'formats') await serveScenario(undefined);

/**
 * The server scenario in a fresh process; with a llama.cpp peer, `--rounds` times, each followed by llama.cpp's
 * batched run (1 sequence, then 8 at once) in the same format, and both speed-ups from 1 stream to 8 side by side.
 */
async function serveScenario(llamaCpp: LlamaCppPeer | undefined): Promise<void> {
  const dtype = options.serveDtype;
  const peer = llamaCpp?.missing(dtype) === undefined ? llamaCpp : undefined;
  if (llamaCpp !== undefined && peer === undefined) console.error(`llama.cpp's batched run skipped: ${llamaCpp.missing(dtype)}`);
  const rounds = peer === undefined ? 1 : Number(options.rounds);
  const reports: ServeReport[] = [];
  const peerScaling: number[] = [];
  const peerLines: string[] = [];
  for (let round = 1; round <= rounds; round++) {
    console.error(`serve (${dtype}): generate(), then the server with 1, 8, and 7 + 1 streams, then embeddings...`);
    reports.push(await runServe(dtype));
    if (peer === undefined) continue;
    console.error(`llama.cpp (${dtype}): 1 sequence, then ${SERVE_STREAMS} at once...`);
    try {
      const batched = await peer.batched(dtype, SERVE_STREAMS, SERVE_NEW_TOKENS, threads);
      peerScaling.push(batched.streamsTokensPerSecond / batched.oneStreamTokensPerSecond);
      peerLines.push(
        `round ${round}: ${batched.engine}, 1 sequence ${batched.oneStreamTokensPerSecond.toFixed(2)} tok/s, ` +
          `${batched.streams} sequences ${batched.streamsTokensPerSecond.toFixed(2)} tok/s`,
      );
    } catch (error) {
      console.error(`round ${round}: llama.cpp's batched run failed, left out: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  printServeReports(dtype, reports);
  if (peer === undefined) return;
  const ours = reports.map((report) => report.eightStreamsTokensPerSecond / report.singleStreamTokensPerSecond);
  console.log(
    `\n${batchedScalingLine(SERVE_STREAMS, ours, peerScaling)} ` +
      `(ours through the HTTP server; llama.cpp in one node-llama-cpp context of ${SERVE_STREAMS} sequences, each a different 16-token prompt, ` +
      `${SERVE_NEW_TOKENS} new tokens, greedy; rounds interleaved)`,
  );
  for (const line of peerLines) console.log(`- llama.cpp ${line}`);
}

async function runServe(dtype: WeightFormat): Promise<ServeReport> {
  const { stdout } = await promisify(execFile)(
    process.execPath,
    [path.join(path.dirname(runScript), 'serve.js'), checkpoint, dtype, String(threads), tokenizerFixture],
    { env: { ...process.env, GPT_NEO_CACHE: cache, GPT_NEO_NO_PROGRESS: '1' }, maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout) as ServeReport;
}

/** The server table, a row per run, and each run's prefix cache and embeddings lines. */
function printServeReports(dtype: WeightFormat, reports: readonly ServeReport[]): void {
  const middle = (values: readonly number[]) => spread(values).median;
  const label = (i: number) => (reports.length === 1 ? dtype : `${dtype}, round ${i + 1}`);
  const serveHeader = [
    'dtype', 'generate() tok/s', '1 stream tok/s', '1 stream / generate()', '8 streams tok/s', '8 streams / 1 stream',
    'decoding step 1 row / 8 rows (s)', '8 x 1-row step / 8-row step',
    'first token p50 (s), 128-token prompt + 7 streams', 'peak RSS (GB)', 'RSS budget (GB)',
  ];
  console.log('\nServer: 64 new tokens per stream after a 16-token prompt, greedy, streamed over HTTP on 127.0.0.1; 8 KV slots\n');
  console.log(`| ${serveHeader.join(' | ')} |`);
  console.log(`|${serveHeader.map(() => '---').join('|')}|`);
  for (const [i, serve] of reports.entries()) {
    console.log(
      `| ${[
        label(i),
        serve.generateTokensPerSecond.toFixed(2),
        serve.singleStreamTokensPerSecond.toFixed(2),
        (serve.singleStreamTokensPerSecond / serve.generateTokensPerSecond).toFixed(2),
        serve.eightStreamsTokensPerSecond.toFixed(2),
        (serve.eightStreamsTokensPerSecond / serve.singleStreamTokensPerSecond).toFixed(2),
        `${serve.stepSeconds.one.toFixed(3)} / ${serve.stepSeconds.eight.toFixed(3)}`,
        ((8 * serve.stepSeconds.one) / serve.stepSeconds.eight).toFixed(2),
        `${middle(serve.firstTokenSeconds).toFixed(2)} (${serve.firstTokenSeconds.map((s) => s.toFixed(2)).join(', ')})`,
        (serve.peakRssBytes / 1e9).toFixed(2),
        (serve.rssBudgetBytes / 1e9).toFixed(2),
      ].join(' | ')} |`,
    );
  }
  for (const [i, serve] of reports.entries()) {
    const prefix = reports.length === 1 ? '' : `${label(i)}: `;
    const { cold, shared } = serve.prefixFirstTokenSeconds;
    console.log(
      `\n${prefix}Prefix cache: first token of a 1,500-token prompt alone, p50 of ${cold.length}: ${middle(cold).toFixed(2)} s sharing nothing, ` +
        `${middle(shared).toFixed(2)} s sharing its first 1,450 tokens with the prompt before (${(middle(cold) / middle(shared)).toFixed(1)}x sooner)`,
    );
    const { tokensPerSecond, prefillTokensPerSecond } = serve.embeddings;
    console.log(
      `\n${prefix}Embeddings, 64 inputs of 128 tokens in one /v1/embeddings request: ${tokensPerSecond.toFixed(0)} tok/s; ` +
        `prefill of one 128-token prompt: ${prefillTokensPerSecond.toFixed(0)} tok/s (${(tokensPerSecond / prefillTokensPerSecond).toFixed(2)}x)`,
    );
  }
}
