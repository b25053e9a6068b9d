// `gpt-neo demo` as a real process: what it serves and the headers WASM threads need (the page itself is
// driven in browser.test.ts).
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { buildBrowser } from '../../scripts/build-browser.mjs';
import { fixture } from '../helpers/fixtures.js';

const BIN = path.join(import.meta.dirname, '..', '..', 'dist', 'cli', 'main.js');
let demo: ChildProcess;
let url: string;

beforeAll(async () => {
  await buildBrowser({ minify: false });
  demo = spawn('node', [BIN, 'demo', '--model', fixture('tiny-random'), '--dtype', 'q4', '--port', '0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  const [line] = (await once(demo.stdout!, 'data')) as [Buffer];
  url = /open (http:\/\/\S+)/.exec(line.toString())![1]!;
});
afterAll(() => {
  demo?.kill();
});

it('serves the page cross-origin isolated, its settings, and the model folder with byte ranges', async () => {
  const page = await fetch(url);
  expect(page.status).toBe(200);
  expect(page.headers.get('cross-origin-opener-policy')).toBe('same-origin');
  expect(page.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
  expect(await page.text()).toContain('id="generate"');

  expect(await (await fetch(new URL('demo-config.json', url))).json()).toEqual({ model: '/model/', dtype: 'q4' });

  const range = await fetch(new URL('model/model.safetensors', url), { headers: { Range: 'bytes=8-15' } });
  expect(range.status).toBe(206);
  const weights = await readFile(fixture('tiny-random', 'model.safetensors'));
  expect(Buffer.from(await range.arrayBuffer())).toEqual(weights.subarray(8, 16));
  expect(range.headers.get('content-range')).toBe(`bytes 8-15/${weights.length}`);
  for (const build of ['ort-wasm-simd-threaded.wasm', 'ort-wasm-simd-threaded.jsep.wasm']) {
    expect((await fetch(new URL(`ort/${build}`, url), { method: 'HEAD' })).status).toBe(200);
  }
});

it('refuses a weight format it does not know and a model that is neither a folder nor a Hub id', async () => {
  const run = (...args: string[]) =>
    promisify(execFile)('node', [BIN, 'demo', ...args]).then(
      () => ({ code: 0, stderr: '' }),
      (error: { code: number; stderr: string }) => error,
    );
  const dtype = await run('--dtype', 'q2');
  expect(dtype.code).not.toBe(0);
  expect(dtype.stderr).toMatch(/--dtype.*must be one of fp32, q8, q4/);
  const model = await run('--model', 'not a/valid--id', '--port', '0');
  expect(model.code).not.toBe(0);
  expect(model.stderr).toMatch(/gpt-neo: "not a\/valid--id" is neither an existing folder nor a Hugging Face repo id/);
});
