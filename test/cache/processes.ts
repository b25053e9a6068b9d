// Real `gpt-neo` processes for the shared-cache tests: the built CLI, started and killed like a user would;
// and model loads in this process, which take the same locks.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';

export const BIN = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface Running {
  child: ChildProcess;
  finished: Promise<Finished>;
}

export function startCli(args: string[], env: Record<string, string>): Running {
  const child = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const finished = new Promise<Finished>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, finished };
}

export function runCli(args: string[], env: Record<string, string>): Promise<Finished> {
  return startCli(args, env).finished;
}

/** Loads a model folder (converting it if the cache lacks it), runs three tokens through it, releases it. */
export async function logitsOf(folder: string): Promise<Float32Array> {
  const model = await GPTNeoForCausalLM.from_pretrained(folder);
  try {
    return (await model.forward({ input_ids: [[1, 2, 3]] })).logits.data as Float32Array;
  } finally {
    await model.dispose();
  }
}
