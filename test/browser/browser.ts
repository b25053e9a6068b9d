// Headless Debian Chromium driven by playwright-core (no browser download), and the demo server in front of
// the browser build and the fixture models.
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { buildBrowser } from '../../scripts/build-browser.mjs';
import { startDemoServer } from '../../src/cli/demo.js';
import type { WeightFormat } from '../../src/model/index.js';
import { FIXTURES } from '../helpers/fixtures.js';

export const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';

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
  const profile = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  const newPage = async (pathAndQuery = 'demo-config.json') => {
    const page = await context.newPage();
    await page.goto(new URL(pathAndQuery, server.url).href);
    return page;
  };
  return {
    url: server.url,
    context,
    newPage,
    async libraryPage() {
      const page = await newPage();
      // A module script, not import() inside page.evaluate: vitest rewrites dynamic imports in test code.
      await page.addScriptTag({ type: 'module', content: "import * as lib from '/gpt-neo.js'; window.gptNeo = lib;" });
      await page.waitForFunction(() => 'gptNeo' in window);
      return page;
    },
    async close() {
      await context.close();
      await server.close();
      await rm(profile, { recursive: true, force: true });
    },
  };
}
