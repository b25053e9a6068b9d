// The conversion cache: keyed by content (not folder), converted once by many processes, safe to kill.
import { existsSync, mkdtempSync, readdirSync, watch } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { resolveModelFolder } from '../../src/hub/index.js';
import { listConversions } from '../../src/convert/conversion-cache.js';
import { fixture, fixtureRepo } from '../helpers/fixtures.js';
import { GPT_NEO_1_3B_CONFIG, writeRandomCheckpoint } from '../helpers/random-checkpoint.js';
import { startFakeHub, type FakeHub } from '../hub/fake-hub.js';
import { isolated, removeTempDirs, tempDir } from '../hub/helpers.js';
import { logitsOf, runCli, startCli } from './processes.js';

const COMMIT = 'c'.repeat(40);
const savedCache = process.env.GPT_NEO_CACHE;
let conversions: string;
let hub: FakeHub | undefined;

beforeEach(() => {
  conversions = tempDir('gpt-neo-conversions-');
  process.env.GPT_NEO_CACHE = conversions;
});
afterEach(async () => {
  process.env.GPT_NEO_CACHE = savedCache;
  await hub?.close();
  hub = undefined;
});
afterAll(removeTempDirs);

async function copyFolder(from: string): Promise<string> {
  const to = tempDir('gpt-neo-copy-');
  await fs.cp(from, to, { recursive: true, dereference: true });
  return to;
}

describe('conversions keyed by content', () => {
  it('two folders with the same checkpoint share one conversion; the second load converts nothing', async () => {
    const first = await copyFolder(fixture('tiny-random'));
    const second = await copyFolder(fixture('tiny-random'));

    const expected = await logitsOf(first);
    const [entry] = await listConversions();
    const weightsFile = path.join(entry!.folder, 'weights.bin');
    const written = (await fs.stat(weightsFile, { bigint: true })).ino;
    expect(await logitsOf(second)).toEqual(expected);

    const after = await listConversions();
    expect(after.map((e) => e.id)).toEqual([entry!.id]);
    expect((await fs.stat(weightsFile, { bigint: true })).ino).toBe(written);
    expect(after[0]!.manifest?.source).toBe(path.resolve(second));
    expect(entry!.id).not.toContain(path.basename(first));
  });

  it('a checkpoint whose weights differ only in their values gets its own conversion', async () => {
    const original = await copyFolder(fixture('tiny-random'));
    const edited = await copyFolder(fixture('tiny-random'));
    // Same header, same size, one float changed: the old key (header and size only) took it for the original.
    const weights = await fs.readFile(path.join(edited, 'model.safetensors'));
    const headerLength = Number(weights.readBigUInt64LE(0));
    const header = JSON.parse(weights.subarray(8, 8 + headerLength).toString()) as Record<string, { data_offsets: number[] }>;
    const finalNormBias = 8 + headerLength + header['transformer.ln_f.bias']!.data_offsets[0]!;
    weights.writeFloatLE(weights.readFloatLE(finalNormBias) + 1, finalNormBias);
    await fs.writeFile(path.join(edited, 'model.safetensors'), weights);

    const a = await logitsOf(original);
    const b = await logitsOf(edited);
    expect(b).not.toEqual(a);
    expect(await listConversions()).toHaveLength(2);
  });

  it('a Hub snapshot and a copy of it share one conversion (the blob name is the sha256)', async () => {
    const repo = fixtureRepo('tiny-random', COMMIT);
    // A Hub model needs a tokenizer to be resolved; tiny-random has none of its own.
    for (const file of ['vocab.json', 'merges.txt']) repo.files[file] = await fs.readFile(fixture('tiny-trained', file));
    hub = await startFakeHub({ repos: { 'org/tiny-random': repo } });
    const snapshot = await resolveModelFolder('org/tiny-random', isolated(hub.url, tempDir()));

    await logitsOf(snapshot);
    await logitsOf(await copyFolder(snapshot));
    const entries = await listConversions();
    expect(entries).toHaveLength(1);
    expect(entries[0]!.manifest?.weights).toEqual([
      { file: 'model.safetensors', sha256: path.basename(await fs.realpath(path.join(snapshot, 'model.safetensors'))) },
    ]);
  });
});

describe('several processes sharing the conversion cache', () => {
  it('four `gpt-neo generate` started together on cold caches give the same text, and one conversion', async () => {
    hub = await startFakeHub({ repos: { 'EleutherAI/gpt-neo-1.3B': fixtureRepo('tiny-trained', COMMIT) } });
    const env = { HF_ENDPOINT: hub.url, HF_HUB_CACHE: tempDir(), GPT_NEO_CACHE: conversions, HF_TOKEN: '', HF_HUB_OFFLINE: '' };

    const results = await Promise.all([1, 2, 3, 4].map(() => runCli(['generate', '--greedy', '--max-new-tokens', '8', 'Once upon a time'], env)));

    expect(results[0]).toMatchObject({ code: 0, stderr: '' });
    expect(results[0]!.stdout.length).toBeGreaterThan('Once upon a time'.length);
    for (const result of results) expect(result).toEqual(results[0]);
    expect((await listConversions()).map((entry) => entry.manifest?.format)).toEqual(['fp32']);
  });

  it('a conversion killed midway (kill -9) leaves a cache that two new processes complete', async () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-kill-convert-'));
    // Big enough (about 60 MB) that the conversion is still being written when the kill arrives.
    await writeRandomCheckpoint(folder, {
      ...GPT_NEO_1_3B_CONFIG,
      hidden_size: 256,
      num_heads: 4,
      num_layers: 4,
      attention_layers: ['global', 'local', 'global', 'local'],
      attention_types: [[['global', 'local'], 2]],
    });
    for (const file of ['vocab.json', 'merges.txt']) await fs.copyFile(fixture('tiny-trained', file), path.join(folder, file));
    const env = { GPT_NEO_CACHE: conversions };
    const args = ['generate', '--model', folder, '--greedy', '--max-new-tokens', '2', 'Hello'];

    try {
      const onnxDir = path.join(conversions, 'onnx');
      // On a loaded machine the watcher's event can arrive after the conversion has finished; then the kill found
      // nothing to interrupt, and the case is set up again from an empty cache (at most three times).
      let interrupted = false;
      for (let attempt = 0; attempt < 3 && !interrupted; attempt++) {
        await fs.rm(conversions, { recursive: true, force: true });
        const victim = startCli(args, env);
        await waitFor(() => existsSync(onnxDir));
        await new Promise<void>((resolve) => {
          const watcher = watch(onnxDir, (_event, name) => {
            if (name?.includes('.staging-')) {
              victim.child.kill('SIGKILL');
              watcher.close();
              resolve();
            }
          });
        });
        expect((await victim.finished).signal).toBe('SIGKILL');
        interrupted = readdirSync(onnxDir).some((name) => name.includes('.staging-'));
      }
      expect(readdirSync(onnxDir).filter((name) => name.includes('.staging-'))).toHaveLength(1);

      const results = await Promise.all([1, 2].map(() => runCli(args, env)));

      expect(results[0]).toMatchObject({ code: 0, stderr: '' });
      expect(results[1]).toEqual(results[0]);
      const entries = await listConversions();
      expect(entries.map((entry) => entry.manifest?.format)).toEqual(['fp32']);
    } finally {
      await fs.rm(folder, { recursive: true, force: true });
    }
  });
});

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 5));
}
