import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import koffi from 'koffi';
import { startWaitNotice } from './progress.js';

/**
 * Cross-process file locks with flock(2), the primitive Python's `filelock` (and so huggingface_hub) uses on
 * POSIX: a Node process and a Python process locking the same path exclude each other. The kernel releases
 * a flock when its holder dies, even by kill -9, so a lock left by a dead process is never held: there is no
 * staleness to guess from pids or ages. Node has no flock of its own; koffi (an FFI with prebuilt binaries)
 * calls the C library's.
 */

const LOCK_SH = 1;
const LOCK_EX = 2;
const LOCK_NB = 4;
const LOCK_UN = 8;

type Flock = (fd: number, operation: number) => number;
let flockFunction: Flock | undefined;

function flock(): Flock {
  if (process.platform === 'win32') {
    throw new Error('cross-process cache locks use flock(2), which Windows does not have: this platform is not supported yet');
  }
  // dlopen(NULL): the C library Node itself is linked against (glibc, musl, macOS libSystem).
  flockFunction ??= koffi.load(null).func('int flock(int fd, int operation)') as Flock;
  return flockFunction;
}

export interface HeldLock {
  readonly path: string;
  release(): Promise<void>;
}

export interface LockOptions {
  /** Several shared holders may hold a lock at once; an exclusive holder excludes everyone. Default exclusive. */
  shared?: boolean;
  /** Shown on a terminal while the lock is held by another process, with the time waited so far. */
  waitingFor?: string;
}

const FIRST_POLL_MS = 20;
const LONGEST_POLL_MS = 500;

/** Waits until the lock at `lockPath` (created if missing, with its folder) is granted. */
export async function acquireLock(lockPath: string, options: LockOptions = {}): Promise<HeldLock> {
  let notice: ReturnType<typeof startWaitNotice> | undefined;
  let pause = FIRST_POLL_MS;
  try {
    for (;;) {
      const held = await tryAcquireLock(lockPath, options);
      if (held) return held;
      // flock has a blocking form, but it would block Node's only thread: poll instead, backing off.
      notice ??= startWaitNotice(options.waitingFor ?? `another process holds ${lockPath}`);
      await sleep(pause);
      pause = Math.min(pause * 2, LONGEST_POLL_MS);
    }
  } finally {
    notice?.stop();
  }
}

/** The lock if it is free now (or only shared holders have it and `shared` is asked for), else undefined. */
export async function tryAcquireLock(lockPath: string, options: LockOptions = {}): Promise<HeldLock | undefined> {
  for (;;) {
    let file: fs.FileHandle;
    try {
      await fs.mkdir(path.dirname(lockPath), { recursive: true });
      file = await openLockFile(lockPath);
    } catch (error) {
      // A reader of a cache it may not write (a read-only shared volume) cannot create a lock file, and
      // writes nothing there either: it goes on unlocked, as huggingface_hub's readers do.
      const cannotCreate = isPermissionError(error) || (error as NodeJS.ErrnoException).code === 'ENOENT';
      if (options.shared && cannotCreate) return { path: lockPath, release: async () => {} };
      throw error;
    }
    const granted = flock()(file.fd, (options.shared ? LOCK_SH : LOCK_EX) | LOCK_NB) === 0;
    if (!granted) {
      const errno = koffi.errno();
      await file.close();
      // A held lock answers EWOULDBLOCK, which is EAGAIN (11 on Linux, 35 on macOS and the BSDs).
      if (errno === os.constants.errno.EAGAIN) return undefined;
      const name = Object.entries(os.constants.errno).find(([, code]) => code === errno)?.[0] ?? `errno ${errno}`;
      throw new Error(`cannot lock ${lockPath}: flock failed with ${name} (does this file system support flock?)`);
    }
    // Someone may have deleted the file (a cache removal) and another process locked a new one at the same
    // path: a lock on the old inode would exclude nobody, so it only counts if the path still names it.
    if (await sameFile(file, lockPath)) {
      return {
        path: lockPath,
        release: async () => {
          flock()(file.fd, LOCK_UN);
          await file.close();
        },
      };
    }
    await file.close();
  }
}

/** Runs `work` holding the lock, and releases it however `work` ends. */
export async function withLock<T>(lockPath: string, options: LockOptions, work: () => Promise<T>): Promise<T> {
  const lock = await acquireLock(lockPath, options);
  try {
    return await work();
  } finally {
    await lock.release();
  }
}


async function openLockFile(lockPath: string): Promise<fs.FileHandle> {
  try {
    // Group-writable like huggingface_hub's lock files, so users sharing a cache can wait on each other's locks.
    return await fs.open(lockPath, 'a', 0o664);
  } catch (error) {
    // flock needs no write access: an existing lock file we may not write can still be locked.
    if (isPermissionError(error)) return fs.open(lockPath, 'r');
    throw error;
  }
}

function isPermissionError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EACCES' || code === 'EROFS' || code === 'EPERM';
}

async function sameFile(file: fs.FileHandle, lockPath: string): Promise<boolean> {
  const [held, named] = await Promise.all([file.stat(), fs.stat(lockPath).catch(() => undefined)]);
  return named !== undefined && held.ino === named.ino && held.dev === named.dev;
}
