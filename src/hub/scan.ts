import fs from 'node:fs/promises';
import path from 'node:path';
import { STAGING_MARK } from '../util/atomic-write.js';
import { treeSize } from '../util/cache-size.js';
import { tryAcquireLock, type HeldLock } from '../util/file-lock.js';
import { RepoCache } from './cache.js';

/** One model repo in the Hub cache, as huggingface-cli scan-cache describes it. */
export interface CachedRepo {
  repoId: string;
  folder: string;
  /** Every file under the repo's folder (blobs, partial downloads), symlinks not counted: what it takes on disk. */
  size: number;
  /** Latest access or change of any blob (huggingface_hub's last_accessed / last_modified), ms since the epoch. */
  lastUsed: number;
  revisions: Array<{ commit: string; refs: string[]; files: number }>;
}

/** The model repos in a Hub cache folder (models--{org}--{name}); datasets and spaces are not this package's. */
export async function scanHubCache(cacheDir: string): Promise<CachedRepo[]> {
  const names = await fs.readdir(cacheDir).catch(() => [] as string[]);
  const repos: CachedRepo[] = [];
  for (const name of names.filter((n) => n.startsWith('models--'))) {
    const repoId = name.slice('models--'.length).split('--').join('/');
    const folder = path.join(cacheDir, name);
    const { size } = await treeSize(folder);
    repos.push({ repoId, folder, size, lastUsed: await lastUse(folder), revisions: await revisionsOf(folder) });
  }
  return repos;
}

/**
 * Removes a repo from the Hub cache unless a process is using it: one of ours resolving or downloading it
 * (its in-use lock), or any process, Python's included, downloading one of its blobs (the blob locks).
 * Returns false then. Removed in an order that keeps every intermediate state a working cache: refs first
 * (the repo then resolves by asking the Hub), snapshots before the blobs they link to, the folder last.
 */
export async function removeHubRepo(cacheDir: string, repoId: string): Promise<boolean> {
  const cache = new RepoCache(cacheDir, repoId);
  const blobLocks = (await fs.readdir(cache.locksDir).catch(() => [] as string[])).filter((n) => n !== path.basename(cache.inUseLockPath));
  const held: HeldLock[] = [];
  try {
    for (const lockPath of [cache.inUseLockPath, ...blobLocks.map((n) => path.join(cache.locksDir, n))]) {
      const lock = await tryAcquireLock(lockPath);
      if (!lock) return false;
      held.push(lock);
    }
    for (const part of ['refs', 'snapshots', '.no_exist', 'blobs']) {
      await fs.rm(path.join(cache.root, part), { recursive: true, force: true });
    }
    await fs.rm(cache.root, { recursive: true, force: true });
    return true;
  } finally {
    for (const lock of held) await lock.release();
  }
}

async function lastUse(folder: string): Promise<number> {
  let latest = 0;
  const blobs = path.join(folder, 'blobs');
  for (const name of await fs.readdir(blobs).catch(() => [] as string[])) {
    const stat = await fs.stat(path.join(blobs, name)).catch(() => undefined);
    if (stat) latest = Math.max(latest, stat.atimeMs, stat.mtimeMs);
  }
  return latest;
}

async function revisionsOf(folder: string): Promise<CachedRepo['revisions']> {
  const refs = await readRefs(path.join(folder, 'refs'), '');
  const commits = await fs.readdir(path.join(folder, 'snapshots')).catch(() => [] as string[]);
  const revisions = [];
  for (const commit of commits.sort()) {
    const files = await countFiles(path.join(folder, 'snapshots', commit));
    revisions.push({ commit, refs: refs.filter((r) => r.commit === commit).map((r) => r.name), files });
  }
  return revisions;
}

/** refs/{name} files (a branch may contain '/': refs/pr/1) with the commit each holds. */
async function readRefs(dir: string, prefix: string): Promise<Array<{ name: string; commit: string }>> {
  const refs = [];
  for (const entry of await fs.readdir(dir, { withFileTypes: true }).catch(() => [])) {
    if (entry.name.includes(STAGING_MARK)) continue;
    const name = prefix + entry.name;
    if (entry.isDirectory()) refs.push(...(await readRefs(path.join(dir, entry.name), `${name}/`)));
    else refs.push({ name, commit: (await fs.readFile(path.join(dir, entry.name), 'utf8').catch(() => '')).trim() });
  }
  return refs;
}

async function countFiles(dir: string): Promise<number> {
  let count = 0;
  for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
    count += entry.isDirectory() ? await countFiles(path.join(dir, entry.name)) : 1;
  }
  return count;
}
