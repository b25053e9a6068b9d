// The model card's usage, against a local server that answers like the Hugging Face Hub.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { pipeline } from '../../src/index.js';
import { fixtureRepo } from '../helpers/fixtures.js';
import { type FakeHub, startFakeHub } from '../hub/fake-hub.js';

let hub: FakeHub;
const saved = { ...process.env };
beforeAll(async () => {
  hub = await startFakeHub({ repos: { 'EleutherAI/gpt-neo-1.3B': fixtureRepo('tiny-trained', 'a'.repeat(40)) } });
  process.env.HF_ENDPOINT = hub.url;
  process.env.HF_HUB_CACHE = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-hub-cache-'));
});
afterAll(async () => {
  process.env = saved;
  await hub.close();
});

it("runs the model card's three lines against the Hub", async () => {
  const generator = await pipeline('text-generation', 'EleutherAI/gpt-neo-1.3B');
  const out = await generator('EleutherAI has', { do_sample: true, min_length: 50 });
  await generator.dispose();

  expect(out).toHaveLength(1);
  expect(out[0]!.generated_text.startsWith('EleutherAI has')).toBe(true);
  // min_length 50 counts the prompt: at least 47 new tokens (the model samples, eos is suppressed until then).
  expect(generator.tokenizer.encode(out[0]!.generated_text).length).toBeGreaterThanOrEqual(48);
  expect(hub.requests).toContain('HEAD /EleutherAI/gpt-neo-1.3B/resolve/main/config.json');
  expect(hub.requests.some((r) => r.startsWith('GET /cdn/'))).toBe(true); // the LFS weights

});
