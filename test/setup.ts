import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// Converted models go to a throwaway cache, never the user's.
process.env.GPT_NEO_CACHE ??= mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-test-cache-'));
process.env.GPT_NEO_NO_PROGRESS = '1';
