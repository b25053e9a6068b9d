import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';

// Converted models go to a throwaway cache, never the user's: one per test file, removed after it.
if (!process.env.GPT_NEO_CACHE) {
  const cache = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-test-cache-'));
  process.env.GPT_NEO_CACHE = cache;
  afterAll(() => rmSync(cache, { recursive: true, force: true }));
}
process.env.GPT_NEO_NO_PROGRESS = '1';
