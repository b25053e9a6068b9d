// The demo server in front of the browser build and the fixture models, and headless Chromium on it.
import path from 'node:path';
import type { BrowserContext, Page } from 'playwright-core';
import { buildBrowser } from '../../scripts/build-browser.mjs';
import { launchChromium } from '../../src/bench/chromium.js';
import { startDemoServer } from '../../src/cli/demo.js';
import type { WeightFormat } from '../../src/model/index.js';
import { FIXTURES } from '../helpers/fixtures.js';

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
): Promise<BrowserHarness> {
  await (built ??= buildBrowser({ minify: false }));
  const server = await startDemoServer({ model, dtype, port: 0, folders: { '/fixtures/': FIXTURES, ...folders } });
  const browser = await launchChromium().catch(async (error: Error) => {
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
