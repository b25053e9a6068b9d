import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { hubDownload, resolveModelFolder } from '../../src/hub/index.js';
import { gitBlobSha1, sha256, startFakeHub, type FakeHub } from './fake-hub.js';
import { gets, isolated, listTree, modelRepo, removeTempDirs, tempDir } from './helpers.js';

let hub: FakeHub | undefined;
afterAll(removeTempDirs);
afterEach(async () => {
  vi.restoreAllMocks();
  await hub?.close();
  hub = undefined;
});

describe('download into the huggingface_hub cache layout', () => {
  it('files every blob under its etag and links the snapshot to it with relative symlinks', async () => {
    const repo = modelRepo('layout');
    hub = await startFakeHub({ repos: { 'EleutherAI/gpt-neo-tiny': repo } });
    const cacheDir = tempDir();

    const folder = await resolveModelFolder('EleutherAI/gpt-neo-tiny', isolated(hub.url, cacheDir));

    const root = path.join(cacheDir, 'models--EleutherAI--gpt-neo-tiny');
    expect(folder).toBe(path.join(root, 'snapshots', repo.commit));
    const blob = (name: string) => (repo.lfs!.includes(name) ? sha256 : gitBlobSha1)(repo.files[name]!);
    const link = (name: string) => `-> ../../blobs/${blob(name)}`;
    const tree = await listTree(root);
    const size = (name: string) => `${repo.files[name]!.length} bytes`;
    expect(tree).toEqual({
      'refs/main': `${40} bytes`,
      [`blobs/${blob('config.json')}`]: size('config.json'),
      [`blobs/${blob('vocab.json')}`]: size('vocab.json'),
      [`blobs/${blob('merges.txt')}`]: size('merges.txt'),
      [`blobs/${blob('tokenizer_config.json')}`]: size('tokenizer_config.json'),
      [`blobs/${blob('model.safetensors')}`]: size('model.safetensors'),
      [`snapshots/${repo.commit}/config.json`]: link('config.json'),
      [`snapshots/${repo.commit}/vocab.json`]: link('vocab.json'),
      [`snapshots/${repo.commit}/merges.txt`]: link('merges.txt'),
      [`snapshots/${repo.commit}/tokenizer_config.json`]: link('tokenizer_config.json'),
      [`snapshots/${repo.commit}/model.safetensors`]: link('model.safetensors'),
      // What the Hub answered 404 for is remembered per commit, as huggingface_hub does.
      [`.no_exist/${repo.commit}/generation_config.json`]: '0 bytes',
      [`.no_exist/${repo.commit}/tokenizer.json`]: '0 bytes',
      [`.no_exist/${repo.commit}/special_tokens_map.json`]: '0 bytes',
    });
    expect(await fs.readFile(path.join(root, 'refs/main'), 'utf8')).toBe(repo.commit);
    for (const name of Object.keys(repo.files)) {
      expect((await fs.readFile(path.join(folder, name))).equals(repo.files[name]!)).toBe(true);
    }
  });

  it('makes no GET on a second call: one HEAD finds the commit, the rest is known from the cache', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('again') } });
    const cacheDir = tempDir();
    const first = await resolveModelFolder('org/tiny', isolated(hub.url, cacheDir));
    expect(gets(hub.requests)).toHaveLength(5);
    hub.requests.length = 0;

    const second = await resolveModelFolder('org/tiny', isolated(hub.url, cacheDir));

    expect(second).toBe(first);
    expect(hub.requests).toEqual(['HEAD /org/tiny/resolve/main/config.json']);
  });

  it('uses a cache written by huggingface_hub (Python) without downloading anything', async () => {
    const repo = modelRepo('python-made');
    hub = await startFakeHub({ repos: { 'org/from-python': repo } });
    const cacheDir = tempDir();
    // The layout transformers leaves behind: blobs, relative links, refs/main, no .no_exist markers for
    // files it never asked about.
    const root = path.join(cacheDir, 'models--org--from-python');
    const snapshot = path.join(root, 'snapshots', repo.commit);
    await fs.mkdir(path.join(root, 'blobs'), { recursive: true });
    await fs.mkdir(snapshot, { recursive: true });
    await fs.mkdir(path.join(root, 'refs'));
    await fs.writeFile(path.join(root, 'refs', 'main'), repo.commit);
    for (const name of Object.keys(repo.files)) {
      const etag = repo.lfs!.includes(name) ? sha256(repo.files[name]!) : gitBlobSha1(repo.files[name]!);
      await fs.writeFile(path.join(root, 'blobs', etag), repo.files[name]!);
      await fs.symlink(`../../blobs/${etag}`, path.join(snapshot, name));
    }

    const folder = await resolveModelFolder('org/from-python', isolated(hub.url, cacheDir));

    expect(folder).toBe(snapshot);
    expect(gets(hub.requests)).toEqual([]);
    expect(hub.requests.filter((line) => line.includes('model.safetensors'))).toEqual([]);
    expect(await fs.readdir(path.join(root, 'blobs'))).toHaveLength(Object.keys(repo.files).length);
  });

  it('accepts a repo id without an organisation', async () => {
    const repo = modelRepo('no-org');
    hub = await startFakeHub({ repos: { gpt2: repo } });
    const cacheDir = tempDir();

    const folder = await resolveModelFolder('gpt2', isolated(hub.url, cacheDir));

    expect(folder).toBe(path.join(cacheDir, 'models--gpt2', 'snapshots', repo.commit));
    expect(hub.requests[0]).toBe('HEAD /gpt2/resolve/main/config.json');
  });

  it('returns an existing local folder unchanged, without any request', async () => {
    hub = await startFakeHub({ repos: {} });
    const local = tempDir();
    await fs.writeFile(path.join(local, 'config.json'), '{}');

    expect(await resolveModelFolder(local, isolated(hub.url, tempDir()))).toBe(local);
    expect(hub.requests).toEqual([]);
  });

  it('rejects something that is neither a folder nor a repo id', async () => {
    await expect(resolveModelFolder('./no/such/folder', { offline: true })).rejects.toMatchObject({
      name: 'HubError',
      code: 'invalid-repo-id',
      message: expect.stringContaining('./no/such/folder'),
    });
  });

  it('nests links one level deeper for a file in a subfolder', async () => {
    const repo = modelRepo('nested');
    repo.files['onnx/decoder.onnx'] = Buffer.from('not really onnx');
    hub = await startFakeHub({ repos: { 'org/nested': repo } });
    const cacheDir = tempDir();

    const file = await hubDownload('org/nested', 'onnx/decoder.onnx', isolated(hub.url, cacheDir));

    expect(file).toBe(path.join(cacheDir, 'models--org--nested', 'snapshots', repo.commit, 'onnx', 'decoder.onnx'));
    expect(await fs.readlink(file!)).toBe(`../../../blobs/${gitBlobSha1(repo.files['onnx/decoder.onnx']!)}`);
    expect(await fs.readFile(file!, 'utf8')).toBe('not really onnx');
    expect(hub.requests[0]).toBe('HEAD /org/nested/resolve/main/onnx/decoder.onnx');
  });

  it('puts the file itself in the snapshot where symlinks are refused (as on Windows)', async () => {
    const repo = modelRepo('no-symlinks');
    hub = await startFakeHub({ repos: { 'org/a': repo } });
    const cacheDir = tempDir();
    vi.spyOn(fs, 'symlink').mockRejectedValue(Object.assign(new Error('operation not permitted'), { code: 'EPERM' }));

    const file = await hubDownload('org/a', 'config.json', isolated(hub.url, cacheDir));

    expect((await fs.lstat(file!)).isSymbolicLink()).toBe(false);
    expect((await fs.readFile(file!)).equals(repo.files['config.json']!)).toBe(true);
    // The blob stays for other snapshots that hold the same content.
    expect(await fs.readdir(path.join(cacheDir, 'models--org--a', 'blobs'))).toEqual([gitBlobSha1(repo.files['config.json']!)]);
  });
});
