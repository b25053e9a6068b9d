/**
 * A local stand-in for the Hugging Face Hub, answering /{repo}/resolve/{revision}/{file} the way the real
 * one does (see the header notes below), plus a separate "CDN" server for LFS files. Shared with the CLI's
 * and the pipeline's tests.
 *
 * Behaviour copied from the Hub:
 * - regular file: 200 with ETag = git blob sha1, X-Repo-Commit, Content-Length; GET honours Range.
 * - LFS file: 302 to an absolute CDN URL, with X-Linked-Etag = sha256 and X-Linked-Size = real size (the
 *   plain ETag and Content-Length then describe the pointer/redirect, not the file).
 * - errors: X-Error-Code RepoNotFound / RevisionNotFound / EntryNotFound with X-Error-Message; a missing or
 *   private repo asked without a token is 401, not 404; a bad token is 401 "Invalid credentials...".
 * - the CDN answers 400 when an Authorization header reaches it, like a pre-signed S3 URL does.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface FakeRepo {
  /** 40 hex digits: what `main` points to; the repo also answers to the commit itself as revision. */
  commit: string;
  files: Record<string, Buffer>;
  /** Files stored in LFS: answered with a 302 to the CDN server and X-Linked-Etag. */
  lfs?: string[];
}

export interface FakeHubOptions {
  repos: Record<string, FakeRepo>;
  /** When set, every repo is private: requests need `Authorization: Bearer <token>`. */
  token?: string;
  /** The first `times` (default 1) GETs of `file` send `bytes` bytes of the body, then the connection is closed. */
  failAfterBytes?: { file: string; bytes: number; times?: number };
  /** Files whose bytes are served with one byte flipped, while the headers still announce the true checksum. */
  corrupt?: string[];
  /** Old repo id -> current id, answered with a relative 307 as the Hub does for renamed repos. */
  renamed?: Record<string, string>;
  /**
   * Answer HEAD of an LFS file with a 200 carrying X-Linked-Etag/X-Linked-Size and redirect only the GET,
   * as some Hub mirrors do: the client must then follow the redirect of the GET itself.
   */
  redirectLfsOnlyOnGet?: boolean;
  /** Answer Range requests with the whole file and a 200, as CloudFront does for some requests. */
  ignoreRange?: boolean;
  /** Repos behind an access request: no token gets 401, a token without access 403 (X-Error-Code GatedRepo). */
  gated?: { repos: string[]; grantedToken: string };
  /** Answer every /resolve/ request with this status (e.g. 503), as during a Hub outage. */
  outage?: number;
  /**
   * Send file bodies at about this many bytes per second, so that downloads of several processes overlap
   * and one can be killed midway.
   */
  bytesPerSecond?: number;
}

export interface FakeHub {
  /** Use as `endpoint`. */
  url: string;
  close(): Promise<void>;
  /** One line per request received, in order: "HEAD /org/name/resolve/main/config.json", "GET /cdn/<sha256> range=bytes=100- auth". */
  requests: string[];
}

export function gitBlobSha1(content: Buffer): string {
  return createHash('sha1').update(`blob ${content.length}\0`).update(content).digest('hex');
}

export function sha256(content: Buffer): string {
  return createHash('sha256').update(content).digest('hex');
}

export async function startFakeHub(options: FakeHubOptions): Promise<FakeHub> {
  const requests: string[] = [];
  const cutsLeft = new Map<string, number>();
  if (options.failAfterBytes) cutsLeft.set(options.failAfterBytes.file, options.failAfterBytes.times ?? 1);

  const log = (req: http.IncomingMessage) => {
    const range = req.headers.range ? ` range=${req.headers.range}` : '';
    const auth = req.headers.authorization ? ' auth' : '';
    requests.push(`${req.method} ${req.url}${range}${auth}`);
  };

  const serveBytes = (req: http.IncomingMessage, res: http.ServerResponse, filename: string, content: Buffer, headers: http.OutgoingHttpHeaders) => {
    let body = content;
    if (options.corrupt?.includes(filename) && content.length > 0) {
      body = Buffer.from(content);
      body[body.length >> 1]! ^= 0xff;
    }
    let status = 200;
    const range = options.ignoreRange ? null : /^bytes=(\d+)-$/.exec(req.headers.range ?? '');
    if (range) {
      const start = Number(range[1]);
      if (start >= body.length) {
        res.writeHead(416, { ...headers, 'Content-Range': `bytes */${body.length}` }).end();
        return;
      }
      status = 206;
      headers = { ...headers, 'Content-Range': `bytes ${start}-${body.length - 1}/${body.length}` };
      body = body.subarray(start);
    }
    res.writeHead(status, { ...headers, 'Content-Length': body.length, 'Accept-Ranges': 'bytes' });
    if (req.method === 'HEAD') {
      res.end();
      return;
    }
    const cuts = cutsLeft.get(filename) ?? 0;
    if (cuts > 0 && options.failAfterBytes) {
      cutsLeft.set(filename, cuts - 1);
      // Closing (FIN) rather than resetting the socket delivers exactly these bytes before the cut, so the
      // resume offset the client must ask for is known.
      res.write(body.subarray(0, options.failAfterBytes.bytes), () => res.socket?.end());
      return;
    }
    if (options.bytesPerSecond) sendSlowly(res, body, options.bytesPerSecond);
    else res.end(body);
  };

  const cdn = http.createServer((req, res) => {
    log(req);
    const match = /^\/cdn\/([0-9a-f]{64})$/.exec(req.url ?? '');
    const found = match && findLfsFile(options.repos, match[1]!);
    if (!found) {
      res.writeHead(404).end('NoSuchKey');
      return;
    }
    if (req.headers.authorization) {
      res.writeHead(400, { 'Content-Type': 'text/plain' }).end('Only one auth mechanism allowed');
      return;
    }
    serveBytes(req, res, found.filename, found.content, { 'Content-Type': 'application/octet-stream' });
  });
  const cdnUrl = await listen(cdn);

  const hub = http.createServer((req, res) => {
    log(req);
    const match = /^\/(.+?)\/resolve\/([^/]+)\/(.+)$/.exec(req.url ?? '');
    if (!match) {
      res.writeHead(404).end('Not Found');
      return;
    }
    const [, rawRepo, rawRevision, rawFile] = match as unknown as [string, string, string, string];
    const repoId = decodeURIComponent(rawRepo);
    const renamedTo = options.renamed?.[repoId];
    if (renamedTo) {
      res.writeHead(307, { Location: `/${renamedTo}/resolve/${rawRevision}/${rawFile}` }).end();
      return;
    }
    if (options.outage) {
      res.writeHead(options.outage, { 'Content-Type': 'text/plain' }).end('Service Unavailable');
      return;
    }
    const auth = req.headers.authorization;
    if (options.gated?.repos.includes(repoId) && auth !== `Bearer ${options.gated.grantedToken}`) {
      const message = `Access to model ${repoId} is restricted${auth ? ' and you are not in the authorized list' : ''}.`;
      res.writeHead(auth ? 403 : 401, { 'X-Error-Code': 'GatedRepo', 'X-Error-Message': message }).end();
      return;
    }
    if (options.token && auth !== `Bearer ${options.token}`) {
      res.writeHead(401, auth
        ? { 'X-Error-Message': 'Invalid credentials in Authorization header' }
        : { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' }).end();
      return;
    }
    const repo = options.repos[repoId];
    if (!repo) {
      res.writeHead(auth ? 404 : 401, { 'X-Error-Code': 'RepoNotFound', 'X-Error-Message': 'Repository not found' }).end();
      return;
    }
    const revision = decodeURIComponent(rawRevision);
    if (revision !== 'main' && revision !== repo.commit) {
      res.writeHead(404, { 'X-Error-Code': 'RevisionNotFound', 'X-Error-Message': `Invalid rev id: ${revision}` }).end();
      return;
    }
    const filename = rawFile.split('/').map(decodeURIComponent).join('/');
    const content = repo.files[filename];
    const commitHeader = { 'X-Repo-Commit': repo.commit };
    if (!content) {
      res.writeHead(404, { ...commitHeader, 'X-Error-Code': 'EntryNotFound', 'X-Error-Message': 'Entry not found' }).end();
      return;
    }
    if (repo.lfs?.includes(filename)) {
      const hash = sha256(content);
      const pointer = Buffer.from(`version https://git-lfs.github.com/spec/v1\noid sha256:${hash}\nsize ${content.length}\n`);
      const redirectBody = `Found. Redirecting to ${cdnUrl}/cdn/${hash}`;
      const lfsHeaders = {
        ...commitHeader,
        ETag: `"${gitBlobSha1(pointer)}"`,
        'X-Linked-Etag': `"${hash}"`,
        'X-Linked-Size': String(content.length),
        'Content-Length': Buffer.byteLength(redirectBody),
      };
      if (req.method === 'HEAD' && options.redirectLfsOnlyOnGet) {
        res.writeHead(200, lfsHeaders).end();
        return;
      }
      res.writeHead(302, { ...lfsHeaders, Location: `${cdnUrl}/cdn/${hash}` });
      res.end(req.method === 'HEAD' ? undefined : redirectBody);
      return;
    }
    serveBytes(req, res, filename, content, { ...commitHeader, ETag: `"${gitBlobSha1(content)}"` });
  });
  const url = await listen(hub);

  return {
    url,
    requests,
    async close() {
      for (const server of [hub, cdn]) {
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
  };
}

function findLfsFile(repos: Record<string, FakeRepo>, hash: string): { filename: string; content: Buffer } | undefined {
  for (const repo of Object.values(repos)) {
    for (const filename of repo.lfs ?? []) {
      const content = repo.files[filename];
      if (content && sha256(content) === hash) return { filename, content };
    }
  }
  return undefined;
}

function sendSlowly(res: http.ServerResponse, body: Buffer, bytesPerSecond: number): void {
  const chunk = 16 * 1024;
  let sent = 0;
  const timer = setInterval(() => {
    if (res.destroyed) {
      clearInterval(timer);
      return;
    }
    res.write(body.subarray(sent, sent + chunk));
    sent += chunk;
    if (sent >= body.length) {
      clearInterval(timer);
      res.end();
    }
  }, (chunk / bytesPerSecond) * 1000);
}

async function listen(server: http.Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}
