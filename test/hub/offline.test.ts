import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { hubDownload, resolveModelFolder } from '../../src/hub/index.js';
import { startFakeHub, type FakeHub } from './fake-hub.js';
import { isolated, modelRepo, removeTempDirs, tempDir } from './helpers.js';

let hub: FakeHub | undefined;
afterAll(removeTempDirs);
afterEach(async () => {
  vi.unstubAllEnvs();
  await hub?.close();
  hub = undefined;
});

/** An endpoint nothing listens on: a hub started and closed again. */
async function deadEndpoint(): Promise<string> {
  const dead = await startFakeHub({ repos: {} });
  await dead.close();
  return dead.url;
}

describe('offline and unreachable Hub', () => {
  it('offline mode serves a cached snapshot without a single request', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('offline') } });
    const cacheDir = tempDir();
    const online = await resolveModelFolder('org/tiny', isolated(hub.url, cacheDir));
    hub.requests.length = 0;

    const offline = await resolveModelFolder('org/tiny', { ...isolated(hub.url, cacheDir), offline: true });

    expect(offline).toBe(online);
    expect(hub.requests).toEqual([]);
  });

  it('HF_HUB_OFFLINE=1 switches offline mode on when the option is not given', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('offline-env') } });
    const cacheDir = tempDir();
    await resolveModelFolder('org/tiny', isolated(hub.url, cacheDir));
    hub.requests.length = 0;
    vi.stubEnv('HF_HUB_OFFLINE', '1');

    await resolveModelFolder('org/tiny', { endpoint: hub.url, cacheDir, token: false });

    expect(hub.requests).toEqual([]);
  });

  it('offline mode without a cached copy says it is offline and what is missing', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('offline-empty') } });
    const cacheDir = tempDir();

    const failure = resolveModelFolder('org/tiny', { ...isolated(hub.url, cacheDir), offline: true });

    await expect(failure).rejects.toMatchObject({ name: 'HubError', code: 'offline' });
    await expect(failure).rejects.toThrow(/offline mode is on \(HF_HUB_OFFLINE\).*org\/tiny.*"main"/);
    expect(hub.requests).toEqual([]);
  });

  it('offline mode names the weights when the snapshot has config and tokenizer but no weights', async () => {
    const repo = modelRepo('offline-partial');
    hub = await startFakeHub({ repos: { 'org/tiny': repo } });
    const cacheDir = tempDir();
    const folder = await resolveModelFolder('org/tiny', isolated(hub.url, cacheDir));
    await fs.rm(path.join(folder, 'model.safetensors'));

    const failure = resolveModelFolder('org/tiny', { ...isolated(hub.url, cacheDir), offline: true });

    await expect(failure).rejects.toMatchObject({ code: 'offline' });
    await expect(failure).rejects.toThrow(/no weights: tried model\.safetensors, model\.safetensors\.index\.json, pytorch_model\.bin/);
  });

  it('falls back to the cached snapshot when the Hub cannot be reached', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': modelRepo('unreachable') } });
    const cacheDir = tempDir();
    const online = await resolveModelFolder('org/tiny', isolated(hub.url, cacheDir));

    expect(await resolveModelFolder('org/tiny', isolated(await deadEndpoint(), cacheDir))).toBe(online);
  });

  it('reports "could not reach" with the endpoint, repo and file when there is no cache to fall back on', async () => {
    const endpoint = await deadEndpoint();

    const failure = hubDownload('org/tiny', 'config.json', isolated(endpoint, tempDir()));

    await expect(failure).rejects.toMatchObject({ name: 'HubError', code: 'network', status: undefined });
    await expect(failure).rejects.toThrow(`could not reach ${endpoint}: connect ECONNREFUSED`);
    await expect(failure).rejects.toThrow('config.json of org/tiny');
  });

  it('reports an unanswered HEAD as a timeout', async () => {
    const http = await import('node:http');
    const silent = http.createServer(() => {});
    await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
    const { port } = silent.address() as { port: number };
    vi.stubEnv('HF_HUB_ETAG_TIMEOUT', '0.2');
    try {
      const failure = hubDownload('org/tiny', 'config.json', isolated(`http://127.0.0.1:${port}`, tempDir()));
      await expect(failure).rejects.toThrow(`could not reach http://127.0.0.1:${port}: timed out`);
    } finally {
      silent.closeAllConnections();
      silent.close();
    }
  });
});
