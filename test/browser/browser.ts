// The demo server in front of the browser build and the fixture models, and headless Chromium on it.
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { buildBrowser } from '../../scripts/build-browser.mjs';
import { startDemoServer } from '../../src/cli/demo.js';
import type { WeightFormat } from '../../src/convert/index.js';
import { expect } from 'vitest';
import { launchChromium } from '../helpers/chromium.js';
import { FIXTURES, maxAbsDiff } from '../helpers/fixtures.js';

export interface BrowserHarness {
  /** The server's root URL; fixture models are under /fixtures/<name>/. */
  url: string;
  context: BrowserContext;
  /** A fresh tab on the server's origin (cross-origin isolated, like the demo). */
  newPage(pathAndQuery?: string): Promise<Page>;
  /** A fresh tab with the browser build loaded as `window.gptNeo`. */
  libraryPage(): Promise<Page>;
  close(): Promise<void>;
}

let built: Promise<string> | undefined;

export async function startBrowser(
  model = path.join(FIXTURES, 'tiny-gpt2vocab'),
  dtype: WeightFormat = 'fp32',
  folders: Record<string, string> = {},
  launch: { webgpu?: boolean } = {},
): Promise<BrowserHarness> {
  await (built ??= buildBrowser({ minify: false }));
  const server = await startDemoServer({ model, dtype, port: 0, folders: { '/fixtures/': FIXTURES, ...folders } });
  const browser = await launchChromium(launch).catch(async (error: Error) => {
    await server.close();
    throw error;
  });
  const newPage = async (pathAndQuery = 'demo-config.json') => {
    const page = await browser.context.newPage();
    await page.goto(new URL(pathAndQuery, server.url).href);
    return page;
  };
  return {
    url: server.url,
    context: browser.context,
    newPage,
    libraryPage: () => libraryPage(newPage),
    async close() {
      await browser.close();
      await server.close();
    },
  };
}

/** A page with the browser build loaded as `window.gptNeo`. */
async function libraryPage(newPage: () => Promise<Page>): Promise<Page> {
  const page = await newPage();
  const errors: string[] = [];
  page.on('pageerror', (error) => errors.push(error.message));
  // A module script, not import() inside page.evaluate: vitest rewrites dynamic imports in test code.
  await page.addScriptTag({ type: 'module', content: "import * as lib from '/gpt-neo.js'; window.gptNeo = lib;" });
  await page.waitForFunction(() => 'gptNeo' in window).catch((error: Error) => {
    // The page's own error says why far better than the timeout does.
    throw new Error(`the browser build did not load: ${errors.join('; ') || error.message}`);
  });
  return page;
}

/** Hugging Face's logits, to this absolute tolerance. */
const TOL = 1e-4;

export interface PageForward {
  argmax: number[];
  logsumexp: number[];
  /** Logits at the requested ids, per position. */
  picked: number[][];
}

export interface ForwardCase {
  input_ids: number[][];
  attention_mask?: number[][];
  position_ids?: number[][];
  pick: number[][];
}

/**
 * Loads a fixture model in the page and runs forward() on each input, returning what the checks need. With
 * `files`, the page gets those files of the fixture as picked Files (a folder chosen on the page) instead of
 * the folder's URL; `device` is where onnxruntime-web runs it (default WebAssembly).
 */
export async function forwardInPage(
  page: Page,
  model: string,
  { dtype, files, device }: { dtype: WeightFormat; files?: string[]; device?: 'wasm' | 'webgpu' },
  cases: ForwardCase[],
): Promise<PageForward[]> {
  return page.evaluate(
    async ({ model, dtype, cases, files, device }) => {
      const lib = (window as any).gptNeo;
      const folder = `/fixtures/${model}/`;
      const picked = files
        ? await Promise.all(files.map(async (name) => new File([await (await fetch(folder + name)).blob()], name)))
        : undefined;
      const loaded = await lib.GPTNeoForCausalLM.from_pretrained(picked ?? folder, { dtype, device });
      const results = [];
      for (const c of cases) {
        const { logits } = await loaded.forward({ input_ids: c.input_ids, attention_mask: c.attention_mask, position_ids: c.position_ids });
        const V = logits.dims[2];
        const rows = logits.data.length / V;
        const out = { argmax: [] as number[], logsumexp: [] as number[], picked: [] as number[][] };
        for (let r = 0; r < rows; r++) {
          const row = logits.data.subarray(r * V, (r + 1) * V);
          let best = 0;
          let max = -Infinity;
          for (let i = 0; i < V; i++) if (row[i] > max) (max = row[i]), (best = i);
          let sum = 0;
          for (let i = 0; i < V; i++) sum += Math.exp(row[i] - max);
          out.argmax.push(best);
          out.logsumexp.push(max + Math.log(sum));
          out.picked.push((c.pick[r] ?? []).map((id: number) => row[id]));
        }
        results.push(out);
      }
      await loaded.dispose();
      return results;
    },
    { model, dtype, cases, files, device },
  );
}

/** The reference's forward cases and its left-padded batch (last), with the vocabulary ids whose logits it holds. */
export function referenceCases(ref: any): ForwardCase[] {
  const sampled: number[] = ref.sampled_vocab_ids ?? [];
  const forward = ref.forward.map((c: any) => ({
    input_ids: c.input_ids,
    position_ids: c.position_ids,
    pick: c.input_ids[0].map((_: number, t: number) => (c.logits ? [...c.logits[0][t].keys()] : [...c.top10_ids[0][t], ...sampled])),
  }));
  const padded = ref.batch_left_padded;
  return [...forward, { input_ids: padded.input_ids, attention_mask: padded.attention_mask, position_ids: padded.position_ids, pick: padded.top10_ids.flat() }];
}

/** Page results of referenceCases() against the reference: argmax, logsumexp and logits within TOL. */
export function expectReferenceLogits(ref: any, results: PageForward[]): void {
  ref.forward.forEach((c: any, i: number) => {
    const result = results[i]!;
    expect(result.argmax).toEqual(c.argmax[0]);
    expect(maxAbsDiff(result.logsumexp, c.logsumexp[0])).toBeLessThan(TOL);
    c.input_ids[0].forEach((_: number, t: number) => {
      const expected = c.logits ? c.logits[0][t] : [...c.top10_values[0][t], ...c.sampled_logits[0][t]];
      expect(maxAbsDiff(result.picked[t]!, expected)).toBeLessThan(TOL);
    });
  });
  const padded = ref.batch_left_padded;
  const batch = results.at(-1)!;
  const T = padded.input_ids[0].length;
  let checked = 0;
  padded.argmax.forEach((row: Array<number | null>, b: number) =>
    row.forEach((argmax, t) => {
      if (argmax === null) return;
      expect(batch.argmax[b * T + t]).toBe(argmax);
      expect(Math.abs(batch.logsumexp[b * T + t]! - padded.logsumexp[b][t])).toBeLessThan(TOL);
      expect(maxAbsDiff(batch.picked[b * T + t]!, padded.top10_values[b][t])).toBeLessThan(TOL);
      checked++;
    }),
  );
  expect(checked).toBe(padded.attention_mask.flat().filter((m: number) => m === 1).length);
}
