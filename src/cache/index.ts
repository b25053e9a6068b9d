import { removeHubRepo, resolveSettings, scanHubCache, type HubOptions } from '../hub/index.js';
import { conversionsDir, listConversions, removeConversion } from '../convert/index.js';
import { evictLeastRecentlyUsed } from '../util/cache-size.js';

/**
 * Both caches this package fills, seen and controlled as one: the Hugging Face Hub cache (shared with
 * Python) and the conversion cache (ONNX graphs and converted weights). Nothing is removed while another
 * process uses it (the locks of the shared-cache code), and every removal leaves a cache that works.
 */

export interface CacheEntry {
  kind: 'hub' | 'conversion';
  /** The repo id for the Hub, the folder name for a conversion: what `gpt-neo cache rm` takes. */
  id: string;
  folder: string;
  size: number;
  /** ms since the epoch. */
  lastUsed: number;
  /** Hub: "main -> 1a2b3c4 (5 files)" per revision. Conversion: where it was last loaded from. */
  source: string;
  /** Conversion: its weight format (with fp32's kernel: 'fp32 conv') and graph variant. */
  format?: string;
  variant?: string;
  /** Left by a killed converter or an interrupted removal: not a usable conversion, pruned always. */
  leftover?: boolean;
}

export interface CacheReport {
  hubCacheDir: string;
  conversionsDir: string;
  entries: CacheEntry[];
  totalSize: number;
}

export async function scanCaches(options: Pick<HubOptions, 'cacheDir'> = {}): Promise<CacheReport> {
  const hubCacheDir = resolveSettings(options).cacheDir;
  const entries: CacheEntry[] = [];
  for (const repo of await scanHubCache(hubCacheDir)) {
    const revisions = repo.revisions.map(
      (r) => `${r.refs.length > 0 ? `${r.refs.join(', ')} -> ` : ''}${r.commit.slice(0, 7)} (${r.files} files)`,
    );
    entries.push({ kind: 'hub', id: repo.repoId, folder: repo.folder, size: repo.size, lastUsed: repo.lastUsed, source: revisions.join('; ') });
  }
  for (const conversion of await listConversions()) {
    const { manifest } = conversion;
    entries.push({
      kind: 'conversion',
      id: conversion.id,
      folder: conversion.folder,
      size: conversion.size,
      lastUsed: conversion.lastUsed,
      source: manifest?.source ?? 'unfinished or interrupted work',
      ...(manifest
        ? { format: [manifest.format, manifest.float32Kernel].filter(Boolean).join(' '), variant: manifest.variant }
        : { leftover: true }),
    });
  }
  return { hubCacheDir, conversionsDir: conversionsDir(), entries, totalSize: entries.reduce((sum, e) => sum + e.size, 0) };
}

export type RemovalOutcome = 'removed' | 'in-use';

export async function removeEntry(entry: CacheEntry, hubCacheDir: string): Promise<RemovalOutcome> {
  const removed = entry.kind === 'hub' ? await removeHubRepo(hubCacheDir, entry.id) : await removeConversion(entry.id);
  return removed ? 'removed' : 'in-use';
}

/**
 * The entries `gpt-neo cache rm` means by `target`: a Hub repo id, or a conversion's folder name or a prefix
 * of it naming one conversion. An error lists what exists when nothing (or more than one) matches.
 */
export function findEntries(report: CacheReport, target: string): CacheEntry[] {
  const repo = report.entries.filter((e) => e.kind === 'hub' && e.id === target);
  if (repo.length > 0) return repo;
  const conversions = report.entries.filter((e) => e.kind === 'conversion' && e.id.startsWith(target));
  if (conversions.length === 1 || conversions.some((e) => e.id === target)) return conversions.slice(0, 1);
  if (conversions.length > 1) {
    throw new Error(`"${target}" names ${conversions.length} conversions (${conversions.map((e) => e.id).join(', ')}); give more of the name`);
  }
  const known = report.entries.map((e) => e.id);
  throw new Error(
    `nothing in the cache is called "${target}": ` +
      (known.length > 0 ? `it holds ${known.join(', ')}` : `both caches are empty (${report.hubCacheDir}, ${report.conversionsDir})`),
  );
}

export interface PruneOptions {
  /** Remove entries not used for this long (ms). */
  olderThan?: number;
  /** Then remove least recently used entries until the total is at most this (bytes). */
  maxSize?: number;
  /** Only say what would be removed. */
  dryRun?: boolean;
  now?: number;
}

export interface PruneResult {
  removed: CacheEntry[];
  /** Entries prune chose but another process is using. */
  inUse: CacheEntry[];
}

/** Leftovers always go; then what is older than `olderThan`; then the least recently used beyond `maxSize`. */
export async function pruneCaches(report: CacheReport, options: PruneOptions): Promise<PruneResult> {
  const result: PruneResult = { removed: [], inUse: [] };
  const remove = async (entry: CacheEntry): Promise<boolean> => {
    if (result.inUse.includes(entry)) return false;
    const outcome = options.dryRun ? 'removed' : await removeEntry(entry, report.hubCacheDir);
    (outcome === 'removed' ? result.removed : result.inUse).push(entry);
    return outcome === 'removed';
  };
  const now = options.now ?? Date.now();
  const kept: CacheEntry[] = [];
  for (const entry of report.entries) {
    const stale = entry.leftover || (options.olderThan !== undefined && now - entry.lastUsed > options.olderThan);
    if (!stale || !(await remove(entry))) kept.push(entry);
  }
  if (options.maxSize !== undefined) await evictLeastRecentlyUsed(kept, options.maxSize, remove);
  return result;
}
