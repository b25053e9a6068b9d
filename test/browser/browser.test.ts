// The browser build in headless Chromium: parity with Hugging Face's logits, greedy generation equal to Node's,
// the demo page, and clear errors on the page. One browser and server for the file: the first start of ONNX
// Runtime's WebAssembly costs most of the time.
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { defaultThreads } from '../../src/browser/runtime.js';
import type { WeightFormat } from '../../src/convert/index.js';
import { pipeline } from '../../src/pipeline/index.js';
import { fixture, maxAbsDiff, readReference } from '../helpers/fixtures.js';
import { type BrowserHarness, expectReferenceLogits, forwardInPage, referenceCases, startBrowser } from './browser.js';

/** The text Node's pipeline generates greedily: what the demo page must show. */
async function greedyInNode(model: string, dtype: WeightFormat, prompt: string, tokens: number): Promise<string> {
  const node = await pipeline('text-generation', fixture(model), { dtype, progress: false });
  const [{ generated_text }] = await node(prompt, { max_new_tokens: tokens, do_sample: false });
  await node.dispose();
  return generated_text;
}

let harness: BrowserHarness;
/** One page for the library tests: ONNX Runtime's WebAssembly starts once per page, and that is most of the time. */
let library: Page;
let broken: string;

beforeAll(async () => {
  // A model folder whose weights file is cut short: the page must say so.
  broken = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-broken-'));
  for (const name of ['config.json', 'vocab.json', 'merges.txt']) await copyFile(fixture('tiny-gpt2vocab', name), path.join(broken, name));
  const weights = await readFile(fixture('tiny-gpt2vocab', 'model.safetensors'));
  await writeFile(path.join(broken, 'model.safetensors'), weights.subarray(0, 5000));
  harness = await startBrowser(fixture('tiny-gpt2vocab'), 'fp32', { '/broken/': broken });
  library = await harness.libraryPage();
});

afterAll(async () => {
  await harness?.close();
  await rm(broken, { recursive: true, force: true });
});

describe.each(['tiny-random', 'tiny-random-fp16', 'tiny-random-bf16', 'tiny-gpt2vocab'])('%s in the page', (name) => {
  const ref = readReference(name);

  it('gives the reference logits within 1e-4 (every forward case and the left-padded batch)', async () => {
    expectReferenceLogits(ref, await forwardInPage(library, name, { dtype: 'fp32' }, referenceCases(ref)));
  });
});

it('reads pytorch_model.bin (the zip directory by random access) and gives the reference logits', async () => {
  const ref = readReference('tiny-random');
  // Without model.safetensors, which the loader would prefer.
  const files = ['config.json', 'pytorch_model.bin'];
  expectReferenceLogits(ref, await forwardInPage(library, 'tiny-random', { dtype: 'fp32', files }, referenceCases(ref)));
});

it("runs device 'wasm' on onnxruntime-web's plain WebAssembly build, not the slower JSEP (WebGPU) one", async () => {
  const loaded = await library.evaluate(async () => {
    const lib = (window as any).gptNeo;
    const { model, device } = await lib.loadBrowserModel({ url: '/fixtures/tiny-random/' }, { device: 'wasm' });
    await model.dispose();
    return { device, fetched: performance.getEntriesByType('resource').map((entry) => new URL(entry.name).pathname) };
  });
  expect(loaded.device).toBe('wasm');
  expect(loaded.fetched).toContain('/ort/ort-wasm-simd-threaded.wasm');
  expect(loaded.fetched.filter((file) => file.includes('.jsep.'))).toEqual([]);
});

describe('generation in the page', () => {
  const prompt = 'It was a dark and stormy night, and';

  it.each(['fp32', 'q8', 'q4'] as const)('greedy %s equals generate() in Node, streamed piece by piece', async (dtype) => {
    const node = await pipeline('text-generation', fixture('tiny-trained'), { dtype, progress: false });
    const ids = node.tokenizer.encode(prompt);
    const nodeIds = (await node.model.generate({ input_ids: [ids], max_new_tokens: 24 }))[0]!;
    const [{ generated_text: nodeText }] = await node(prompt, { max_new_tokens: 24, do_sample: false });
    await node.dispose();

    const inPage = await library.evaluate(
      async ({ prompt, ids, dtype }) => {
        const lib = (window as any).gptNeo;
        const generator = await lib.pipeline('text-generation', '/fixtures/tiny-trained/', { dtype });
        const sequence = (await generator.model.generate({ input_ids: [ids], max_new_tokens: 24 }))[0];
        const pieces: string[] = [];
        for await (const piece of generator.stream(prompt, { max_new_tokens: 24, do_sample: false })) pieces.push(piece);
        await generator.dispose();
        return { sequence, pieces };
      },
      { prompt, ids, dtype },
    );
    expect(inPage.sequence).toEqual(nodeIds);
    expect(nodeIds.length).toBe(ids.length + 24);
    expect(inPage.pieces.length).toBeGreaterThan(1);
    expect(prompt + inPage.pieces.join('')).toBe(nodeText);
  });

  it('greedy decoding of the reference cases gives the reference tokens (KV cache in the page)', async () => {
    const ref = readReference('tiny-random');
    const sequences = await library.evaluate(async (cases) => {
      const lib = (window as any).gptNeo;
      const model = await lib.GPTNeoForCausalLM.from_pretrained('/fixtures/tiny-random/');
      const out = [];
      for (const c of cases) out.push(await model.generate({ input_ids: c.input_ids, attention_mask: c.attention_mask ?? undefined, max_new_tokens: c.max_new_tokens }));
      await model.dispose();
      return out;
    }, ref.greedy);
    ref.greedy.forEach((c: any, i: number) => {
      const newIds: number[][] = Array.isArray(c.new_ids[0]) ? c.new_ids : [c.new_ids];
      expect(sequences[i]).toEqual(c.input_ids.map((row: number[], b: number) => row.concat(newIds[b]!)));
    });
  });
});

describe("the page's own kernel for quantized products", () => {
  it.each([
    ['q4', 1],
    ['q4', 2],
    ['q8', 2],
  ] as const)('runs %s on %i thread(s): the logits and greedy tokens of Node, where ONNX Runtime multiplies', async (dtype, threads) => {
    const input_ids = [[464, 2068, 7586, 21831, 18045, 625, 262, 16931, 3290, 13]];
    const node = await pipeline('text-generation', fixture('tiny-trained'), { dtype, progress: false });
    const expected = await node.model.forward({ input_ids });
    const nodeIds = (await node.model.generate({ input_ids: [input_ids[0]!.slice(0, 3)], max_new_tokens: 16 }))[0]!;
    await node.dispose();

    const page = await harness.libraryPage();
    const inPage = await page.evaluate(
      async ({ input_ids, threads, dtype }) => {
        const lib = (window as any).gptNeo;
        const loaded = await lib.loadBrowserModel({ url: '/fixtures/tiny-trained/' }, { dtype, device: 'wasm', threads });
        const { logits } = await loaded.model.forward({ input_ids });
        const ids = (await loaded.model.generate({ input_ids: [input_ids[0].slice(0, 3)], max_new_tokens: 16 }))[0];
        await loaded.model.dispose();
        const fetched = performance.getEntriesByType('resource').map((entry) => new URL(entry.name).pathname);
        return { logits: Array.from(logits.data as Float32Array), ids, threads: loaded.threads, fetched };
      },
      { input_ids, threads, dtype },
    );
    await page.close();
    expect(inPage.threads).toBe(threads);
    expect(inPage.fetched).toContain(threads > 1 ? '/kernels/linear-shared.wasm' : '/kernels/linear.wasm');
    if (threads > 1) expect(inPage.fetched).toContain('/kernel-thread.js');
    expect(inPage.logits.length).toBe(expected.logits.data.length);
    const spread = expected.logits.data.reduce((max, value) => Math.max(max, Math.abs(value)), 0);
    expect(maxAbsDiff(inPage.logits, expected.logits.data)).toBeLessThan(1e-5 * spread);
    expect(inPage.ids).toEqual(nodeIds);
  });
});

describe('the demo page', () => {
  it('loads a fixture model, streams the greedy text into #output and reaches data-state="done"', async () => {
    const prompt = 'The old man looked at the sea';
    const expected = await greedyInNode('tiny-trained', 'q8', prompt, 16);

    const page = await harness.newPage('index.html?model=/fixtures/tiny-trained/&dtype=q8');
    const generate = page.locator('#generate');
    expect(await generate.isDisabled()).toBe(true); // until the model is ready
    await page.waitForFunction(() => !(document.getElementById('generate') as HTMLButtonElement).disabled, undefined, { timeout: 120_000 });
    const threads = defaultThreads(await page.evaluate(() => navigator.hardwareConcurrency));
    const status = await page.locator('#status').textContent();
    expect(status).toMatch(new RegExp(`^Ready: q8 on wasm, ${threads} threads?\\b`));
    expect(status).not.toContain('not cross-origin isolated');

    await page.fill('#prompt', prompt);
    await page.fill('#max-new-tokens', '16');
    expect(await page.isChecked('#do-sample')).toBe(false);
    // Every change of #output while generating: streaming shows the text growing, not all at once.
    await page.evaluate(() => {
      const output = document.getElementById('output')!;
      (window as any).seen = [];
      new MutationObserver(() => (window as any).seen.push(output.textContent)).observe(output, { childList: true, characterData: true, subtree: true });
    });
    await generate.click();
    await page.waitForSelector('#output[data-state="done"]', { timeout: 120_000 });
    expect(await page.locator('#output').textContent()).toBe(expected);
    const seen: string[] = await page.evaluate(() => (window as any).seen);
    expect(new Set(seen).size).toBeGreaterThan(2);
    expect(await page.locator('#error').textContent()).toBe('');
    const speedText = await page.locator('#speed').textContent();
    expect(speedText).toMatch(/^16 tokens; first after [\d.]+ s, then [\d.]+ tokens\/s$/);
    await page.close();
  });

  it.each([
    ['a missing model', '/fixtures/no-such-model/', /Could not load the model: .*no-such-model\/config\.json was not found \(HTTP 404\)/],
    ['a checkpoint cut short', '/broken/', /Could not load the model: .*broken\/model\.safetensors: tensor '.*': data_offsets .* run past the data section/],
    ['a malformed Hub id', 'not a/valid--id', /Could not load the model: "not a\/valid--id" is neither/],
  ])('shows a clear message on the page for %s', async (_, model, message) => {
    const page = await harness.newPage(`index.html?model=${encodeURIComponent(model)}`);
    await page.waitForSelector('#status[data-state="error"]', { timeout: 60_000 });
    expect(await page.locator('#error').textContent()).toMatch(message);
    expect(await page.locator('#error').isVisible()).toBe(true);
    expect(await page.isDisabled('#generate')).toBe(true);
    await page.close();
  });

  it('runs a model folder picked on the page, after a failed load', async () => {
    const prompt = 'Hello, my name is';
    const expected = await greedyInNode('tiny-gpt2vocab', 'fp32', prompt, 8);

    const page = await harness.newPage('index.html?model=/fixtures/no-such-model/&dtype=fp32');
    await page.waitForSelector('#status[data-state="error"]', { timeout: 60_000 });
    await page.setInputFiles('#model-folder', fixture('tiny-gpt2vocab'));
    await page.waitForSelector('#status[data-state="ready"]', { timeout: 120_000 });
    expect(await page.locator('#error').textContent()).toBe('');
    expect(await page.locator('#model-name').textContent()).toBe('tiny-gpt2vocab (fp32)');
    await page.fill('#prompt', prompt);
    await page.fill('#max-new-tokens', '8');
    await page.click('#generate');
    await page.waitForSelector('#output[data-state="done"]', { timeout: 120_000 });
    expect(await page.locator('#output').textContent()).toBe(expected);
    await page.close();
  });
});
