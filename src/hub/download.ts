import { createHash, type Hash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { withLock } from '../util/file-lock.js';
import { startProgress, type Progress } from '../util/progress.js';
import { COMMIT_SHA, RepoCache, exists } from './cache.js';
import { HubError } from './errors.js';
import { fetchFileMetadata, networkError, openDownload, type FileRequest } from './http.js';
import type { HubSettings } from './settings.js';

/** hubUnreachable: the Hub failed to answer and the file (or its known absence) came from the cache. */
export type FoundFile = { path: string; commit: string; hubUnreachable?: HubError };
export type RepoFile = FoundFile | { path: null; commit: string | undefined; hubUnreachable?: HubError };

/** Why the network is not used, for messages about what the cache lacks. */
export const OFFLINE_BY_SETTING = 'offline mode is on (HF_HUB_OFFLINE)';

// A cut connection is resumed with a Range request; this many cuts in a row without a single new byte end it.
const MAX_ATTEMPTS_WITHOUT_PROGRESS = 5;
const RETRY_DELAY_MS = 250;

/** Downloads in flight in this process, so two callers wanting the same blob share one download. */
const inFlight = new Map<string, Promise<void>>();

/**
 * Puts one file of a repo in the cache and returns its snapshot path, following huggingface_hub's
 * hf_hub_download: a commit-sha revision already cached needs no network; otherwise a HEAD gives the
 * commit and etag; when the Hub cannot answer, the cached copy of that revision is used; a file the
 * Hub says does not exist is remembered in .no_exist/ and, if optional, returned as null.
 */
export async function getRepoFile(
  settings: HubSettings,
  repoId: string,
  filename: string,
  optional: false,
  offlineReason?: string,
): Promise<FoundFile>;
export async function getRepoFile(
  settings: HubSettings,
  repoId: string,
  filename: string,
  optional: boolean,
  offlineReason?: string,
): Promise<RepoFile>;
export async function getRepoFile(
  settings: HubSettings,
  repoId: string,
  filename: string,
  optional: boolean,
  offlineReason = OFFLINE_BY_SETTING,
): Promise<RepoFile> {
  const cache = new RepoCache(settings.cacheDir, repoId);
  const { revision } = settings;

  // A commit sha names content that never changes: a cached answer needs no look-up.
  if (COMMIT_SHA.test(revision)) {
    const cached = await cache.cachedFile(revision, filename);
    if (cached) return { path: cached, commit: revision };
    if (optional && (await cache.isKnownMissing(revision, filename))) return { path: null, commit: revision };
  }
  if (settings.offline) return fromCacheOnly(cache, repoId, revision, filename, optional, offlineReason);

  const request: FileRequest = { endpoint: settings.endpoint, repoId, revision, filename, token: settings.token };
  let metadata;
  try {
    metadata = await fetchFileMetadata(request, settings.metadataTimeoutSeconds);
  } catch (error) {
    // Like huggingface_hub: when the Hub cannot be asked (network down, outage, refused credentials) a copy
    // cached earlier for this revision still serves. A missing revision is a definite answer, not an outage.
    if (!(error instanceof HubError) || error.code === 'revision-not-found') throw error;
    const commit = await cache.commitFor(revision);
    const cached = commit && (await cache.cachedFile(commit, filename));
    if (commit && cached) return { path: cached, commit, hubUnreachable: error };
    if (commit && optional && (await cache.isKnownMissing(commit, filename))) {
      return { path: null, commit, hubUnreachable: error };
    }
    throw error;
  }

  if (!metadata.found) {
    if (metadata.commit) {
      await cache.markMissing(metadata.commit, filename);
      await cache.writeRef(revision, metadata.commit);
    }
    if (optional) return { path: null, commit: metadata.commit };
    throw metadata.error;
  }

  const { commit, etag } = metadata;
  await cache.writeRef(revision, commit);
  const cached = await cache.cachedFile(commit, filename);
  if (cached) return { path: cached, commit };

  // Shared: other readers and fillers go on; a `gpt-neo cache rm` waits for us or refuses.
  return withLock(cache.inUseLockPath, { shared: true, waitingFor: `a removal of ${repoId} from the cache` }, async () => {
    const blob = cache.blobPath(etag);
    if (!(await exists(blob))) {
      let download = inFlight.get(blob);
      if (!download) {
        download = downloadBlobOnce(settings, request, metadata, cache).finally(() => inFlight.delete(blob));
        inFlight.set(blob, download);
      }
      await download;
    }
    return { path: await cache.link(commit, filename, etag), commit };
  });
}

/**
 * One process at a time downloads a blob, under huggingface_hub's own lock file for it, so Python and Node
 * processes sharing the cache wait for each other instead of writing the same file. A waiter finds the blob
 * there when it gets the lock; if the holder died midway, the waiter resumes its partial download.
 */
async function downloadBlobOnce(settings: HubSettings, request: FileRequest, source: BlobSource, cache: RepoCache): Promise<void> {
  const blob = cache.blobPath(source.etag);
  const waitingFor = `another process downloading ${request.filename} of ${request.repoId}`;
  await withLock(cache.blobLockPath(source.etag), { waitingFor }, async () => {
    if (!(await exists(blob))) await downloadBlob(settings, request, source, blob);
  });
}

async function fromCacheOnly(
  cache: RepoCache,
  repoId: string,
  revision: string,
  filename: string,
  optional: boolean,
  reason: string,
): Promise<RepoFile> {
  const commit = await cache.commitFor(revision);
  if (!commit) {
    throw new HubError(
      `${reason}, and the cache (${cache.root}) has no snapshot of ${repoId} at revision "${revision}" (wanted ${filename})`,
      'offline',
    );
  }
  const cached = await cache.cachedFile(commit, filename);
  if (cached) return { path: cached, commit };
  // Offline, an optional file not in the snapshot is taken as absent, as transformers does.
  if (optional) return { path: null, commit };
  throw new HubError(
    `${reason}, and ${filename} of ${repoId} (revision "${revision}") is not in the cache (${cache.snapshotDir(commit)})`,
    'offline',
  );
}

interface BlobSource {
  etag: string;
  size: number;
  downloadUrl: string;
  sendToken: boolean;
}

/**
 * Downloads into blobs/{etag}.incomplete, appending after whatever an earlier, interrupted run left there
 * (Range: bytes=N-), hashes while writing, and renames to blobs/{etag} only once size and checksum match:
 * the final blob is complete and correct or absent. The caller holds the blob's lock, so the partial file
 * has one writer: it keeps huggingface_hub's name, and either side resumes what the other left.
 */
async function downloadBlob(settings: HubSettings, request: FileRequest, source: BlobSource, blob: string): Promise<void> {
  const partial = `${blob}.incomplete`;
  await fs.mkdir(path.dirname(blob), { recursive: true });
  const checksum = Checksum.forEtag(source.etag, source.size);

  let have = await sizeOf(partial);
  if (have > source.size) {
    await fs.truncate(partial, 0);
    have = 0;
  }
  if (have > 0) await checksum.addFile(partial);

  const progress: Progress | undefined = settings.progress
    ? startProgress(displayName(request.filename), source.size, 'bytes')
    : undefined;
  progress?.update(have);
  try {
    let attemptsWithoutProgress = 0;
    while (have < source.size) {
      const before = have;
      try {
        have = await appendFromNetwork(settings, request, source, partial, have, checksum, progress);
      } catch (error) {
        if (!(error instanceof ConnectionCut)) throw error;
        have = error.have;
        attemptsWithoutProgress = have > before ? 0 : attemptsWithoutProgress + 1;
        if (attemptsWithoutProgress >= MAX_ATTEMPTS_WITHOUT_PROGRESS) throw error.hubError;
        await sleep(RETRY_DELAY_MS * Math.max(1, attemptsWithoutProgress));
      }
    }
  } finally {
    progress?.stop();
  }

  const actual = checksum.digest();
  const problem =
    have !== source.size
      ? `it is ${have} bytes long but the Hub announced ${source.size}`
      : actual !== undefined && actual !== source.etag
        ? `its ${checksum.kind} is ${actual} but the Hub announced ${source.etag}`
        : undefined;
  if (problem) {
    await fs.rm(partial, { force: true });
    throw new HubError(
      `${request.filename} of ${request.repoId} is corrupt: ${problem}; the download was deleted, run again to retry`,
      'integrity',
    );
  }
  await fs.rename(partial, blob);
}

/** The connection broke after the response began; the bytes received so far are on disk and hashed. */
class ConnectionCut extends Error {
  constructor(
    readonly have: number,
    readonly hubError: HubError,
  ) {
    super(hubError.message);
  }
}

async function appendFromNetwork(
  settings: HubSettings,
  request: FileRequest,
  source: BlobSource,
  partial: string,
  have: number,
  checksum: Checksum,
  progress: Progress | undefined,
): Promise<number> {
  const stall = new StallGuard(settings.downloadTimeoutSeconds);
  try {
    // Failing to get a response at all (refused, unknown host, HTTP error) is final, as in huggingface_hub.
    const response = await openDownload(request, source.downloadUrl, { start: have, sendToken: source.sendToken, signal: stall.signal });
    if (have > 0 && (response.status !== 206 || rangeStart(response) !== have)) {
      // The server ignored or could not serve our range: start over rather than splice mismatched bytes.
      await restart(partial, checksum);
      progress?.update(0);
      if (response.status !== 200) {
        await response.body?.cancel();
        const refused = `the server refused to resume ${request.filename} of ${request.repoId} (HTTP ${response.status})`;
        throw new ConnectionCut(0, new HubError(refused, 'http', response.status));
      }
      have = 0;
    }
    if (!response.body) throw new ConnectionCut(have, networkError(new Error('empty response'), source.downloadUrl, request));

    const file = await fs.open(partial, 'a');
    try {
      for await (const chunk of response.body) {
        stall.touch();
        const bytes = chunk as Uint8Array;
        await file.write(bytes);
        checksum.update(bytes);
        have += bytes.length;
        progress?.update(have);
      }
    } catch (error) {
      throw new ConnectionCut(
        have,
        networkError(error, source.downloadUrl, request, `connection lost after ${have} of ${source.size} bytes; run again to resume`),
      );
    } finally {
      await file.close();
    }
    if (have < source.size) {
      const early = new Error(`the response ended after ${have} of ${source.size} bytes`);
      throw new ConnectionCut(have, networkError(early, source.downloadUrl, request, 'run again to resume'));
    }
    return have;
  } finally {
    stall.clear();
  }
}

async function restart(partial: string, checksum: Checksum): Promise<void> {
  await fs.truncate(partial, 0).catch(() => {});
  checksum.reset();
}

function rangeStart(response: Response): number | undefined {
  const match = /^bytes (\d+)-/.exec(response.headers.get('content-range') ?? '');
  return match ? Number(match[1]) : undefined;
}

/** Aborts a download that receives nothing for a while; any received chunk pushes the deadline back. */
class StallGuard {
  private readonly controller = new AbortController();
  private timer: NodeJS.Timeout;

  constructor(private readonly seconds: number) {
    this.timer = this.arm();
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  touch(): void {
    clearTimeout(this.timer);
    this.timer = this.arm();
  }

  clear(): void {
    clearTimeout(this.timer);
  }

  private arm(): NodeJS.Timeout {
    const reason = new DOMException(`no data for ${this.seconds}s`, 'TimeoutError');
    return setTimeout(() => this.controller.abort(reason), this.seconds * 1000);
  }
}

/**
 * What the etag promises about the content: an LFS etag is the sha256 of the file, a regular file's etag
 * is its git blob id, sha1("blob <size>\0" + content). Other etags (a non-Hub mirror) are only size-checked.
 */
class Checksum {
  private hash: Hash | undefined;

  private constructor(
    readonly kind: 'sha256' | 'git blob sha1' | 'none',
    private readonly size: number,
  ) {
    this.reset();
  }

  static forEtag(etag: string, size: number): Checksum {
    if (/^[0-9a-f]{64}$/.test(etag)) return new Checksum('sha256', size);
    if (/^[0-9a-f]{40}$/.test(etag)) return new Checksum('git blob sha1', size);
    return new Checksum('none', size);
  }

  reset(): void {
    if (this.kind === 'sha256') this.hash = createHash('sha256');
    else if (this.kind === 'git blob sha1') this.hash = createHash('sha1').update(`blob ${this.size}\0`);
  }

  update(bytes: Uint8Array): void {
    this.hash?.update(bytes);
  }

  async addFile(file: string): Promise<void> {
    if (!this.hash) return;
    for await (const chunk of createReadStream(file)) this.hash.update(chunk as Buffer);
  }

  digest(): string | undefined {
    return this.hash?.digest('hex');
  }
}

async function sizeOf(file: string): Promise<number> {
  try {
    return (await fs.stat(file)).size;
  } catch {
    return 0;
  }
}

// Long names would push the bar off a terminal line; the end of a name is what tells shards apart.
function displayName(filename: string): string {
  return filename.length > 40 ? `…${filename.slice(-39)}` : filename;
}
