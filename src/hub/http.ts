import { HubError } from './errors.js';
import { COMMIT_SHA } from './cache.js';

/** Which file of which repo a request is about, so that every error can say so. */
export interface FileRequest {
  endpoint: string;
  repoId: string;
  revision: string;
  filename: string;
  token: string | undefined;
}

export type FileMetadata =
  | {
      found: true;
      /** Commit the revision pointed to when the Hub answered. */
      commit: string;
      /** git blob sha1 of a regular file, sha256 of an LFS file: the blob's name in the cache and its checksum. */
      etag: string;
      size: number;
      /** Where to GET the bytes: the CDN for LFS files, else the resolve URL (after any repo-rename redirect). */
      downloadUrl: string;
      /** False when the bytes live on another host (a CDN with a signed URL), which must not see the token. */
      sendToken: boolean;
    }
  | { found: false; error: HubError; commit: string | undefined };

const MAX_REDIRECTS = 10;
const USER_AGENT = 'gpt-neo (node)';

export function resolveUrl(endpoint: string, repoId: string, revision: string, filename: string): string {
  const file = filename.split('/').map(encodeURIComponent).join('/');
  return `${endpoint}/${repoId}/resolve/${encodeURIComponent(revision)}/${file}`;
}

/**
 * Asks the Hub about one file with a HEAD request, as huggingface_hub's get_hf_file_metadata does: relative
 * redirects (a renamed repo) are followed, an absolute one (LFS file on the CDN) is not, because its own
 * headers carry what we need: X-Repo-Commit, X-Linked-Etag (sha256) and X-Linked-Size.
 * A 404 for the file itself comes back as `found: false` (with the commit, so the absence can be cached);
 * every other failure throws a HubError.
 */
export async function fetchFileMetadata(request: FileRequest, timeoutSeconds: number): Promise<FileMetadata> {
  const requested = resolveUrl(request.endpoint, request.repoId, request.revision, request.filename);
  let url = requested;
  let response: Response;
  for (let hops = 0; ; hops++) {
    response = await send(request, url, {
      method: 'HEAD',
      headers: hubHeaders(request.token),
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutSeconds * 1000),
    });
    const location = response.headers.get('location');
    if (!isRedirect(response.status) || !location || isAbsoluteUrl(location) || hops >= MAX_REDIRECTS) break;
    url = new URL(location, url).href;
  }

  const reportedCommit = response.headers.get('x-repo-commit') ?? undefined;
  const commit = validCommit(reportedCommit);
  if (!response.ok && !isRedirect(response.status)) {
    const error = await errorFromResponse(response, request, request.token !== undefined);
    if (error.code === 'entry-not-found') return { found: false, error, commit };
    throw error;
  }
  const etag = normalizeEtag(response.headers.get('x-linked-etag') ?? response.headers.get('etag'));
  const sizeHeader = response.headers.get('x-linked-size') ?? response.headers.get('content-length');
  const size = sizeHeader === null ? NaN : Number(sizeHeader);
  if (!commit || !etag || !Number.isSafeInteger(size) || size < 0) {
    throw new HubError(
      `${request.endpoint} did not answer like the Hugging Face Hub for ${request.filename} of ${request.repoId} ` +
        `(HTTP ${response.status}, X-Repo-Commit ${reportedCommit ?? 'missing'}, ETag ${etag ?? 'missing'}, ` +
        `size ${sizeHeader ?? 'missing'}); ` +
        'check HF_ENDPOINT and any proxy in between',
      'http',
      response.status,
    );
  }

  const location = response.headers.get('location');
  // A redirect that was not followed points at the CDN; otherwise the bytes come from the URL that answered.
  const downloadUrl = location ? new URL(location, url).href : url;
  return { found: true, commit, etag, size, downloadUrl, sendToken: new URL(downloadUrl).host === new URL(requested).host };
}

/**
 * GETs a file's bytes from `start` on, following redirects (absolute or relative) itself so that the token
 * is dropped whenever the host changes, as huggingface_hub and browsers do. Returns the 200/206/416 response
 * for the caller to stream; other statuses become a HubError.
 */
export async function openDownload(
  request: FileRequest,
  url: string,
  options: { start: number; sendToken: boolean; signal: AbortSignal },
): Promise<Response> {
  let token = options.sendToken ? request.token : undefined;
  for (let hops = 0; ; hops++) {
    const headers = hubHeaders(token);
    if (options.start > 0) headers.Range = `bytes=${options.start}-`;
    const response = await send(request, url, { method: 'GET', headers, redirect: 'manual', signal: options.signal });
    const location = response.headers.get('location');
    if (isRedirect(response.status) && location && hops < MAX_REDIRECTS) {
      await response.body?.cancel();
      const next = new URL(location, url);
      if (next.host !== new URL(url).host) token = undefined;
      url = next.href;
      continue;
    }
    if (response.status === 200 || response.status === 206 || response.status === 416) return response;
    throw await errorFromResponse(response, request, token !== undefined);
  }
}

/** Turns a failed fetch (refused, reset, timed out, cut mid-body) into "could not reach ...". */
export function networkError(error: unknown, url: string, request: FileRequest, detail = ''): HubError {
  if (error instanceof HubError) return error;
  return new HubError(
    `could not reach ${new URL(url).origin}: ${describeNetworkFailure(error)}` +
      ` (${request.filename} of ${request.repoId}${detail ? `, ${detail}` : ''})`,
    'network',
    undefined,
    { cause: error },
  );
}

function describeNetworkFailure(error: unknown): string {
  const err = error as { name?: string; message?: string; code?: string; cause?: { code?: string; message?: string } };
  if (err.name === 'TimeoutError') return 'timed out';
  const code = err.cause?.code ?? err.code;
  const message = err.cause?.message ?? err.message ?? String(error);
  return code && !message.includes(code) ? `${code} ${message}` : message;
}

async function send(request: FileRequest, url: string, init: RequestInit): Promise<Response> {
  try {
    return await fetch(url, init);
  } catch (error) {
    throw networkError(error, url, request);
  }
}

function hubHeaders(token: string | undefined): Record<string, string> {
  // identity: sizes and byte ranges must be those of the file itself, not of a compressed stream.
  const headers: Record<string, string> = { 'Accept-Encoding': 'identity', 'User-Agent': USER_AGENT };
  if (token) headers.Authorization = `Bearer ${token}`;
  return headers;
}

/**
 * One message per failure, following huggingface_hub's hf_raise_for_status: the Hub names the case in
 * X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound, GatedRepo) and explains in X-Error-Message.
 * It answers 401 rather than 404 for a missing repo when no token is sent, so as not to reveal private ones.
 */
async function errorFromResponse(response: Response, request: FileRequest, tokenSent: boolean): Promise<HubError> {
  const { status } = response;
  const errorCode = response.headers.get('x-error-code');
  const serverMessage = response.headers.get('x-error-message') ?? (await bodyMessage(response));
  const { repoId, revision, filename, endpoint } = request;
  const about = `${filename} of ${repoId}`;
  const server = serverMessage ? ` The Hub said: ${serverMessage}` : '';

  if (errorCode === 'RevisionNotFound') {
    return new HubError(`revision "${revision}" not found in ${repoId} (HTTP ${status}, looking for ${filename})`, 'revision-not-found', status);
  }
  if (errorCode === 'EntryNotFound') {
    return new HubError(`${filename} not found in ${repoId} at revision "${revision}" (HTTP ${status})`, 'entry-not-found', status);
  }
  if (errorCode === 'GatedRepo') {
    return new HubError(
      `${repoId} is gated (HTTP ${status}, fetching ${filename}): accept its conditions at ${endpoint}/${repoId} ` +
        `and set HF_TOKEN to a token of that account.${server}`,
      'gated',
      status,
    );
  }
  if (status === 401 && tokenSent) {
    return new HubError(
      `the Hub rejected the token (HTTP 401, fetching ${about}): it is invalid, expired or has no access; ` +
        `set HF_TOKEN to a valid read token.${server}`,
      'unauthorized',
      status,
    );
  }
  if (status === 401) {
    return new HubError(
      `${repoId} was not found on ${endpoint} or needs a token (HTTP 401, fetching ${filename}): ` +
        `check the repo id; if it is private or gated, set HF_TOKEN.${server}`,
      'unauthorized',
      status,
    );
  }
  if (errorCode === 'RepoNotFound') {
    return new HubError(
      `repository ${repoId} not found on ${endpoint} (HTTP ${status}, fetching ${filename})` +
        (tokenSent ? ', or the token has no access to it' : ''),
      'repo-not-found',
      status,
    );
  }
  if (status === 403) {
    return new HubError(
      `access to ${about} is forbidden (HTTP 403): make sure the token has read access to this repo.${server}`,
      'forbidden',
      status,
    );
  }
  return new HubError(`the Hub answered HTTP ${status} ${response.statusText} for ${about}.${server}`, 'http', status);
}

async function bodyMessage(response: Response): Promise<string | undefined> {
  const text = (await response.text().catch(() => '')).trim();
  if (!text || /html/i.test(response.headers.get('content-type') ?? '')) return undefined;
  try {
    const parsed = JSON.parse(text) as { error?: unknown };
    if (typeof parsed.error === 'string') return parsed.error;
  } catch {
    // Not JSON: the text itself is the message.
  }
  return text.slice(0, 500);
}

/** huggingface_hub strips a weak-validator prefix and the quotes; the rest names the blob file. */
function normalizeEtag(etag: string | null): string | undefined {
  const normalized = etag?.replace(/^W\//, '').replace(/^"|"$/g, '');
  return normalized && /^[A-Za-z0-9._-]+$/.test(normalized) && !/^\.+$/.test(normalized) ? normalized : undefined;
}

function validCommit(commit: string | undefined): string | undefined {
  return commit && COMMIT_SHA.test(commit) ? commit : undefined;
}

function isRedirect(status: number): boolean {
  return status >= 300 && status < 400;
}

function isAbsoluteUrl(location: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\//i.test(location) || location.startsWith('//');
}
