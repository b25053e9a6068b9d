// The browser's converter runs in Node too (it only needs ModelFiles): checked here without a browser.
import { mkdtemp, open, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { convertCheckpoint, WASM_WEIGHTS_LIMIT } from '../../src/browser/convert.js';
import type { ConvertedModelStore } from '../../src/browser/storage.js';
import { localModelFiles } from '../../src/weights/index.js';
import { fixture } from '../helpers/fixtures.js';
import { GPT_NEO_1_3B_CONFIG, gptNeoTensors } from '../helpers/random-checkpoint.js';

/** A store in memory, counting what the converter asks of it. */
function memoryStore(): ConvertedModelStore & { entries: Map<string, { model: Uint8Array; weights: Uint8Array }> } {
  const entries = new Map<string, { model: Uint8Array; weights: Uint8Array }>();
  return {
    entries,
    read: async (entry) => entries.get(entry) ?? null,
    write: async (entry, model, weights) => void entries.set(entry, { model, weights }),
  };
}

describe('a GPT-Neo 1.3B checkpoint', () => {
  let folder: string;
  beforeAll(async () => {
    // The real tensor table with no data behind it (a sparse file): the limit is checked before any weight is read.
    folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-1.3b-shape-'));
    let offset = 0;
    const header: Record<string, unknown> = {};
    for (const { name, shape } of gptNeoTensors(GPT_NEO_1_3B_CONFIG)) {
      const bytes = shape.reduce((a, b) => a * b, 1) * 4;
      header[name] = { dtype: 'F32', shape, data_offsets: [offset, offset + bytes] };
      offset += bytes;
    }
    const json = new TextEncoder().encode(JSON.stringify(header));
    const prefix = new Uint8Array(8);
    new DataView(prefix.buffer).setBigUint64(0, BigInt(json.length), true);
    const file = await open(path.join(folder, 'model.safetensors'), 'w');
    await file.write(prefix, 0, 8, 0);
    await file.write(json, 0, json.length, 8);
    await file.truncate(8 + json.length + offset);
    await file.close();
    await writeFile(path.join(folder, 'config.json'), JSON.stringify(GPT_NEO_1_3B_CONFIG));
  });
  afterAll(() => rm(folder, { recursive: true, force: true }));

  it('in fp32 is refused with an error that names the 4 GB of wasm32 and the formats that fit', async () => {
    const store = memoryStore();
    const error = await convertCheckpoint(localModelFiles(folder), 'fp32', undefined, store).catch((e: Error) => e);
    expect(error).toBeInstanceOf(Error);
    expect((error as Error).message).toMatch(/in fp32 has 5\.\d\d GB of weights.*WebAssembly \(wasm32\) addresses 4 GB.*'q8' or 'q4'/);
    expect(store.entries.size).toBe(0);
  });
});

describe('conversion in the browser build', () => {
  it('keeps the weights under the limit for the tiny models and reuses its stored conversion', async () => {
    const store = memoryStore();
    const stages: string[] = [];
    const first = await convertCheckpoint(localModelFiles(fixture('tiny-random')), 'q8', (stage) => stages.push(stage), store);
    expect(first.fromCache).toBe(false);
    expect(first.weights.length).toBeLessThan(WASM_WEIGHTS_LIMIT);
    expect(stages).toContain('converting');
    expect([...store.entries.keys()]).toEqual([expect.stringMatching(/^tiny-random-q8-[0-9a-f]{32}$/)]);

    const second = await convertCheckpoint(localModelFiles(fixture('tiny-random')), 'q8', undefined, store);
    expect(second.fromCache).toBe(true);
    expect(Buffer.compare(second.weights, first.weights)).toBe(0);
    expect(second.embeddings).toEqual(first.embeddings);
    expect(first.embeddings).toMatchObject({ rows: 1000, width: 32 });

    // Another format is another entry.
    await convertCheckpoint(localModelFiles(fixture('tiny-random')), 'fp32', undefined, store);
    expect(store.entries.size).toBe(2);
  });
});
