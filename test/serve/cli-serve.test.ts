// `gpt-neo serve` as a process: it binds 127.0.0.1, takes its key from GPT_NEO_API_KEY, and on SIGTERM finishes
// the request in flight, refuses new ones with 503, and exits 0.
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { fixture } from '../helpers/fixtures.js';

const BIN = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
let child: ChildProcess | undefined;
afterAll(() => child?.kill('SIGKILL'));

/** Starts the server on a free port; resolves with its base URL once it says where it listens. */
function serve(...args: string[]): Promise<{ url: string; exited: Promise<number | null> }> {
  child = spawn('node', [BIN, 'serve', '--model', fixture('tiny-gpt2vocab'), '--port', '0', '--threads', '1', ...args], {
    env: { ...process.env, GPT_NEO_API_KEY: 'sk-test' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<number | null>((resolve) => child!.on('exit', resolve));
  return new Promise((resolve, reject) => {
    let stderr = '';
    child!.stderr!.on('data', (data: Buffer) => {
      stderr += data.toString();
      const url = /at (http:\/\/[^\s]+)\/v1/.exec(stderr)?.[1];
      if (url) resolve({ url, exited });
    });
    exited.then((code) => reject(new Error(`serve exited with ${code}: ${stderr}`)));
  });
}

describe('gpt-neo serve', () => {
  it('drains on SIGTERM: the running stream completes, new requests get 503, exit code 0', async () => {
    const { url, exited } = await serve('--served-model-name', 'tiny', '--drain-timeout', '20');
    expect(new URL(url).hostname).toBe('127.0.0.1');
    expect((await fetch(`${url}/v1/models`)).status).toBe(401);
    const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: 'sk-test', maxRetries: 0 });
    const stream = await client.completions.create({ model: 'tiny', prompt: 'Hello', max_tokens: 100, temperature: 0, stream: true });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    child!.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 50));
    const refused = await fetch(`${url}/v1/models`, { headers: { authorization: 'Bearer sk-test' } });
    expect(refused.status).toBe(503);
    let finish: string | null | undefined;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) {
      finish = next.value.choices[0]?.finish_reason ?? finish;
    }
    expect(finish).toBe('length');
    expect(await exited).toBe(0);
  });
});
