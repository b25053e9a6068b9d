import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { STAGING_MARK, writeFileAtomic } from '../util/atomic-write.js';
import { gptNeoCacheDir } from '../util/cache-dir.js';
import { evictLeastRecentlyUsed, parseSize, treeSize } from '../util/cache-size.js';
import { acquireLock, tryAcquireLock } from '../util/file-lock.js';
import { startProgress } from '../util/progress.js';

/**
 * The conversion cache: one folder per distinct (checkpoint content, config, weight format, graph variant,
 * graph version), shared by every folder holding the same checkpoint. Under $GPT_NEO_CACHE/onnx:
 *   {format}-{key}/                 a complete conversion (renamed into place), with conversion.json
 *   {format}-{key}.staging-…        a conversion being written, or left by a killed converter
 *   .locks/{format}-{key}.lock      flock: exclusive while converting or removing, shared while loaded
 *   .file-hashes/{stat key}         sha256 of a local weights file, keyed by its inode, size and mtime
 */

export const MANIFEST_FILE = 'conversion.json';
const REMOVING_MARK = '.removing-';

export function conversionsDir(): string {
  return gptNeoCacheDir('onnx');
}

export interface ConversionRequest {
  /** The model folder being loaded; recorded as the source, never part of the key. */
  folder: string;
  weightFiles: readonly string[];
  /** The parsed config, the weight format (and fp32's kernel), and what graph is built (head, outputs) with which version. */
  key: { config: unknown; format: string; float32Kernel?: string; variant: string; graphVersion: number };
}

export interface Conversion {
  /** The folder holding the converted model. */
  folder: string;
  /** Lets the cache remove this conversion again; until then it counts as in use. */
  release(): Promise<void>;
}

/** What conversion.json records, for `gpt-neo cache ls`. */
export interface ConversionManifest {
  format: string;
  float32Kernel?: string;
  variant: string;
  graphVersion: number;
  /** The folder it was last loaded from (the Hub repo and commit for a Hub snapshot). */
  source: string;
  weights: Array<{ file: string; sha256: string }>;
}

/**
 * Finds the conversion for `request`, running `convert(folder)` to make it when there is none, and holds it
 * (a shared lock) until release(). Two processes wanting the same missing conversion convert it once: the
 * second waits for the first. A converter killed midway leaves only a staging folder, removed by the next.
 */
export async function openConversion(
  request: ConversionRequest,
  convert: (folder: string) => Promise<void>,
): Promise<Conversion> {
  const weights = await weightHashes(request.weightFiles);
  const key = createHash('sha256')
    .update(JSON.stringify({ ...request.key, weights: weights.map((w) => w.sha256) }))
    .digest('hex')
    .slice(0, 32);
  const id = `${request.key.format}-${key}`;
  const folder = path.join(conversionsDir(), id);
  const manifestPath = path.join(folder, MANIFEST_FILE);
  const lockPath = conversionLockPath(id);
  const source = describeSource(request.folder);

  for (;;) {
    const lock = await acquireLock(lockPath, { shared: true, waitingFor: `another process converting ${source}` });
    if (await isFile(manifestPath)) {
      await recordUse(manifestPath, source);
      return { folder, release: () => lock.release() };
    }
    await lock.release();
    // Converting needs the lock alone, but waiting for it would outwait a finished conversion's users (they
    // hold it shared while loaded): take it only when it is free, else look again after a short pause.
    const converting = await tryAcquireLock(lockPath);
    if (!converting) {
      await sleep(50 + Math.random() * 50);
      continue;
    }
    try {
      if (await isFile(manifestPath)) continue;
      await removeLeftovers(id);
      await convert(folder);
      const { format, float32Kernel, variant, graphVersion } = request.key;
      const manifest: ConversionManifest = { format, float32Kernel, variant, graphVersion, source, weights };
      // Written last: a folder without its manifest is not a finished conversion.
      await writeFileAtomic(manifestPath, `${JSON.stringify(manifest, null, 2)}\n`);
    } finally {
      await converting.release();
    }
    await enforceMaxSize(id);
  }
}

/** A conversion in the cache as `gpt-neo cache ls` shows it. */
export interface CachedConversion {
  id: string;
  folder: string;
  /** Undefined for leftover work (a staging folder of a killed converter, an interrupted removal). */
  manifest: ConversionManifest | undefined;
  size: number;
  lastUsed: number;
}

/** Every conversion and leftover in the cache. */
export async function listConversions(): Promise<CachedConversion[]> {
  const root = conversionsDir();
  const names = await fs.readdir(root).catch(() => [] as string[]);
  const found: CachedConversion[] = [];
  for (const name of names.filter((n) => !n.startsWith('.'))) {
    const folder = path.join(root, name);
    const manifestPath = path.join(folder, MANIFEST_FILE);
    const manifest = isLeftover(name) ? undefined : await readManifest(manifestPath);
    const { size, newest } = await treeSize(folder);
    const lastUsed = manifest ? (await fs.stat(manifestPath)).mtimeMs : newest;
    found.push({ id: name, folder, manifest, size, lastUsed });
  }
  return found;
}

/**
 * Removes a conversion or leftover unless a process holds it (loaded, or being converted): false then. The
 * folder is first renamed aside, so an interrupted removal leaves no half conversion under its name.
 */
export async function removeConversion(id: string): Promise<boolean> {
  const lock = await tryAcquireLock(conversionLockPath(ownerOf(id)));
  if (!lock) return false;
  try {
    const folder = path.join(conversionsDir(), id);
    const aside = isLeftover(id) ? folder : `${folder}${REMOVING_MARK}${process.pid}`;
    await fs.rename(folder, aside);
    await fs.rm(aside, { recursive: true, force: true });
    return true;
  } finally {
    await lock.release();
  }
}

function conversionLockPath(id: string): string {
  return path.join(conversionsDir(), '.locks', `${id}.lock`);
}

function isLeftover(name: string): boolean {
  return name.includes(STAGING_MARK) || name.includes(REMOVING_MARK);
}

/** The conversion a leftover folder belongs to: its lock says whether its writer is still at work. */
function ownerOf(name: string): string {
  return name.split(STAGING_MARK)[0]!.split(REMOVING_MARK)[0]!;
}

/** Called with the conversion's lock held: nobody else can be writing these. */
async function removeLeftovers(id: string): Promise<void> {
  const root = conversionsDir();
  const names = await fs.readdir(root).catch(() => [] as string[]);
  for (const name of names.filter((n) => isLeftover(n) && ownerOf(n) === id)) {
    await fs.rm(path.join(root, name), { recursive: true, force: true });
  }
}

/** GPT_NEO_CACHE_MAX_SIZE: after a conversion, the least recently used others go until the cache fits. */
async function enforceMaxSize(justMade: string): Promise<void> {
  const limit = process.env.GPT_NEO_CACHE_MAX_SIZE;
  if (!limit) return;
  const maxBytes = parseSize(limit, 'GPT_NEO_CACHE_MAX_SIZE');
  const entries = (await listConversions()).map((entry) =>
    entry.id === justMade ? { ...entry, lastUsed: Number.POSITIVE_INFINITY } : entry,
  );
  await evictLeastRecentlyUsed(entries, maxBytes, (entry) => (entry.id === justMade ? Promise.resolve(false) : removeConversion(entry.id)));
}

async function recordUse(manifestPath: string, source: string): Promise<void> {
  const manifest = await readManifest(manifestPath);
  if (!manifest) return;
  try {
    // Rewritten whole (renamed into place): its mtime is the last use, its source the folder last loaded.
    await writeFileAtomic(manifestPath, `${JSON.stringify({ ...manifest, source }, null, 2)}\n`);
  } catch {
    // A read-only shared cache still serves its conversions; only the bookkeeping is lost.
  }
}

async function readManifest(manifestPath: string): Promise<ConversionManifest | undefined> {
  try {
    return JSON.parse(await fs.readFile(manifestPath, 'utf8')) as ConversionManifest;
  } catch {
    return undefined;
  }
}

/** "org/name (Hub, commit abc1234)" for a Hub snapshot, else the folder's absolute path. */
function describeSource(folder: string): string {
  const resolved = path.resolve(folder);
  const hub = /models--(.+?)[\\/]snapshots[\\/]([0-9a-f]{40})$/.exec(resolved);
  return hub ? `${hub[1]!.split('--').join('/')} (Hub, commit ${hub[2]!.slice(0, 7)})` : resolved;
}

/**
 * The sha256 of each weights file. A Hub blob is named by its sha256 (verified when it was downloaded), so
 * it costs nothing; a local file is hashed once (about 1 GB/s) and the result kept under its inode, size and
 * mtime, so loading the same folder again costs a stat, and a copy costs one hash instead of a conversion.
 */
async function weightHashes(files: readonly string[]): Promise<Array<{ file: string; sha256: string }>> {
  const hashes = [];
  for (const file of files) hashes.push({ file: path.basename(file), sha256: await fileSha256(file) });
  return hashes;
}

async function fileSha256(file: string): Promise<string> {
  const real = await fs.realpath(file);
  const name = path.basename(real);
  if (/^[0-9a-f]{64}$/.test(name) && path.basename(path.dirname(real)) === 'blobs') return name;

  const stat = await fs.stat(real, { bigint: true });
  const identity = createHash('sha256').update(`${stat.dev}:${stat.ino}:${stat.size}:${stat.mtimeNs}`).digest('hex');
  const memo = path.join(conversionsDir(), '.file-hashes', identity);
  const known = await fs.readFile(memo, 'utf8').catch(() => '');
  if (/^[0-9a-f]{64}$/.test(known)) return known;

  const hash = createHash('sha256');
  const progress = startProgress(`Hashing ${name}`, Number(stat.size), 'bytes');
  try {
    for await (const chunk of createReadStream(real, { highWaterMark: 1 << 20 })) {
      hash.update(chunk as Buffer);
      progress.increment((chunk as Buffer).length);
    }
  } finally {
    progress.stop();
  }
  const digest = hash.digest('hex');
  await fs.mkdir(path.dirname(memo), { recursive: true });
  await writeFileAtomic(memo, digest).catch(() => {});
  return digest;
}

async function isFile(p: string): Promise<boolean> {
  return fs.stat(p).then((s) => s.isFile(), () => false);
}
