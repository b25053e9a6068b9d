import fs from 'node:fs/promises';
import path from 'node:path';

/** Sizes and ages as people write them for cache limits ("20GB", "500 MiB", "30d"), and LRU selection. */

const SIZE_UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 2 ** 10,
  mib: 2 ** 20,
  gib: 2 ** 30,
  tib: 2 ** 40,
};

/** Bytes in "20GB", "1.5 GiB", "500MB", "12345" (decimal units are powers of 1000, like `du --si` and the Hub). */
export function parseSize(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i.exec(text);
  const factor = match && SIZE_UNITS[(match[2] || 'b').toLowerCase()];
  if (!match || !factor) {
    throw new Error(`${what}: "${text}" is not a size; write e.g. 20GB, 500MB, 1.5GiB or a number of bytes`);
  }
  return Math.floor(Number(match[1]) * factor);
}

const AGE_UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Milliseconds in "30d", "12h", "90m", "2w", "45s". */
export function parseAge(text: string, what: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*$/i.exec(text);
  if (!match) throw new Error(`${what}: "${text}" is not an age; write e.g. 30d, 12h, 90m, 2w or 45s`);
  return Number(match[1]) * AGE_UNITS[match[2]!.toLowerCase()]! * 1000;
}

export interface SizedEntry {
  size: number;
  /** Milliseconds since the epoch. */
  lastUsed: number;
}

/**
 * Removes entries, least recently used first, until the total is at most `maxBytes`. `remove` returns false
 * for an entry it must leave (in use by another process); the next one is tried instead. Returns the removed.
 */
export async function evictLeastRecentlyUsed<T extends SizedEntry>(
  entries: readonly T[],
  maxBytes: number,
  remove: (entry: T) => Promise<boolean>,
): Promise<T[]> {
  let total = entries.reduce((sum, entry) => sum + entry.size, 0);
  const removed: T[] = [];
  for (const entry of [...entries].sort((a, b) => a.lastUsed - b.lastUsed)) {
    if (total <= maxBytes) break;
    if (!(await remove(entry))) continue;
    removed.push(entry);
    total -= entry.size;
  }
  return removed;
}

/** Bytes of the regular files under `root` (symlinks not followed, so a link counts as nothing), and the newest mtime. */
export async function treeSize(root: string): Promise<{ size: number; newest: number }> {
  let size = 0;
  let newest = 0;
  const walk = async (dir: string): Promise<void> => {
    let entries;
    try {
      entries = await fs.readdir(dir, { withFileTypes: true });
    } catch (error) {
      // A folder removed meanwhile (by a concurrent removal) has nothing left to count.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) await walk(full);
      else if (entry.isFile()) {
        const stat = await fs.stat(full).catch(() => undefined);
        size += stat?.size ?? 0;
        newest = Math.max(newest, stat?.mtimeMs ?? 0);
      }
    }
  };
  await walk(root);
  return { size, newest };
}
