// Runs a peer's driver in a fresh process and reads the one JSON line it prints, checking it before any number of
// it reaches the table: a peer that printed nothing usable fails loudly rather than showing up as a speed.
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import type { BatchedReport, DecodeReport } from './driver.js';

/** A peer run may be long (transformers.js prefills 1,900 tokens at under a hundred tokens/s in fp32), but ends. */
const DRIVER_TIMEOUT_MS = 60 * 60 * 1000;

/** The driver's report, parsed; its failure names the command and ends with the driver's own last words. */
export async function runInFreshProcess(script: string, args: readonly string[], env: NodeJS.ProcessEnv | undefined): Promise<unknown> {
  const command = `node ${path.basename(script)} ${args.join(' ')}`;
  const { stdout } = await promisify(execFile)(process.execPath, [script, ...args], { env, maxBuffer: 16 << 20, timeout: DRIVER_TIMEOUT_MS }).catch(
    (error: { stderr?: string; message: string; killed?: boolean }) => {
      const lastLines = (error.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
      const cause = error.killed ? `no answer within ${DRIVER_TIMEOUT_MS / 60000} minutes` : lastLines || error.message;
      throw new Error(`${command} failed: ${cause}`);
    },
  );
  return lastJsonLine(stdout, command);
}

/** The last line of `stdout` that is a JSON object (native libraries may print before it). */
export function lastJsonLine(stdout: string, command: string): unknown {
  const line = stdout
    .split('\n')
    .map((text) => text.trim())
    .filter((text) => text.startsWith('{'))
    .at(-1);
  if (line === undefined) throw new Error(`${command} printed no report (got: ${stdout.trim().slice(0, 200) || 'nothing'})`);
  return JSON.parse(line) as unknown;
}

/** Decode tokens/s after each prompt length and prefill tokens/s of one run, ours or a peer's. */
export interface Speeds {
  /** Batch-1 decode tokens/s after a prompt of each context length. */
  decode: Record<number, number>;
  /** Tokens/s of one 512-token prompt into an empty cache. */
  prefill512: number;
}

export interface PeerSpeeds extends Speeds {
  /** The engine and its version, as the driver found them. */
  engine: string;
}

/** A decode report with a speed for every context asked for and a 512-token prefill, or an error saying what is not there. */
export function readDecodeReport(report: unknown, contexts: readonly number[], command: string): PeerSpeeds {
  const { engine, decode, prefill } = (report ?? {}) as Partial<DecodeReport>;
  if (prefill?.tokens !== 512) throw new Error(`${command} reported no prefill of 512 tokens (got ${JSON.stringify(prefill) ?? 'nothing'})`);
  const speeds: PeerSpeeds = {
    engine: typeof engine === 'string' ? engine : 'unknown engine',
    decode: {},
    prefill512: speed(prefill.tokensPerSecond, 'prefill speed', command),
  };
  for (const context of contexts) speeds.decode[context] = speed(decode?.[context], `decode speed after ${context} tokens`, command);
  return speeds;
}

/** A batched report with every speed present, or an error saying which is not. */
export function readBatchedReport(report: unknown, command: string): BatchedReport {
  const { engine, streams, oneStreamTokensPerSecond, streamsTokensPerSecond } = (report ?? {}) as Partial<BatchedReport>;
  return {
    engine: typeof engine === 'string' ? engine : 'unknown engine',
    streams: speed(streams, 'streams', command),
    oneStreamTokensPerSecond: speed(oneStreamTokensPerSecond, 'oneStreamTokensPerSecond', command),
    streamsTokensPerSecond: speed(streamsTokensPerSecond, 'streamsTokensPerSecond', command),
  };
}

function speed(value: unknown, what: string, command: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new Error(`${command} reported no ${what} (got ${JSON.stringify(value) ?? 'nothing'})`);
  }
  return value;
}
