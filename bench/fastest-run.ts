import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type GraphBuilder, MODEL_FILE, type OrtTensor, type RuntimeOptions, RuntimeSession, writeOnnxModel } from './internals.js';

/**
 * Calls `work` `runs` times after two warm-up calls and returns the fastest call in seconds: on a shared machine
 * the fastest is the one least disturbed by others.
 */
export async function fastestOf(work: () => Promise<unknown>, runs: number): Promise<number> {
  let best = Infinity;
  for (let run = 0; run < runs + 2; run++) {
    const started = performance.now();
    await work();
    if (run >= 2) best = Math.min(best, (performance.now() - started) / 1000);
  }
  return best;
}

/** A graph written to a temporary folder and opened, to be timed as often as wanted, then closed. */
export interface TimedGraph {
  /** Runs the graph `runs` times (after two warm-up runs) and returns the fastest run in seconds. */
  fastest(runs?: number): Promise<number>;
  close(): Promise<void>;
}

export async function openTimedGraph(graph: GraphBuilder, feeds: Record<string, OrtTensor>, options: RuntimeOptions, label: string): Promise<TimedGraph> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-bench-'));
  try {
    await writeOnnxModel(graph, path.join(folder, 'model'), label);
    const session = await RuntimeSession.create(path.join(folder, 'model', MODEL_FILE), options);
    return {
      fastest: (runs = 10) => fastestOf(() => session.run(feeds), runs),
      async close() {
        await session.release();
        await rm(folder, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await rm(folder, { recursive: true, force: true });
    throw error;
  }
}

/**
 * Writes `graph` to a temporary folder, runs it 12 times on `feeds` and returns the fastest run in seconds
 * (after two warm-up runs): on a shared machine the fastest run is the one least disturbed by others.
 */
export async function fastestRun(graph: GraphBuilder, feeds: Record<string, OrtTensor>, options: RuntimeOptions, label: string): Promise<number> {
  const timed = await openTimedGraph(graph, feeds, options, label);
  try {
    return await timed.fastest();
  } finally {
    await timed.close();
  }
}
