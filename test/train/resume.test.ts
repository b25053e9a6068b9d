// Kill -9 a real training process, resume it, and get the weights of an uninterrupted run.
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.js';
import { TRAIN_TEXT } from './helpers.js';

const BIN = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
const trainArgs = (outputDir: string) => [
  BIN, 'train', '--model', fixture('tiny-gpt2vocab'), '--train-file', TRAIN_TEXT, '--output-dir', outputDir,
  '--max-steps', '12', '--save-steps', '2', '--block-size', '32', '--batch-size', '2', '--gradient-accumulation-steps', '2',
  '--learning-rate', '2e-3', '--warmup-steps', '2', '--seed', '5', '--logging-steps', '1', '--threads', '2',
];

const run = (args: string[]) => promisify(execFile)('node', args);

describe('kill -9 and --resume', () => {
  it('ends with the same weights, bit for bit, as an uninterrupted run with the same seed', async () => {
    const uninterrupted = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-run-'));
    await run(trainArgs(uninterrupted));

    const killed = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-killed-'));
    const child = spawn('node', trainArgs(killed), { stdio: 'ignore' });
    const exited = new Promise((resolve) => child.once('exit', resolve));
    // Kill it as soon as its second checkpoint exists: it is then already computing (or writing) the next one.
    await new Promise<void>((resolve, reject) => {
      const poll = setInterval(() => {
        if (existsSync(path.join(killed, 'checkpoint-4'))) {
          clearInterval(poll);
          child.kill('SIGKILL');
          resolve();
        } else if (child.exitCode !== null) {
          clearInterval(poll);
          reject(new Error('the run ended before it could be killed'));
        }
      }, 5);
    });
    await exited;
    expect(child.signalCode).toBe('SIGKILL');
    expect(existsSync(path.join(killed, 'model.safetensors'))).toBe(false);

    const { stdout } = await run([...trainArgs(killed), '--resume']);
    const steps = stdout.trim().split('\n').map((line) => JSON.parse(line)).filter((r) => 'loss' in r).map((r) => r.step);
    expect(steps[0]).toBeGreaterThan(4); // it continued, it did not start over
    expect(steps.at(-1)).toBe(12);
    expect(readdirSync(killed).some((entry) => entry.includes('.partial-'))).toBe(false);
    expect(readFileSync(path.join(killed, 'model.safetensors')).equals(readFileSync(path.join(uninterrupted, 'model.safetensors')))).toBe(true);
  });
});
