// onnxruntime-web's WebGPU execution provider on the tiny fixtures, against Hugging Face's logits. Without a GPU,
// Chromium offers a software adapter (SwiftShader); the test skips, saying why, only if no adapter exists at all.
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readReference } from '../helpers/fixtures.js';
import { type BrowserHarness, expectReferenceLogits, forwardInPage, referenceCases, startBrowser } from './browser.js';

let harness: BrowserHarness;
let page: Page;
/** The adapter Chromium offers, or why there is none. */
let adapter: { found: boolean; description: string };

beforeAll(async () => {
  harness = await startBrowser(undefined, 'fp32', {}, { webgpu: true });
  page = await harness.libraryPage();
  adapter = await page.evaluate(async () => {
    if (!('gpu' in navigator)) return { found: false, description: 'this Chromium has no navigator.gpu' };
    const found = await (navigator as any).gpu.requestAdapter();
    if (!found) return { found: false, description: 'navigator.gpu.requestAdapter() gave no adapter' };
    const { vendor, architecture, description } = found.info ?? {};
    return { found: true, description: [vendor, architecture, description].filter(Boolean).join(' ') };
  });
  if (!adapter.found) console.warn(`WebGPU tests skipped: ${adapter.description}`);
});

afterAll(async () => {
  await harness?.close();
});

// One fixture: SwiftShader runs WebGPU on the CPU, slowly (tiny-gpt2vocab's 50k vocabulary took another 50 s).
describe.each(['tiny-random'])('%s on WebGPU', (name) => {
  it('gives the reference logits within 1e-4 (every forward case and the left-padded batch)', async (context) => {
    if (!adapter.found) return context.skip(`no WebGPU adapter: ${adapter.description}`);
    const ref = readReference(name);
    expectReferenceLogits(ref, await forwardInPage(page, name, { dtype: 'fp32', device: 'webgpu' }, referenceCases(ref)));
  });
});

it('runs the model where it was asked to, on the adapter found', async (context) => {
  if (!adapter.found) return context.skip(`no WebGPU adapter: ${adapter.description}`);
  const loaded = await page.evaluate(async () => {
    const lib = (window as any).gptNeo;
    const loaded = await lib.loadBrowserModel({ url: '/fixtures/tiny-random/' }, { device: 'webgpu' });
    await loaded.model.dispose();
    return { device: loaded.device, fetched: performance.getEntriesByType('resource').map((entry) => new URL(entry.name).pathname) };
  });
  expect(loaded.device).toBe('webgpu');
  expect(loaded.fetched).toContain('/ort/ort-wasm-simd-threaded.jsep.wasm');
  expect(adapter.description).not.toBe('');
});
