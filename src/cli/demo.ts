import { existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, InvalidArgumentError } from 'commander';
import sirv from 'sirv';
import { assertRepoId } from '../hub/resolve.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../convert/index.js';

/**
 * The browser build in dist/web (`npm run build` writes it): library, conversion worker, demo page, ONNX Runtime's
 * WebAssembly. Found from the package root above this file rather than a fixed `../..`, because this module also
 * runs from src/cli (tests) and from the benchmarks' build (dist-bench/src/cli), not only from dist/cli.
 */
export const WEB_ROOT = path.join(packageRoot(path.dirname(fileURLToPath(import.meta.url))), 'dist', 'web');

function packageRoot(from: string): string {
  for (let folder = from; ; folder = path.dirname(folder)) {
    if (existsSync(path.join(folder, 'package.json'))) return folder;
    if (path.dirname(folder) === folder) throw new Error(`no package.json above ${from}`);
  }
}

export interface DemoServerOptions {
  /** Hub id or local folder; a folder is served at /model/. */
  model: string;
  dtype: WeightFormat;
  port?: number;
  host?: string;
  /** More local folders to serve, by URL prefix ('/fixtures/' -> a folder): tests load several models from one page. */
  folders?: Record<string, string>;
}

/**
 * Cross-origin isolation (COOP + COEP) is what lets a page use SharedArrayBuffer, and so WebAssembly threads.
 * Every response is same-origin-embeddable under it.
 */
function isolate(response: ServerResponse): void {
  response.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  response.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
  response.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
}

/** Serves the demo page, its settings and any local model folder (with Range requests, which tensor reads use). */
export async function startDemoServer(options: DemoServerOptions): Promise<{ url: string; close: () => Promise<void> }> {
  if (!existsSync(path.join(WEB_ROOT, 'demo.js'))) {
    throw new Error(`the browser build is missing (${WEB_ROOT}): run \`npm run build\` first`);
  }
  const folders: Record<string, string> = { ...options.folders };
  let model = options.model;
  if (isDirectory(options.model)) {
    folders['/model/'] = options.model;
    model = '/model/';
  } else {
    assertRepoId(options.model);
  }
  const config = JSON.stringify({ model, dtype: options.dtype, endpoint: process.env.HF_ENDPOINT || undefined });
  const serveOptions = { dev: true, etag: true, dotfiles: false };
  const mounts = Object.entries(folders).map(([prefix, folder]) => ({ prefix, serve: sirv(folder, serveOptions) }));
  const web = sirv(WEB_ROOT, serveOptions);
  const notFound = (response: ServerResponse) => {
    response.statusCode = 404;
    response.end('not found');
  };

  const server = createServer((request: IncomingMessage, response: ServerResponse) => {
    isolate(response);
    const url = request.url ?? '/';
    if (url.split('?')[0] === '/demo-config.json') {
      response.setHeader('Content-Type', 'application/json');
      response.end(config);
      return;
    }
    const mount = mounts.find(({ prefix }) => url.startsWith(prefix));
    if (mount) {
      request.url = `/${url.slice(mount.prefix.length)}`;
      mount.serve(request, response, () => notFound(response));
      return;
    }
    web(request, response, () => notFound(response));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', resolve);
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    url: `http://${address.includes(':') ? `[${address}]` : address}:${port}/`,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

function isDirectory(candidate: string): boolean {
  try {
    return statSync(candidate).isDirectory();
  } catch {
    return false;
  }
}

function parsePort(value: string): number {
  const port = Number(value);
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new InvalidArgumentError('must be a port number (0-65535)');
  return port;
}

function parseDtype(value: string): WeightFormat {
  if (!WEIGHT_FORMATS.includes(value as WeightFormat)) throw new InvalidArgumentError(`must be one of ${WEIGHT_FORMATS.join(', ')}`);
  return value as WeightFormat;
}

export function demoCommand(): Command {
  return new Command('demo')
    .description('Serve a page that runs a model in the browser (onnxruntime-web): type a prompt, watch the text stream')
    .option('--model <id or folder>', 'Hugging Face model id or local model folder', 'EleutherAI/gpt-neo-125M')
    .option('--dtype <format>', `weight format in the browser (${WEIGHT_FORMATS.join(', ')}); the 1.3B needs q8 or q4`, parseDtype, 'q8')
    .option('--port <n>', 'port to listen on', parsePort, 8080)
    .option('--host <address>', 'address to listen on', '127.0.0.1')
    .action(async (flags: { model: string; dtype: WeightFormat; port: number; host: string }) => {
      const { url } = await startDemoServer(flags);
      process.stdout.write(`gpt-neo demo: open ${url} (model ${flags.model}, ${flags.dtype}; ?model=<hub id or URL> picks another). Ctrl-C stops.\n`);
    });
}
