// pipeline('feature-extraction') end to end on tiny-gpt2vocab (GPT-2 tokenizer files): its features are the
// last hidden state, so their dot products with the tied embeddings must give the reference logits.
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type FeatureExtractionPipeline, pipeline } from '../../src/pipeline/index.js';
import { openCheckpoint } from '../../src/weights/index.js';
import { fixture, fixtureRepo, maxAbsDiff, readReference } from '../helpers/fixtures.js';
import { startFakeHub } from '../hub/fake-hub.js';

const ref = readReference('tiny-gpt2vocab');
const texts: string[] = ref.text_cases.map((c: { text: string }) => c.text);

describe('pipeline("feature-extraction")', () => {
  let extractor: FeatureExtractionPipeline;
  let wte: Float32Array;
  const hidden = 16;
  beforeAll(async () => {
    extractor = await pipeline('feature-extraction', fixture('tiny-gpt2vocab'));
    const checkpoint = await openCheckpoint(fixture('tiny-gpt2vocab'));
    wte = await checkpoint.readFloat32('transformer.wte.weight');
    await checkpoint.close();
  });
  afterAll(() => extractor.dispose());

  it('gives [text][token][hidden]: the last hidden state that yields the reference logits', async () => {
    const features = await extractor(texts, { batch_size: texts.length });
    expect(features).toHaveLength(texts.length);
    features.forEach((tokens, i) => {
      const c = ref.text_cases[i];
      expect(tokens).toHaveLength(c.input_ids[0].length);
      tokens.forEach((vector, t) => {
        expect(vector).toHaveLength(hidden);
        const logits = ref.sampled_vocab_ids.map((id: number) => vector.reduce((sum, x, k) => sum + x * wte[id * hidden + k]!, 0));
        expect(maxAbsDiff(logits, c.sampled_logits[0][t])).toBeLessThan(1e-4);
      });
    });
  });

  it('a padded batch gives each text what it gives alone', async () => {
    const batched = await extractor(texts, { batch_size: 4 });
    for (const [i, text] of texts.entries()) {
      const [alone] = await extractor(text);
      expect(maxAbsDiff(batched[i]!.flat(), alone!.flat())).toBeLessThan(1e-5);
    }
  });

  it('pools over the real tokens (mean, first, last) and normalizes to unit length', async () => {
    const tokens = await extractor(texts);
    const mean = await extractor(texts, { pooling: 'mean', normalize: true });
    const first = await extractor(texts, { pooling: 'cls' });
    const last = await extractor(texts, { pooling: 'last_token' });
    tokens.forEach((rows, i) => {
      const average = rows[0]!.map((_, k) => rows.reduce((sum, row) => sum + row[k]!, 0) / rows.length);
      const norm = Math.hypot(...average);
      expect(maxAbsDiff(mean[i]!, average.map((x) => x / norm))).toBeLessThan(1e-6);
      expect(Math.hypot(...mean[i]!)).toBeCloseTo(1, 6);
      expect(first[i]).toEqual(rows[0]);
      expect(last[i]).toEqual(rows.at(-1));
    });
    const [normalizedTokens] = await extractor(texts[1]!, { normalize: true });
    normalizedTokens!.forEach((vector) => expect(Math.hypot(...vector)).toBeCloseTo(1, 6));
  });

  it('refuses empty text and unknown pooling', async () => {
    await expect(extractor('')).rejects.toThrow('text is empty: GPT-Neo needs at least one token to read');
    await expect(extractor(['a', ''])).rejects.toThrow('text 1 is empty');
    await expect(extractor('a', { pooling: 'max' as 'mean' })).rejects.toThrow("pooling 'max' is not supported");
  });
});

it("pipeline('feature-extraction', 'EleutherAI/gpt-neo-125M') downloads from the Hub and gives the local folder's features", async () => {
  const hub = await startFakeHub({ repos: { 'EleutherAI/gpt-neo-125M': fixtureRepo('tiny-gpt2vocab', 'b'.repeat(40)) } });
  const saved = { ...process.env };
  process.env.HF_ENDPOINT = hub.url;
  process.env.HF_HUB_CACHE = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-hub-cache-'));
  try {
    const fromHub = await pipeline('feature-extraction', 'EleutherAI/gpt-neo-125M', { progress: false });
    const local = await pipeline('feature-extraction', fixture('tiny-gpt2vocab'));
    expect(await fromHub('some text', { pooling: 'mean' })).toEqual(await local('some text', { pooling: 'mean' }));
    expect(hub.requests).toContain('HEAD /EleutherAI/gpt-neo-125M/resolve/main/config.json');
    await fromHub.dispose();
    await local.dispose();
  } finally {
    process.env = saved;
    await hub.close();
  }
});
