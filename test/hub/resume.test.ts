import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { hubDownload } from '../../src/hub/index.js';
import { sha256, startFakeHub, type FakeHub } from './fake-hub.js';
import { gets, isolated, modelRepo, removeTempDirs, tempDir } from './helpers.js';

let hub: FakeHub | undefined;
afterAll(removeTempDirs);
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

const weights = randomBytes(400_000);
const etag = sha256(weights);
const blobsOf = (cacheDir: string) => path.join(cacheDir, 'models--org--tiny', 'blobs');

describe('interrupted and corrupted downloads', () => {
  it('resumes a download cut mid-way with a Range request and verifies the whole file', async () => {
    hub = await startFakeHub({
      repos: { 'org/tiny': modelRepo('cut', { 'model.safetensors': weights }) },
      failAfterBytes: { file: 'model.safetensors', bytes: 150_000 },
    });
    const cacheDir = tempDir();

    const file = await hubDownload('org/tiny', 'model.safetensors', isolated(hub.url, cacheDir));

    // Bytes still queued in the client when the socket closed are lost, so the resume point is at most
    // what the server sent before the cut, and never 0.
    const [first, resumed, ...more] = gets(hub.requests);
    expect(first).toBe(`GET /cdn/${etag}`);
    expect(more).toEqual([]);
    const offset = Number(/^GET \/cdn\/[0-9a-f]+ range=bytes=(\d+)-$/.exec(resumed ?? '')?.[1]);
    expect(offset).toBeGreaterThan(0);
    expect(offset).toBeLessThanOrEqual(150_000);
    expect((await fs.readFile(file!)).equals(weights)).toBe(true);
    expect(await fs.readdir(blobsOf(cacheDir))).toEqual([etag]);
  });

  it('keeps resuming while each attempt brings new bytes', async () => {
    hub = await startFakeHub({
      repos: { 'org/tiny': modelRepo('many-cuts', { 'model.safetensors': weights }) },
      failAfterBytes: { file: 'model.safetensors', bytes: 70_000, times: 6 },
    });
    const cacheDir = tempDir();

    const file = await hubDownload('org/tiny', 'model.safetensors', isolated(hub.url, cacheDir));

    const offsets = gets(hub.requests).map((line) => Number(/range=bytes=(\d+)-/.exec(line)?.[1] ?? 0));
    // Six cuts of at most 70 kB each cannot cover 400 kB: more cuts than the retry limit allows in a row,
    // survived because each brought bytes. (A cut can also lose what was still queued: never go backwards.)
    expect(offsets.length).toBeGreaterThanOrEqual(6);
    expect(offsets[0]).toBe(0);
    for (let i = 1; i < offsets.length; i++) expect(offsets[i]).toBeGreaterThanOrEqual(offsets[i - 1]!);
    expect(offsets.at(-1)).toBeGreaterThan(0);
    expect((await fs.readFile(file!)).equals(weights)).toBe(true);
  });

  it('gives up when the connection keeps breaking without progress, keeping the partial file for later', async () => {
    hub = await startFakeHub({
      repos: { 'org/tiny': modelRepo('dead-link', { 'model.safetensors': weights }) },
      failAfterBytes: { file: 'model.safetensors', bytes: 0, times: 100 },
    });
    const cacheDir = tempDir();

    const failure = hubDownload('org/tiny', 'model.safetensors', isolated(hub.url, cacheDir));

    await expect(failure).rejects.toMatchObject({ name: 'HubError', code: 'network' });
    await expect(failure).rejects.toThrow(/could not reach http:\/\/127\.0\.0\.1:\d+: .*model\.safetensors of org\/tiny.*run again to resume/);
    expect(gets(hub.requests)).toHaveLength(5);
    expect(await fs.readdir(blobsOf(cacheDir))).toEqual([`${etag}.incomplete`]);
    expect(existsSync(path.join(cacheDir, 'models--org--tiny', 'snapshots'))).toBe(false);
  });

  it('resumes after the process was killed, from the .incomplete file it left', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('killed', { 'model.safetensors': weights }) } });
    const cacheDir = tempDir();
    await fs.mkdir(blobsOf(cacheDir), { recursive: true });
    await fs.writeFile(path.join(blobsOf(cacheDir), `${etag}.incomplete`), weights.subarray(0, 123_456));

    const file = await hubDownload('org/tiny', 'model.safetensors', isolated(hub.url, cacheDir));

    expect(gets(hub.requests)).toEqual([`GET /cdn/${etag} range=bytes=123456-`]);
    expect((await fs.readFile(file!)).equals(weights)).toBe(true);
    expect(await fs.readdir(blobsOf(cacheDir))).toEqual([etag]);
  });

  it('starts over when the server ignores the Range request, instead of appending the whole file again', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('no-range', { 'model.safetensors': weights }) }, ignoreRange: true });
    const cacheDir = tempDir();
    await fs.mkdir(blobsOf(cacheDir), { recursive: true });
    await fs.writeFile(path.join(blobsOf(cacheDir), `${etag}.incomplete`), weights.subarray(0, 100_000));

    const file = await hubDownload('org/tiny', 'model.safetensors', isolated(hub.url, cacheDir));

    expect(gets(hub.requests)).toEqual([`GET /cdn/${etag} range=bytes=100000-`]);
    expect((await fs.readFile(file!)).equals(weights)).toBe(true);
  });

  it('rejects content whose sha256 differs from the LFS etag and leaves no blob behind', async () => {
    hub = await startFakeHub({
      repos: { 'org/tiny': modelRepo('corrupt-lfs', { 'model.safetensors': weights }) },
      corrupt: ['model.safetensors'],
    });
    const cacheDir = tempDir();

    const failure = hubDownload('org/tiny', 'model.safetensors', isolated(hub.url, cacheDir));

    await expect(failure).rejects.toMatchObject({ name: 'HubError', code: 'integrity' });
    await expect(failure).rejects.toThrow(`model.safetensors of org/tiny is corrupt: its sha256 is`);
    expect(await fs.readdir(blobsOf(cacheDir))).toEqual([]);
    expect(existsSync(path.join(cacheDir, 'models--org--tiny', 'snapshots'))).toBe(false);
  });

  it('checks a regular file against its git blob sha1', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('corrupt-git') }, corrupt: ['config.json'] });
    const cacheDir = tempDir();

    await expect(hubDownload('org/tiny', 'config.json', isolated(hub.url, cacheDir))).rejects.toThrow(
      'config.json of org/tiny is corrupt: its git blob sha1 is',
    );
    expect(await fs.readdir(blobsOf(cacheDir))).toEqual([]);
  });
});
