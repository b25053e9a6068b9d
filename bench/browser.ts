// `npm run bench:browser`: decode speed in headless Chromium (onnxruntime-web, WebAssembly, 2 threads) next to
// Node (onnxruntime-node, 2 threads), on random weights of the GPT-Neo 125M shape in q8 and the 1.3B shape in q4,
// measured in one run with the same generate() call.
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Command } from 'commander';
import { GPTNeoForCausalLM, type WeightFormat } from '../src/index.js';
import { launchChromium } from '../test/helpers/chromium.js';
import { ensureRandomCheckpoint, GPT_NEO_1_3B_CONFIG, writeRandomCheckpoint } from '../test/helpers/random-checkpoint.js';
import { startDemoServer } from './internals.js';

/** config.json of EleutherAI/gpt-neo-125M, as published (what differs from the 1.3B). */
const GPT_NEO_125M_CONFIG = {
  ...GPT_NEO_1_3B_CONFIG,
  attention_layers: Array.from({ length: 12 }, (_, i) => (i % 2 === 0 ? 'global' : 'local')),
  attention_types: [[['global', 'local'], 6]],
  hidden_size: 768,
  num_heads: 12,
  num_layers: 12,
};

const program = new Command('bench:browser')
  .description('Decode speed in headless Chromium next to Node, on GPT-Neo-shaped random weights')
  .option('--folder <dir>', 'where the random checkpoints and Node conversions live', path.join(os.homedir(), '.cache', 'gpt-neo-bench'))
  .option('--runs <list>', 'shape:dtype pairs', '125M:q8,1.3B:q4')
  .option('--threads <n>', 'threads in both', '2')
  .option('--decode-tokens <n>', 'tokens decoded per measurement', '32')
  .option('--rounds <n>', 'times the whole list is measured, Node and page alternating (a shared machine varies)', '1')
  .parse();
const options = program.opts<{ folder: string; runs: string; threads: string; decodeTokens: string; rounds: string }>();
const threads = Number(options.threads);
const decodeTokens = Number(options.decodeTokens);

/**
 * Tokens/s of greedy generate() after a 16-token prompt, from the first new token to the last: what a user
 * watching the stream sees. Self-contained, because the same function runs in the page.
 */
async function decodeTokensPerSecond(
  model: Pick<GPTNeoForCausalLM, 'generate'>,
  tokens: number,
): Promise<number> {
  const times: number[] = [];
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 7919) % 50000);
  await model.generate({
    input_ids: [prompt],
    max_new_tokens: tokens + 1,
    min_new_tokens: tokens + 1,
    streamer: { put: (ids: number[]) => ids.forEach(() => times.push(performance.now())), end() {} },
  });
  return tokens / ((times.at(-1)! - times[0]!) / 1000);
}

/**
 * Median milliseconds of one decoding step's forward() (embedding lookup, masks, the graph's run with the
 * copies in and out of the runtime, the KV cache update) after a 16-token prompt: with tokens/s, it splits a
 * token's time into the model's step and what generation adds around it (choosing, streaming). Self-contained.
 */
async function forwardStepMs(model: Pick<GPTNeoForCausalLM, 'createSession'>, steps: number): Promise<number> {
  const session = model.createSession(1, 16 + steps);
  const prompt = Array.from({ length: 16 }, (_, i) => (i * 7919) % 50000);
  await session.forward({ input_ids: [prompt] });
  const times: number[] = [];
  for (let step = 0; step < steps; step++) {
    const started = performance.now();
    await session.forward({ input_ids: [[(step * 104729) % 50000]] });
    times.push(performance.now() - started);
  }
  session.dispose();
  return times.sort((a, b) => a - b)[Math.floor(steps / 2)]!;
}

async function checkpointFor(shape: string): Promise<string> {
  if (shape === '1.3B') return ensureRandomCheckpoint(path.join(options.folder, 'gpt-neo-1.3B-random'));
  if (shape !== '125M') throw new Error(`unknown shape '${shape}' (125M or 1.3B)`);
  const folder = path.join(options.folder, 'browser', 'gpt-neo-125M-random');
  if (!existsSync(path.join(folder, 'model.safetensors'))) await writeRandomCheckpoint(folder, GPT_NEO_125M_CONFIG);
  return folder;
}

process.env.GPT_NEO_CACHE = path.join(options.folder, 'browser', 'conversions');
const rows: string[][] = [];
const runs = Array.from({ length: Number(options.rounds) }, () => options.runs.split(',')).flat();
for (const run of runs) {
  const [shape, dtype] = run.split(':') as [string, WeightFormat];
  const folder = await checkpointFor(shape);

  console.error(`${shape} ${dtype}: Node...`);
  const model = await GPTNeoForCausalLM.from_pretrained(folder, { dtype, threads });
  await decodeTokensPerSecond(model, 4); // warm-up
  const node = await decodeTokensPerSecond(model, decodeTokens);
  const nodeStepMs = await forwardStepMs(model, decodeTokens);
  await model.dispose();

  console.error(`${shape} ${dtype}: Chromium (converting in the page)...`);
  const server = await startDemoServer({ model: folder, dtype, port: 0 });
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    await page.goto(new URL('demo-config.json', server.url).href);
    await page.addScriptTag({ type: 'module', content: "import * as lib from '/gpt-neo.js'; window.gptNeo = lib;" });
    await page.waitForFunction(() => 'gptNeo' in window);
    const inPage = await page.evaluate(
      async ({ source, stepSource, dtype, threads, decodeTokens }) => {
        const lib = (window as any).gptNeo;
        const measure = (0, eval)(`(${source})`);
        const measureStep = (0, eval)(`(${stepSource})`);
        const started = performance.now();
        const loaded = await lib.loadBrowserModel({ url: '/model/' }, { dtype, threads });
        const loadSeconds = (performance.now() - started) / 1000;
        await measure(loaded.model, 4);
        const tokensPerSecond = await measure(loaded.model, decodeTokens);
        const stepMs = await measureStep(loaded.model, decodeTokens);
        await loaded.model.dispose();
        return { tokensPerSecond, stepMs, loadSeconds, threads: loaded.threads, isolated: crossOriginIsolated };
      },
      { source: decodeTokensPerSecond.toString(), stepSource: forwardStepMs.toString(), dtype, threads, decodeTokens },
    );
    if (inPage.threads !== threads) throw new Error(`the page ran ${inPage.threads} threads, not ${threads} (cross-origin isolated: ${inPage.isolated})`);
    rows.push([
      shape,
      dtype,
      node.toFixed(2),
      inPage.tokensPerSecond.toFixed(2),
      (inPage.tokensPerSecond / node).toFixed(2),
      nodeStepMs.toFixed(1),
      inPage.stepMs.toFixed(1),
      inPage.loadSeconds.toFixed(1),
    ]);
    console.error(`| ${rows.at(-1)!.join(' | ')} |`); // each row as soon as it is measured: a long run may be stopped
  } finally {
    await browser.close();
    await server.close();
  }
}

console.log(`\nMachine: ${os.cpus()[0]?.model ?? 'unknown CPU'}, ${os.availableParallelism()} cores; ${threads} threads in Node and in the page`);
const header = [
  'shape',
  'dtype',
  'Node decode tok/s',
  'Chromium decode tok/s',
  'Chromium / Node',
  'Node forward ms/step',
  'Chromium forward ms/step',
  'page load + conversion (s)',
];
console.log(`| ${header.join(' | ')} |`);
console.log(`|${header.map(() => '---').join('|')}|`);
for (const row of rows) console.log(`| ${row.join(' | ')} |`);
