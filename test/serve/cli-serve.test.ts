// `gpt-neo serve` as a process: it binds 127.0.0.1, takes its key from GPT_NEO_API_KEY or --api-key-file, and on
// SIGTERM finishes the request in flight, refuses new ones with 503, and exits 0.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import OpenAI from 'openai';
import { afterAll, describe, expect, it } from 'vitest';
import { apiKeyFrom } from '../../src/cli/serve.js';
import { fixture } from '../helpers/fixtures.js';

const BIN = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
let child: ChildProcess | undefined;
afterAll(() => child?.kill('SIGKILL'));

/** Starts the server on a free port; resolves with its base URL once it says where it listens. */
function serve(args: string[], apiKey: string | null = 'sk-test'): Promise<{ url: string; exited: Promise<number | null> }> {
  const { GPT_NEO_API_KEY: _, ...inherited } = process.env;
  const env = apiKey === null ? inherited : { ...inherited, GPT_NEO_API_KEY: apiKey };
  child = spawn('node', [BIN, 'serve', '--model', fixture('tiny-gpt2vocab'), '--port', '0', '--threads', '1', ...args], {
    env,
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
    const { url, exited } = await serve(['--served-model-name', 'tiny', '--drain-timeout', '20']);
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

  it('takes its key from --api-key-file: the first line, trimmed; /tokenize is guarded like /v1', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'gpt-neo-key-')), 'key');
    writeFileSync(file, '  sk-from-file \nsecond line\n');
    const { url } = await serve(['--api-key-file', file], null);
    const tokenize = (key?: string) =>
      fetch(`${url}/tokenize`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) },
        body: JSON.stringify({ prompt: 'Hi' }),
      });
    expect((await tokenize()).status).toBe(401);
    expect((await tokenize('sk-test')).status).toBe(401);
    expect((await tokenize('sk-from-file')).status).toBe(200);
    expect((await fetch(`${url}/health`)).status).toBe(200);
    child!.kill('SIGTERM');
  });

  it('refuses to start when the key file is missing, naming it', async () => {
    const missing = path.join(tmpdir(), 'gpt-neo-no-such-key-file');
    await expect(serve(['--api-key-file', missing], null)).rejects.toThrow(`cannot read the API key file ${missing}`);
  });
});

describe('apiKeyFrom', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'gpt-neo-key-'));
  const write = (name: string, text: string) => {
    writeFileSync(path.join(dir, name), text);
    return path.join(dir, name);
  };

  it('takes the environment alone, or the first trimmed line of the file alone', () => {
    expect(apiKeyFrom('sk-env', undefined)).toBe('sk-env');
    expect(apiKeyFrom('', undefined)).toBeUndefined();
    expect(apiKeyFrom(undefined, undefined)).toBeUndefined();
    expect(apiKeyFrom(undefined, write('crlf', 'sk-1\r\nsk-2'))).toBe('sk-1');
  });

  it('refuses an empty or unreadable file and both sources at once, naming the path', () => {
    const empty = write('empty', '\n  \nsk-on-line-3\n');
    expect(() => apiKeyFrom(undefined, empty)).toThrow(`the API key file ${empty} is empty`);
    expect(() => apiKeyFrom(undefined, dir)).toThrow(`cannot read the API key file ${dir}`);
    expect(() => apiKeyFrom('sk-env', write('key', 'sk-file'))).toThrow('both GPT_NEO_API_KEY and --api-key-file');
  });
});
