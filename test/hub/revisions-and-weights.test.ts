import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { resolveModelFolder } from '../../src/hub/index.js';
import { sha256, startFakeHub, type FakeHub } from './fake-hub.js';
import { gets, isolated, modelRepo, removeTempDirs, tempDir } from './helpers.js';

let hub: FakeHub | undefined;
afterAll(removeTempDirs);
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

describe('revisions', () => {
  it('a branch is resolved to its commit and remembered in refs/', async () => {
    const repo = modelRepo('branch');
    hub = await startFakeHub({ repos: { 'org/tiny': repo } });
    const cacheDir = tempDir();

    const folder = await resolveModelFolder('org/tiny', { ...isolated(hub.url, cacheDir), revision: 'main' });

    expect(path.basename(folder)).toBe(repo.commit);
    expect(await fs.readFile(path.join(cacheDir, 'models--org--tiny', 'refs', 'main'), 'utf8')).toBe(repo.commit);
    // Only config.json is asked for by branch; the rest by the commit it answered with.
    expect(hub.requests.filter((line) => line.includes('/resolve/main/'))).toEqual(['HEAD /org/tiny/resolve/main/config.json', 'GET /org/tiny/resolve/main/config.json']);
  });

  it('a commit sha needs no ref, and once cached needs no network at all', async () => {
    const repo = modelRepo('commit');
    hub = await startFakeHub({ repos: { 'org/tiny': repo } });
    const cacheDir = tempDir();

    const folder = await resolveModelFolder('org/tiny', { ...isolated(hub.url, cacheDir), revision: repo.commit });

    expect(path.basename(folder)).toBe(repo.commit);
    expect(hub.requests[0]).toBe(`HEAD /org/tiny/resolve/${repo.commit}/config.json`);
    expect(existsSync(path.join(cacheDir, 'models--org--tiny', 'refs'))).toBe(false);
    hub.requests.length = 0;

    expect(await resolveModelFolder('org/tiny', { ...isolated(hub.url, cacheDir), revision: repo.commit })).toBe(folder);
    expect(hub.requests).toEqual([]);
  });

  it('follows the relative redirect of a renamed repo, then downloads from the new name', async () => {
    const repo = modelRepo('renamed');
    hub = await startFakeHub({ repos: { 'new-org/tiny': repo }, renamed: { 'old-org/tiny': 'new-org/tiny' } });
    const cacheDir = tempDir();

    const folder = await resolveModelFolder('old-org/tiny', isolated(hub.url, cacheDir));

    // Filed under the name asked for, as huggingface_hub does.
    expect(folder).toBe(path.join(cacheDir, 'models--old-org--tiny', 'snapshots', repo.commit));
    expect(hub.requests.slice(0, 3)).toEqual([
      'HEAD /old-org/tiny/resolve/main/config.json',
      'HEAD /new-org/tiny/resolve/main/config.json',
      'GET /new-org/tiny/resolve/main/config.json',
    ]);
  });
});

describe('weights', () => {
  it('follows a sharded safetensors index and downloads every shard once', async () => {
    const shards = { 'model-00001-of-00002.safetensors': randomBytes(50_000), 'model-00002-of-00002.safetensors': randomBytes(60_000) };
    const index = {
      metadata: { total_size: 110_000 },
      weight_map: {
        'transformer.wte.weight': 'model-00001-of-00002.safetensors',
        'transformer.h.0.attn.attention.k_proj.weight': 'model-00001-of-00002.safetensors',
        'lm_head.weight': 'model-00002-of-00002.safetensors',
      },
    };
    const repo = modelRepo('sharded', { ...shards, 'model.safetensors.index.json': Buffer.from(JSON.stringify(index)) });
    hub = await startFakeHub({ repos: { 'org/sharded': repo } });

    const folder = await resolveModelFolder('org/sharded', isolated(hub.url, tempDir()));

    for (const [name, bytes] of Object.entries(shards)) {
      expect((await fs.readFile(path.join(folder, name))).equals(bytes)).toBe(true);
    }
    expect(gets(hub.requests).filter((line) => line.includes('/cdn/')).sort()).toEqual(
      Object.values(shards).map((bytes) => `GET /cdn/${sha256(bytes)}`).sort(),
    );
    expect(existsSync(path.join(folder, 'pytorch_model.bin'))).toBe(false);
  });

  it('falls back to pytorch_model.bin when there is no safetensors file', async () => {
    const bin = randomBytes(80_000);
    hub = await startFakeHub({ repos: { 'org/old': modelRepo('bin', { 'pytorch_model.bin': bin }) } });

    const folder = await resolveModelFolder('org/old', isolated(hub.url, tempDir()));

    expect((await fs.readFile(path.join(folder, 'pytorch_model.bin'))).equals(bin)).toBe(true);
    expect(hub.requests.filter((line) => line.includes('model.safetensors'))).toEqual([
      expect.stringMatching(/^HEAD .*\/model\.safetensors$/),
      expect.stringMatching(/^HEAD .*\/model\.safetensors\.index\.json$/),
    ]);
  });

  it('prefers model.safetensors and never touches pytorch_model.bin when both exist', async () => {
    const repo = modelRepo('both', { 'model.safetensors': randomBytes(1000), 'pytorch_model.bin': randomBytes(1000) });
    hub = await startFakeHub({ repos: { 'org/both': repo } });

    await resolveModelFolder('org/both', isolated(hub.url, tempDir()));

    expect(hub.requests.filter((line) => line.includes('pytorch_model'))).toEqual([]);
  });

  it('follows a sharded pytorch_model.bin index', async () => {
    const shard = randomBytes(30_000);
    const index = { weight_map: { 'lm_head.weight': 'pytorch_model-00001-of-00001.bin' } };
    const repo = modelRepo('bin-sharded', {
      'pytorch_model-00001-of-00001.bin': shard,
      'pytorch_model.bin.index.json': Buffer.from(JSON.stringify(index)),
    });
    hub = await startFakeHub({ repos: { 'org/bin-sharded': repo } });

    const folder = await resolveModelFolder('org/bin-sharded', isolated(hub.url, tempDir()));

    expect((await fs.readFile(path.join(folder, 'pytorch_model-00001-of-00001.bin'))).equals(shard)).toBe(true);
  });

  it('refuses an index whose shard names would leave the snapshot folder', async () => {
    const index = { weight_map: { 'lm_head.weight': '../../../../evil.bin' } };
    const repo = modelRepo('hostile', { 'model.safetensors.index.json': Buffer.from(JSON.stringify(index)) });
    hub = await startFakeHub({ repos: { 'org/hostile': repo } });

    await expect(resolveModelFolder('org/hostile', isolated(hub.url, tempDir()))).rejects.toThrow('refusing cache path outside');
  });
});
