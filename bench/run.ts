// One benchmark process: load (converting on a cold cache), then time first token, decode and prefill.
import { readFileSync } from 'node:fs';
// The model's modules alone, not the package's index: the whole package would add to the start-up time measured here.
import type { WeightFormat } from '../src/convert/index.js';
import { GPTNeoForCausalLM } from '../src/modeling/index.js';
import { promptTokens as prompt } from './prompt.js';
import { weightBytes } from './weight-bytes.js';

export interface RunReport {
  firstTokenSeconds: number;
  /** Bytes of all weights the model holds (the RSS budget is 1.25 x this + 0.5 GB). */
  weightBytes: number;
  /** Bytes of weights one decoded token reads: every linear layer and the head, one embedding row each. */
  weightBytesPerToken: number;
  decodeShort: number;
  decodeLong: number;
  /** Not measured (0) when only decoding is asked for. */
  prefill512: number;
  peakRssBytes: number;
  /** Of the process's anonymous memory, the bytes in 2 MiB pages after decoding (AnonHugePages). */
  hugePageBytes: number;
}

const [folder, dtype, threadsText, decodeTokensText, spinningText, scope = 'all'] = process.argv.slice(2) as [string, WeightFormat, string, string, string, string?];
const decodeTokens = Number(decodeTokensText);

const model = await GPTNeoForCausalLM.from_pretrained(folder, { dtype, threads: Number(threadsText), spinning: spinningText === 'on' });

// Time to first token: process start -> the first generated token of a short prompt.
const first = model.createSession(1);
await first.forward({ input_ids: [prompt(8)] });
const firstTokenSeconds = performance.now() / 1000;
first.dispose();

async function decodeSpeed(context: number): Promise<number> {
  // Sized for its whole length up front, as generate() does.
  const session = model.createSession(1, context + 1 + decodeTokens);
  await session.forward({ input_ids: [prompt(context)] });
  await session.forward({ input_ids: [[11]] }); // warm-up step
  const started = performance.now();
  for (let i = 0; i < decodeTokens; i++) await session.forward({ input_ids: [[(i * 31) % 50000]] });
  session.dispose();
  return decodeTokens / ((performance.now() - started) / 1000);
}

const decodeShort = await decodeSpeed(16);
const decodeLong = await decodeSpeed(1900);

/**
 * Tokens/s of a `length`-token prompt into an empty cache, the second of two: the first pays for the cache's fresh
 * memory (page faults, which on a VM can take a good part of a second), as the peers' drivers run an untimed
 * prompt of the same length first too.
 */
async function prefillSpeed(length: number): Promise<number> {
  let seconds = 0;
  for (const salt of [1, 2]) {
    const prefill = model.createSession(1);
    const started = performance.now();
    await prefill.forward({ input_ids: [prompt(length, salt)] });
    seconds = (performance.now() - started) / 1000;
    prefill.dispose();
  }
  return length / seconds;
}
const prefill512 = scope === 'decode' ? 0 : await prefillSpeed(512);

const bytes = weightBytes(model.config, dtype);
const report: RunReport = {
  firstTokenSeconds,
  weightBytes: bytes.total,
  weightBytesPerToken: bytes.perToken,
  decodeShort,
  decodeLong,
  prefill512,
  peakRssBytes: process.resourceUsage().maxRSS * 1024,
  hugePageBytes: anonHugePageBytes(),
};
await model.dispose();
process.stdout.write(JSON.stringify(report));

function anonHugePageBytes(): number {
  const line = /^AnonHugePages:\s+(\d+) kB/m.exec(readFileSync('/proc/self/smaps_rollup', 'utf8'));
  return line ? Number(line[1]) * 1024 : 0;
}
