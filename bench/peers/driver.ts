// What the peers' drivers (llamacpp-run.ts, transformersjs-run.ts) share. Each driver runs in a fresh process, so
// a peer's memory, threads and start-up are its own and nothing of it loads into the bench; it imports the peer's
// package from the peers folder (never from this checkout's dependencies) and prints one JSON line.
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

export { promptTokens } from '../prompt.js';

/** A driver's answer in decode mode. */
export interface DecodeReport {
  /** The engine and its version, e.g. "node-llama-cpp 3.21.1 (llama.cpp b1234)". */
  engine: string;
  /** Batch-1 decode tokens/s after a prompt of each context length (keys are the lengths). */
  decode: Record<string, number>;
  /** Tokens/s of one prompt of `tokens` tokens into an empty cache (after an untimed one of the same length). */
  prefill: { tokens: number; tokensPerSecond: number };
}

/** A driver's answer in batched mode: `streams` sequences generating at once against one alone. */
export interface BatchedReport {
  engine: string;
  streams: number;
  /** New tokens/s of one sequence: prompt, then its new tokens, until the last. */
  oneStreamTokensPerSecond: number;
  /** All sequences' new tokens over the time until the last one ends. */
  streamsTokensPerSecond: number;
}

/** A package installed in `nodeModules` (a folder of the peers kit) and the version it says it is. */
export async function importPeerPackage(nodeModules: string, name: string): Promise<{ module: unknown; version: string; entry: string }> {
  // Resolving from a file inside the folder finds the package as an application installed there would.
  const require = createRequire(path.join(path.resolve(nodeModules), 'peer-entry.js'));
  let entry: string;
  try {
    entry = require.resolve(name);
  } catch {
    throw new Error(`${name} is not installed in ${nodeModules}`);
  }
  const module: unknown = await import(pathToFileURL(entry).href);
  return { module, version: packageVersion(entry, name), entry };
}

/** The version of `name` as the package that holds `file` would load it. */
export function dependencyVersion(file: string, name: string): string {
  try {
    return packageVersion(createRequire(file).resolve(name), name);
  } catch {
    return 'unknown version';
  }
}

/** The version in the package.json of package `name` above `file` (a file of that package). */
export function packageVersion(file: string, name: string): string {
  for (let folder = path.dirname(file); folder !== path.dirname(folder); folder = path.dirname(folder)) {
    const manifest = path.join(folder, 'package.json');
    if (!existsSync(manifest)) continue;
    const { name: found, version } = JSON.parse(readFileSync(manifest, 'utf8')) as { name?: string; version?: string };
    if (found === name) return version ?? 'unknown version';
  }
  return 'unknown version';
}

/** The value of a positive integer option, or an error naming it. */
export function positiveInteger(option: string, value: string | undefined): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new Error(`${option} must be a positive integer, got ${value ?? 'nothing'}`);
  return n;
}

/** A comma-separated list of positive integers, or an error naming the option. */
export function positiveIntegers(option: string, value: string | undefined): number[] {
  return (value ?? '').split(',').map((item) => positiveInteger(option, item));
}

/** Seconds since `started` (a performance.now() reading). */
export function secondsSince(started: number): number {
  return (performance.now() - started) / 1000;
}

/**
 * Runs a driver's body: its report goes to stdout as one JSON line; a failure's message goes last on stderr, where
 * the bench reads it, with exit status 1.
 */
export function runDriver(body: () => Promise<DecodeReport | BatchedReport>): void {
  // Exits explicitly once the line is out: a peer's native worker threads must not keep the process alive.
  body().then(
    (report) => process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0)),
    (error: unknown) => {
      const { stack, message } = error instanceof Error ? error : { stack: undefined, message: String(error) };
      process.stderr.write(`${stack ?? ''}\n${message}\n`, () => process.exit(1));
    },
  );
}
