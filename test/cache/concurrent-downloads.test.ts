// Several real processes filling one cold Hub cache at once, and one killed midway (the shared-cache issue).
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { gitBlobSha1, sha256, startFakeHub, type FakeHub } from '../hub/fake-hub.js';
import { gets, modelRepo, removeTempDirs, tempDir } from '../hub/helpers.js';
import { acquireLock } from '../../src/util/file-lock.js';
import { BIN, runCli, startCli } from './processes.js';

let hub: FakeHub | undefined;
afterAll(removeTempDirs);
afterEach(async () => {
  await hub?.close();
  hub = undefined;
});

const python = await findPython();
const weights = randomBytes(1_000_000);
const repo = modelRepo('shared-cache', { 'model.safetensors': weights });
const repoDir = (cacheDir: string) => path.join(cacheDir, 'models--org--tiny');

function env(cacheDir: string): Record<string, string> {
  return { HF_ENDPOINT: hub!.url, HF_HUB_CACHE: cacheDir, HF_TOKEN: '', HF_HUB_OFFLINE: '', GPT_NEO_NO_PROGRESS: '1' };
}

/** Every blob is named by the hash of its content, and nothing else (no partial or staging file) is left. */
async function expectIntactBlobs(cacheDir: string): Promise<void> {
  const blobsDir = path.join(repoDir(cacheDir), 'blobs');
  const names = await fs.readdir(blobsDir);
  expect(names.sort()).toEqual(Object.values(repo.files).map((content, i) =>
    repo.lfs!.includes(Object.keys(repo.files)[i]!) ? sha256(content) : gitBlobSha1(content),
  ).sort());
  for (const name of names) {
    const content = await fs.readFile(path.join(blobsDir, name));
    expect(name.length === 64 ? sha256(content) : gitBlobSha1(content)).toBe(name);
  }
}

describe('several processes sharing one Hub cache', () => {
  it('four downloads started together on a cold cache all succeed, each file fetched once', async () => {
    // Slow enough that the four processes' downloads overlap.
    hub = await startFakeHub({ repos: { 'org/tiny': repo }, bytesPerSecond: 1_000_000 });
    const cacheDir = tempDir();

    const results = await Promise.all([1, 2, 3, 4].map(() => runCli(['download', 'org/tiny'], env(cacheDir))));

    const snapshot = path.join(repoDir(cacheDir), 'snapshots', repo.commit);
    for (const result of results) expect(result).toMatchObject({ code: 0, stderr: '', stdout: `${snapshot}\n` });
    await expectIntactBlobs(cacheDir);
    // One lock per blob, where huggingface_hub keeps them; no process downloaded a file another was fetching.
    expect((await fs.readdir(path.join(cacheDir, '.locks', 'models--org--tiny'))).filter((n) => n !== 'gpt-neo-in-use.lock').sort())
      .toEqual((await fs.readdir(path.join(repoDir(cacheDir), 'blobs'))).map((blob) => `${blob}.lock`).sort());
    const downloads = gets(hub.requests).map((line) => line.split(' ')[1]);
    expect(downloads.filter((url) => url === `/cdn/${sha256(weights)}`)).toHaveLength(1);
    expect(new Set(downloads).size).toBe(downloads.length);
    expect((await fs.readFile(path.join(snapshot, 'model.safetensors'))).equals(weights)).toBe(true);
  });

  it('a download killed midway (kill -9) leaves a cache that two new processes complete, resuming it', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': repo }, bytesPerSecond: 500_000 });
    const cacheDir = tempDir();
    const partial = path.join(repoDir(cacheDir), 'blobs', `${sha256(weights)}.incomplete`);

    const victim = startCli(['download', 'org/tiny'], env(cacheDir));
    await waitUntil(() => existsSync(partial) && statSync(partial).size >= 200_000);
    victim.child.kill('SIGKILL');
    expect((await victim.finished).signal).toBe('SIGKILL');
    const cut = statSync(partial).size;
    expect(cut).toBeLessThan(weights.length);
    const before = hub.requests.length;

    const results = await Promise.all([1, 2].map(() => runCli(['download', 'org/tiny'], env(cacheDir))));

    for (const result of results) expect(result).toMatchObject({ code: 0, stderr: '' });
    await expectIntactBlobs(cacheDir);
    // The lock the killed process held was released by its death: one of the two resumed where it stopped.
    const after = gets(hub.requests.slice(before)).filter((line) => line.startsWith(`GET /cdn/${sha256(weights)}`));
    expect(after).toEqual([`GET /cdn/${sha256(weights)} range=bytes=${cut}-`]);
  });

  it('a process waiting for a blob lock says so on a terminal, counting the seconds', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': repo } });
    const cacheDir = tempDir();
    const held = await acquireLock(path.join(cacheDir, '.locks', 'models--org--tiny', `${sha256(weights)}.lock`));
    // script(1) gives the download a terminal, where waiting and progress are shown.
    const command = `${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} download org/tiny`;
    const terminal = spawn('script', ['-qec', command, '/dev/null'], { env: { ...process.env, ...env(cacheDir), GPT_NEO_NO_PROGRESS: '' } });
    let screen = '';
    terminal.stdout.on('data', (chunk: Buffer) => (screen += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => terminal.on('close', resolve));

    await waitUntil(() => screen.includes('(2 s)'));
    await held.release();

    expect(await exited).toBe(0);
    expect(screen).toContain('Waiting for another process downloading model.safetensors of org/tiny (0 s)');
    expect(screen).toContain('Waiting for another process downloading model.safetensors of org/tiny (2 s)');
    expect((await fs.readFile(path.join(repoDir(cacheDir), 'blobs', sha256(weights)))).equals(weights)).toBe(true);
  });

  it('`gpt-neo cache rm` refuses a repo while a process downloads it, and removes it afterwards', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': repo }, bytesPerSecond: 500_000 });
    const cacheDir = tempDir();
    const partial = path.join(repoDir(cacheDir), 'blobs', `${sha256(weights)}.incomplete`);
    const download = startCli(['download', 'org/tiny'], env(cacheDir));
    await waitUntil(() => existsSync(partial));

    const refused = await runCli(['cache', 'rm', 'org/tiny'], env(cacheDir));
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain('in use by another process right now: org/tiny');
    expect(await download.finished).toMatchObject({ code: 0, stderr: '' });
    await expectIntactBlobs(cacheDir);

    expect(await runCli(['cache', 'rm', 'org/tiny'], env(cacheDir))).toMatchObject({ code: 0, stderr: '' });
    expect(existsSync(repoDir(cacheDir))).toBe(false);
  });

  // Needs a Python with fcntl (any POSIX python3); skipped, and so reported, where there is none.
  it.skipIf(!python)('waits while a Python process holds the same blob lock with flock, as huggingface_hub does', async () => {
    hub = await startFakeHub({ repos: { 'org/tiny': repo } });
    const cacheDir = tempDir();
    const lockPath = path.join(cacheDir, '.locks', 'models--org--tiny', `${sha256(weights)}.lock`);
    await fs.mkdir(path.dirname(lockPath), { recursive: true });

    // What filelock's UnixFileLock does: open, fcntl.flock(LOCK_EX | LOCK_NB); released when Python exits.
    const holder = spawn(python!, ['-c', PYTHON_HOLDS_LOCK, lockPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    const lines = lineReader(holder.stdout!);
    expect(await lines.next()).toBe('locked');

    const download = runCli(['download', 'org/tiny'], env(cacheDir));
    const released = lines.next();
    const first = await Promise.race([download.then(() => 'download finished'), released]);
    expect(first).toMatch(/^released at \d+/);
    const releasedAt = Number(/\d+/.exec(first)![0]);
    const result = await download;
    expect(result).toMatchObject({ code: 0, stderr: '' });
    // The weights were fetched only after Python let go of the lock.
    expect(statSync(path.join(repoDir(cacheDir), 'blobs', sha256(weights))).mtimeMs).toBeGreaterThanOrEqual(releasedAt);
  });
});

const PYTHON_HOLDS_LOCK = `
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o664)
fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
print("locked", flush=True)
time.sleep(1.5)
print("released at %d" % (time.time() * 1000), flush=True)
fcntl.flock(fd, fcntl.LOCK_UN)
`;

async function waitUntil(condition: () => boolean): Promise<void> {
  while (!condition()) await sleep(20);
}

async function findPython(): Promise<string | undefined> {
  for (const candidate of ['python3', 'python']) {
    const found = await new Promise<boolean>((resolve) => {
      const child = spawn(candidate, ['-c', 'import fcntl'], { stdio: 'ignore' });
      child.on('error', () => resolve(false));
      child.on('close', (code) => resolve(code === 0));
    });
    if (found) return candidate;
  }
  return undefined;
}

function lineReader(stream: NodeJS.ReadableStream): { next(): Promise<string> } {
  let buffered = '';
  const waiting: Array<(line: string) => void> = [];
  const lines: string[] = [];
  stream.on('data', (chunk: Buffer) => {
    buffered += chunk.toString();
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      const reader = waiting.shift();
      if (reader) reader(line);
      else lines.push(line);
    }
  });
  return {
    next: () => (lines.length > 0 ? Promise.resolve(lines.shift()!) : new Promise((resolve) => waiting.push(resolve))),
  };
}
