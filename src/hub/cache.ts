import fs from 'node:fs/promises';
import path from 'node:path';
import { stagingPath, writeFileAtomic } from '../util/atomic-write.js';

/** A full git commit sha; any other revision (branch, tag, short sha) goes through refs/. */
export const COMMIT_SHA = /^[0-9a-f]{40}$/;

/**
 * One repo's folder in huggingface_hub's cache (models--{org}--{name}), laid out exactly as the Python
 * library lays it out so that either side reuses what the other downloaded:
 *   blobs/{etag}                      file contents, named by git sha1 (small files) or sha256 (LFS)
 *   snapshots/{commit}/{filename}     relative symlinks into blobs/
 *   refs/{revision}                   commit sha a branch or tag pointed to when last seen
 *   .no_exist/{commit}/{filename}     empty marker: the Hub said 404 for this file at that commit
 */
export class RepoCache {
  readonly root: string;
  /** huggingface_hub's lock folder for this repo: .locks/models--{org}--{name}/{etag}.lock guards one blob. */
  readonly locksDir: string;

  constructor(cacheDir: string, repoId: string) {
    const folderName = ['models', ...repoId.split('/')].join('--');
    this.root = path.join(cacheDir, folderName);
    this.locksDir = path.join(cacheDir, '.locks', folderName);
  }

  /** The lock huggingface_hub takes (flock) while it downloads blobs/{etag}; we take the same one. */
  blobLockPath(etag: string): string {
    return path.join(this.locksDir, `${etag}.lock`);
  }

  /**
   * Held shared by every process reading or filling this repo (resolving, downloading, converting), and
   * exclusively by a removal, so a repo is never removed under a process that uses it. Our own name beside
   * the blob locks: huggingface_hub only ever looks for {etag}.lock there.
   */
  get inUseLockPath(): string {
    return path.join(this.locksDir, 'gpt-neo-in-use.lock');
  }

  blobPath(etag: string): string {
    return this.inside('blobs', etag);
  }

  snapshotDir(commit: string): string {
    return this.inside('snapshots', commit);
  }

  /** Where a repo file appears in a snapshot; refuses names that would escape it (e.g. from a hostile index.json). */
  pointerPath(commit: string, filename: string): string {
    return this.inside(path.join('snapshots', commit), ...filename.split('/'));
  }

  /** The commit a revision resolves to from the cache alone: itself if it is a commit sha, else refs/{revision}. */
  async commitFor(revision: string): Promise<string | undefined> {
    if (COMMIT_SHA.test(revision)) return revision;
    try {
      const commit = (await fs.readFile(this.inside('refs', ...revision.split('/')), 'utf8')).trim();
      return commit || undefined;
    } catch {
      return undefined;
    }
  }

  async writeRef(revision: string, commit: string): Promise<void> {
    if (revision === commit) return;
    // Rewriting an unchanged ref would fail for users of a read-only shared cache (huggingface_hub#1216).
    if ((await this.commitFor(revision)) === commit) return;
    const refPath = this.inside('refs', ...revision.split('/'));
    await fs.mkdir(path.dirname(refPath), { recursive: true });
    // Renamed into place: a concurrent reader sees the old commit or the new one, never an empty file.
    await writeFileAtomic(refPath, commit);
  }

  /** The snapshot path of a file if it is there and its blob is intact enough to exist (a dangling link is not cached). */
  async cachedFile(commit: string, filename: string): Promise<string | undefined> {
    const pointer = this.pointerPath(commit, filename);
    return (await exists(pointer)) ? pointer : undefined;
  }

  async markMissing(commit: string, filename: string): Promise<void> {
    const marker = this.inside(path.join('.no_exist', commit), ...filename.split('/'));
    await fs.mkdir(path.dirname(marker), { recursive: true });
    await fs.writeFile(marker, '');
  }

  async isKnownMissing(commit: string, filename: string): Promise<boolean> {
    return exists(this.inside(path.join('.no_exist', commit), ...filename.split('/')));
  }

  /**
   * Makes snapshots/{commit}/{filename} point at blobs/{etag} with a relative symlink, so the cache survives
   * being moved. Where symlinks are refused (Windows without developer mode) the snapshot gets a copy, as
   * with huggingface_hub; the blob stays, so other snapshots and concurrent callers can still use it.
   */
  async link(commit: string, filename: string, etag: string): Promise<string> {
    const pointer = this.pointerPath(commit, filename);
    const blob = this.blobPath(etag);
    await fs.mkdir(path.dirname(pointer), { recursive: true });
    // Built aside and renamed over: concurrent callers cannot collide, and a half-made copy is never visible.
    const staging = stagingPath(pointer);
    try {
      try {
        await fs.symlink(path.relative(path.dirname(pointer), blob), staging);
      } catch (error) {
        if (!isSymlinkRefusal(error)) throw error;
        await fs.copyFile(blob, staging);
      }
      await fs.rename(staging, pointer);
    } finally {
      await fs.rm(staging, { force: true });
    }
    return pointer;
  }

  private inside(...segments: string[]): string {
    const resolved = path.join(this.root, ...segments);
    const base = path.join(this.root, segments[0]!);
    if (segments.some((s) => s === '' || s === '.' || s === '..') || !resolved.startsWith(base + path.sep)) {
      throw new Error(`refusing cache path outside ${base}: ${segments.join('/')}`);
    }
    return resolved;
  }
}

export async function exists(p: string): Promise<boolean> {
  try {
    await fs.stat(p);
    return true;
  } catch {
    return false;
  }
}

function isSymlinkRefusal(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EPERM' || code === 'EACCES' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'ENOSYS';
}
