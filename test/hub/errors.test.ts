import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { HubError, hubDownload, resolveModelFolder } from '../../src/hub/index.js';
import { startFakeHub, type FakeHub } from './fake-hub.js';
import { gets, isolated, modelRepo, removeTempDirs, tempDir } from './helpers.js';

let hub: FakeHub | undefined;
afterAll(removeTempDirs);
afterEach(async () => {
  vi.unstubAllEnvs();
  await hub?.close();
  hub = undefined;
});

const TOKEN = 'hf_test_token_123';

describe('private repos and tokens', () => {
  it('401 without a token tells the user to set HF_TOKEN', async () => {
    hub = await startFakeHub({ repos: { 'org/private': modelRepo('private') }, token: TOKEN });

    const failure = resolveModelFolder('org/private', isolated(hub.url, tempDir()));

    await expect(failure).rejects.toMatchObject({ name: 'HubError', status: 401, code: 'unauthorized' });
    await expect(failure).rejects.toThrow(/org\/private .*HTTP 401, fetching config\.json.*set HF_TOKEN/);
  });

  it('401 with a wrong token says the token was rejected', async () => {
    hub = await startFakeHub({ repos: { 'org/private': modelRepo('private') }, token: TOKEN });

    const failure = hubDownload('org/private', 'config.json', { ...isolated(hub.url, tempDir()), token: 'hf_wrong' });

    await expect(failure).rejects.toMatchObject({ status: 401, code: 'unauthorized' });
    await expect(failure).rejects.toThrow(/rejected the token \(HTTP 401, fetching config\.json of org\/private\)/);
  });

  it('sends the right token to the Hub but never to the CDN host', async () => {
    hub = await startFakeHub({ repos: { 'org/private': modelRepo('private') }, token: TOKEN });

    const folder = await resolveModelFolder('org/private', { ...isolated(hub.url, tempDir()), token: TOKEN });

    expect(await fs.readFile(path.join(folder, 'model.safetensors'))).toHaveLength(300_000);
    const cdn = hub.requests.filter((line) => line.includes('/cdn/'));
    expect(cdn).toHaveLength(1);
    expect(cdn[0]).not.toContain('auth');
    expect(hub.requests.filter((line) => line.includes('/resolve/')).every((line) => line.endsWith(' auth'))).toBe(true);
  });

  it('drops the token when a GET is redirected to another host (mirrors that redirect only the GET)', async () => {
    hub = await startFakeHub({ repos: { 'org/private': modelRepo('private') }, token: TOKEN, redirectLfsOnlyOnGet: true });

    const file = await hubDownload('org/private', 'model.safetensors', { ...isolated(hub.url, tempDir()), token: TOKEN });

    expect(await fs.readFile(file!)).toHaveLength(300_000);
    expect(gets(hub.requests)).toEqual([
      'GET /org/private/resolve/main/model.safetensors auth',
      expect.stringMatching(/^GET \/cdn\/[0-9a-f]{64}$/),
    ]);
  });

  it('reads the token from HF_TOKEN, then from $HF_HOME/token', async () => {
    hub = await startFakeHub({ repos: { 'org/private': modelRepo('private') }, token: TOKEN });
    const options = { endpoint: hub.url, cacheDir: tempDir(), offline: false };
    const hfHome = tempDir();
    await fs.writeFile(path.join(hfHome, 'token'), `${TOKEN}\n`);
    vi.stubEnv('HF_HOME', hfHome);
    vi.stubEnv('HF_TOKEN', '');
    vi.stubEnv('HUGGING_FACE_HUB_TOKEN', '');

    expect(await hubDownload('org/private', 'config.json', options)).toBeTruthy();

    vi.stubEnv('HF_TOKEN', 'hf_from_env_wins');
    await expect(hubDownload('org/private', 'vocab.json', options)).rejects.toThrow('rejected the token');
    await expect(hubDownload('org/private', 'vocab.json', { ...options, token: false })).rejects.toThrow('set HF_TOKEN');
  });
});

describe('gated repos and outages', () => {
  it('a gated repo asks for accepted conditions and a token: 401 without one, 403 with one lacking access', async () => {
    hub = await startFakeHub({ repos: { 'org/gated': modelRepo('gated') }, gated: { repos: ['org/gated'], grantedToken: TOKEN } });
    const options = isolated(hub.url, tempDir());

    const anonymous = hubDownload('org/gated', 'config.json', options);
    await expect(anonymous).rejects.toMatchObject({ status: 401, code: 'gated' });
    await expect(anonymous).rejects.toThrow(`org/gated is gated (HTTP 401, fetching config.json): accept its conditions at ${hub.url}/org/gated and set HF_TOKEN`);

    const notApproved = hubDownload('org/gated', 'config.json', { ...options, token: 'hf_someone_else' });
    await expect(notApproved).rejects.toMatchObject({ status: 403, code: 'gated' });
    await expect(notApproved).rejects.toThrow('not in the authorized list');

    expect(await hubDownload('org/gated', 'config.json', { ...options, token: TOKEN })).toBeTruthy();
  });

  it('a Hub outage is reported with its status, and a cached snapshot is used through it', async () => {
    const repo = modelRepo('outage');
    const cacheDir = tempDir();
    const healthy = await startFakeHub({ repos: { 'org/tiny': repo } });
    const folder = await resolveModelFolder('org/tiny', isolated(healthy.url, cacheDir));
    await healthy.close();
    hub = await startFakeHub({ repos: { 'org/tiny': repo }, outage: 503 });

    expect(await resolveModelFolder('org/tiny', isolated(hub.url, cacheDir))).toBe(folder);

    const uncached = hubDownload('org/tiny', 'config.json', isolated(hub.url, tempDir()));
    await expect(uncached).rejects.toMatchObject({ status: 503, code: 'http' });
    await expect(uncached).rejects.toThrow('the Hub answered HTTP 503 Service Unavailable for config.json of org/tiny');
  });
});

describe('not found', () => {
  it('a missing repo is RepoNotFound (404 with a token, 401 without)', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('exists') } });

    const withToken = hubDownload('org/nope', 'config.json', { ...isolated(hub.url, tempDir()), token: 'hf_any' });
    await expect(withToken).rejects.toMatchObject({ status: 404, code: 'repo-not-found' });
    await expect(withToken).rejects.toThrow(/repository org\/nope not found on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404, fetching config\.json\)/);

    const withoutToken = hubDownload('org/nope', 'config.json', isolated(hub.url, tempDir()));
    await expect(withoutToken).rejects.toMatchObject({ status: 401 });
    await expect(withoutToken).rejects.toThrow(/org\/nope was not found .* or needs a token/);
  });

  it('a missing file is EntryNotFound: null when optional, an error naming file and repo otherwise', async () => {
    const repo = modelRepo('entry');
    hub = await startFakeHub({ repos: { 'org/tiny': repo } });
    const cacheDir = tempDir();

    expect(await hubDownload('org/tiny', 'tokenizer.json', { ...isolated(hub.url, cacheDir), optional: true })).toBeNull();
    const failure = hubDownload('org/tiny', 'tokenizer.json', isolated(hub.url, cacheDir));
    await expect(failure).rejects.toMatchObject({ status: 404, code: 'entry-not-found' });
    await expect(failure).rejects.toThrow('tokenizer.json not found in org/tiny at revision "main" (HTTP 404)');
    // Remembered like huggingface_hub does, so offline runs know the file does not exist.
    await fs.access(path.join(cacheDir, 'models--org--tiny', '.no_exist', repo.commit, 'tokenizer.json'));
  });

  it('a missing revision is RevisionNotFound, and no cached copy hides it', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('revision') } });

    const failure = resolveModelFolder('org/tiny', { ...isolated(hub.url, tempDir()), revision: 'v9' });

    await expect(failure).rejects.toMatchObject({ status: 404, code: 'revision-not-found' });
    await expect(failure).rejects.toThrow('revision "v9" not found in org/tiny (HTTP 404, looking for config.json)');
  });

  it('a repo without weights in any form is named along with the files tried', async () => {
    const repo = modelRepo('no-weights', {});
    hub = await startFakeHub({ repos: { 'org/empty': repo } });

    const failure = resolveModelFolder('org/empty', isolated(hub.url, tempDir()));

    await expect(failure).rejects.toBeInstanceOf(HubError);
    await expect(failure).rejects.toThrow(
      'org/empty (revision "main") has no weights: tried model.safetensors, model.safetensors.index.json, pytorch_model.bin, pytorch_model.bin.index.json',
    );
  });

  it('a repo without a tokenizer is refused before any weights are downloaded', async () => {
    const repo = modelRepo('no-tokenizer');
    delete repo.files['merges.txt'];
    hub = await startFakeHub({ repos: { 'org/untokenized': repo } });

    await expect(resolveModelFolder('org/untokenized', isolated(hub.url, tempDir()))).rejects.toThrow(
      'has no tokenizer: neither tokenizer.json nor vocab.json + merges.txt',
    );
    expect(gets(hub.requests).filter((line) => line.includes('/cdn/'))).toEqual([]);
  });
});
