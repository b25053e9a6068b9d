// `gpt-neo cache ls / rm / prune` and GPT_NEO_CACHE_MAX_SIZE, on real caches filled by real processes.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { scanCaches, type CacheEntry } from '../../src/cache/index.js';
import { resolveModelFolder } from '../../src/hub/index.js';
import { listConversions, removeConversion } from '../../src/convert/conversion-cache.js';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { fixture } from '../helpers/fixtures.js';
import { startFakeHub, type FakeHub } from '../hub/fake-hub.js';
import { isolated, modelRepo, removeTempDirs, tempDir } from '../hub/helpers.js';
import { logitsOf, runCli } from './processes.js';

const savedCache = process.env.GPT_NEO_CACHE;
let env: Record<string, string>;
let hub: FakeHub | undefined;
const DAY = 86_400_000;

beforeEach(() => {
  env = { GPT_NEO_CACHE: tempDir('gpt-neo-cache-cmd-'), HF_HUB_CACHE: tempDir(), HF_TOKEN: '', HF_HUB_OFFLINE: '' };
  process.env.GPT_NEO_CACHE = env.GPT_NEO_CACHE;
});
afterEach(async () => {
  process.env.GPT_NEO_CACHE = savedCache;
  await hub?.close();
  hub = undefined;
});
afterAll(removeTempDirs);

async function cache(...args: string[]) {
  return runCli(['cache', ...args], env);
}

/** What is cached, read in this process (the CLI's own listing is checked against it once). */
async function listing(): Promise<CacheEntry[]> {
  return (await scanCaches({ cacheDir: env.HF_HUB_CACHE })).entries;
}

/** Bytes of the files under a folder as `find` counts them: the listing's numbers must be these. */
function bytesOnDisk(folder: string): number {
  return execFileSync('find', [folder, '-type', 'f', '-printf', '%s\\n'], { encoding: 'utf8' })
    .split('\n')
    .filter(Boolean)
    .reduce((sum, n) => sum + Number(n), 0);
}

async function convert(folder: string, dtype: 'fp32' | 'q8' | 'q4' = 'fp32'): Promise<void> {
  const model = await GPTNeoForCausalLM.from_pretrained(folder, { dtype });
  await model.dispose();
}

/** Makes an entry look last used `daysAgo` days ago, the way its listing reads it. */
async function lastUsedDaysAgo(entry: CacheEntry, daysAgo: number): Promise<void> {
  const when = new Date(Date.now() - daysAgo * DAY);
  const files = entry.kind === 'hub'
    ? (await fs.readdir(path.join(entry.folder, 'blobs'))).map((blob) => path.join(entry.folder, 'blobs', blob))
    : [path.join(entry.folder, 'conversion.json')];
  for (const file of files) await fs.utimes(file, when, when);
}

async function fillHub(...repoIds: string[]): Promise<void> {
  hub = await startFakeHub({ repos: Object.fromEntries(repoIds.map((id) => [id, modelRepo(id)])) });
  for (const id of repoIds) await resolveModelFolder(id, isolated(hub.url, env.HF_HUB_CACHE!));
}

describe('gpt-neo cache ls', () => {
  it('lists every Hub repo and conversion with the sizes on disk, and totals', async () => {
    await fillHub('org/a', 'org/b');
    await convert(fixture('tiny-random'), 'fp32');
    await convert(fixture('tiny-random'), 'q8');

    const listed = await cache('ls', '--json');
    expect(listed).toMatchObject({ code: 0, stderr: '' });
    const entries = (JSON.parse(listed.stdout) as { entries: Array<Omit<CacheEntry, 'lastUsed'> & { lastUsed: string }> }).entries;
    expect(entries.map((e) => `${e.kind} ${e.format ?? e.id}`).sort()).toEqual(['conversion fp32 conv', 'conversion q8', 'hub org/a', 'hub org/b']);
    for (const entry of entries) {
      expect(entry.size, entry.id).toBe(bytesOnDisk(entry.folder));
      expect(Date.now() - Date.parse(entry.lastUsed)).toBeLessThan(10 * 60_000);
    }
    expect(entries.find((e) => e.id === 'org/a')!.source).toMatch(/^main -> [0-9a-f]{7} \(5 files\)$/);
    expect(entries.find((e) => e.format === 'q8')!.source).toBe(fixture('tiny-random'));

    const table = await cache('ls');
    for (const entry of entries) expect(table.stdout).toContain(entry.id);
    const total = entries.reduce((sum, e) => sum + e.size, 0);
    expect(JSON.parse(listed.stdout).totalSize).toBe(total);
  });
});

describe('gpt-neo cache rm', () => {
  it('removes exactly the repo or conversion named, and says what it removed', async () => {
    await fillHub('org/a', 'org/b');
    await convert(fixture('tiny-random'), 'fp32');
    await convert(fixture('tiny-random'), 'q8');
    const before = await listing();
    const q8 = before.find((e) => e.format === 'q8')!;

    const result = await cache('rm', 'org/a', q8.id.slice(0, 10));

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect(result.stdout).toContain('removed Hub repo org/a');
    expect(result.stdout).toContain(`removed conversion ${q8.id}`);
    const after = await listing();
    expect(after.map((e) => e.id).sort()).toEqual(before.filter((e) => e.id !== 'org/a' && e !== q8).map((e) => e.id).sort());
    expect(existsSync(path.join(env.HF_HUB_CACHE!, 'models--org--a'))).toBe(false);
    expect(existsSync(q8.folder)).toBe(false);
  });

  it('names what exists when the target matches nothing', async () => {
    await convert(fixture('tiny-random'));
    const result = await cache('rm', 'org/nothing');
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/nothing in the cache is called "org\/nothing": it holds fp32-[0-9a-f]{32}/);
  });

  it('refuses to remove a conversion another process has loaded, and removes it once released', async () => {
    const model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-random'));
    try {
      const [entry] = await listing();
      const refused = await cache('rm', entry!.id);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain(`in use by another process right now: ${entry!.id}`);
      expect((await cache('prune', '--max-size', '0')).stdout).toContain(`kept conversion ${entry!.id}`);
      expect(existsSync(entry!.folder)).toBe(true);
      // Still usable by the process holding it.
      expect((await model.forward({ input_ids: [[1, 2]] })).logits.dims).toEqual([1, 2, model.vocabSize]);
    } finally {
      await model.dispose();
    }
    expect((await cache('rm', (await listing())[0]!.id)).code).toBe(0);
    expect(await listing()).toEqual([]);
  });
});

describe('gpt-neo cache prune', () => {
  it('--older-than removes only what was not used for that long', async () => {
    await fillHub('org/old', 'org/new');
    await convert(fixture('tiny-random'), 'fp32');
    await convert(fixture('tiny-random'), 'q8');
    const entries = await listing();
    for (const entry of entries) await lastUsedDaysAgo(entry, entry.id === 'org/old' || entry.format === 'q8' ? 40 : 2);

    const result = await cache('prune', '--older-than', '30d');

    expect(result).toMatchObject({ code: 0, stderr: '' });
    expect((await listing()).map((e) => e.format ?? e.id).sort()).toEqual(['fp32 conv', 'org/new']);
  });

  it('--max-size removes the least recently used first until the rest fits', async () => {
    await fillHub('org/a');
    await convert(fixture('tiny-random'), 'fp32');
    await convert(fixture('tiny-random'), 'q8');
    await convert(fixture('tiny-random'), 'q4');
    const entries = await listing();
    const age: Record<string, number> = { 'fp32 conv': 3, 'org/a': 2, q8: 4, q4: 1 };
    for (const entry of entries) await lastUsedDaysAgo(entry, age[entry.format ?? entry.id]!);
    const size = (name: string) => entries.find((e) => (e.format ?? e.id) === name)!.size;
    // Room for the two most recent (q4, org/a) and not a byte more: q8 (oldest) and then fp32 must go.
    const limit = size('q4') + size('org/a');

    const dryRun = await cache('prune', '--max-size', `${limit}`, '--dry-run');
    expect(dryRun.stdout).toMatch(/would remove 2 entries/);
    expect(await listing()).toHaveLength(4);
    const result = await cache('prune', '--max-size', `${limit}`);

    const id = (name: string) => entries.find((e) => (e.format ?? e.id) === name)!.id;
    expect(result.stdout.split('\n').filter((l) => /^removed (Hub|conversion)/.test(l)).map((l) => l.split(' ')[2]))
      .toEqual([id('q8'), id('fp32 conv')]);
    expect((await listing()).map((e) => e.format ?? e.id).sort()).toEqual(['org/a', 'q4']);
  });

  it('refuses sizes and ages it cannot read', async () => {
    expect((await cache('prune', '--max-size', '20 parsecs')).stderr).toContain('"20 parsecs" is not a size');
    expect((await cache('prune', '--older-than', 'soon')).stderr).toContain('"soon" is not an age');
  });

  it('removes what a killed converter or an interrupted removal left, and the cache still loads models', async () => {
    await convert(fixture('tiny-random'));
    const [entry] = await listing();
    // The states a kill -9 leaves: a removal that renamed the conversion aside, a conversion half written.
    const halfWritten = async () => {
      await fs.mkdir(`${entry!.folder}.staging-99999.x`);
      await fs.writeFile(`${entry!.folder}.staging-99999.x/weights.bin`, 'half');
    };
    await fs.rename(entry!.folder, `${entry!.folder}.removing-99999`);
    await halfWritten();
    expect((await listing()).map((e) => e.leftover)).toEqual([true, true]);

    expect(await cache('prune')).toMatchObject({ code: 0, stderr: '' });
    expect(await listing()).toEqual([]);

    // A converter finding a dead converter's staging folder converts again and clears it.
    await halfWritten();
    await convert(fixture('tiny-random'));
    expect((await listing()).map((e) => e.id)).toEqual([entry!.id]);
  });

  it('racing a process that loads models does not break it', async () => {
    const expected = await logitsOf(fixture('tiny-random'));

    // Prune processes remove everything not in use, over and over, while this process loads the model again
    // and again (converting it anew whenever a prune got there first).
    let pruning = true;
    let prunes = 0;
    const pruner = (async () => {
      while (pruning) {
        expect(await cache('prune', '--max-size', '0')).toMatchObject({ code: 0, stderr: '' });
        prunes++;
      }
    })();
    let loads = 0;
    try {
      while (prunes < 3) {
        expect(await logitsOf(fixture('tiny-random'))).toEqual(expected);
        loads++;
      }
    } finally {
      pruning = false;
      await pruner;
    }
    expect(loads).toBeGreaterThan(3);
  });
});

describe('GPT_NEO_CACHE_MAX_SIZE', () => {
  it('after a conversion, evicts the least recently used others beyond the limit, never one in use', async () => {
    for (const dtype of ['fp32', 'q8', 'q4'] as const) await convert(fixture('tiny-random'), dtype);
    const byFormat = Object.fromEntries((await listConversions()).map((e) => [e.manifest!.format, e]));
    const { fp32, q8, q4 } = byFormat as Record<string, Awaited<ReturnType<typeof listConversions>>[number]>;
    expect(await removeConversion(q4!.id)).toBe(true);
    for (const [entry, days] of [[fp32!, 10], [q8!, 1]] as const) {
      const when = new Date(Date.now() - days * DAY);
      await fs.utimes(path.join(entry.folder, 'conversion.json'), when, when);
    }
    const formats = async () => (await listConversions()).map((e) => e.manifest?.format).sort();

    try {
      // One byte over the limit once q4 is back: the least recently used (fp32) goes, nothing else.
      process.env.GPT_NEO_CACHE_MAX_SIZE = `${fp32!.size + q8!.size + q4!.size - 1}`;
      await convert(fixture('tiny-random'), 'q4');
      expect(await formats()).toEqual(['q4', 'q8']);

      // A limit nothing fits: every other conversion goes, except one a process has loaded right now.
      process.env.GPT_NEO_CACHE_MAX_SIZE = '1';
      const held = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-random'), { dtype: 'q8' });
      try {
        await convert(fixture('tiny-random'), 'fp32');
        expect(await formats()).toEqual(['fp32', 'q8']);
      } finally {
        await held.dispose();
      }
    } finally {
      delete process.env.GPT_NEO_CACHE_MAX_SIZE;
    }
  });
});
