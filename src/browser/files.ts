/// <reference lib="dom" />
/// <reference lib="dom.asynciterable" />
import { type ModelFiles, type RandomAccessFile } from '../util/model-files.js';

/** Bytes received so far for one file, for download progress. */
export type DownloadProgress = (file: string, receivedBytes: number) => void;

/** Where a browser loads a model from: a folder URL (a Hub repo's resolve URL, or a folder a server serves), or files the user picked. */
export type ModelSource = { url: string; token?: string } | { files: File[] };

export class ModelFetchError extends Error {}

/**
 * The files of a model folder over HTTP. Tensors are read with Range requests one at a time, so a
 * checkpoint is never held whole in memory and a conversion starts before the download ends.
 */
export function httpModelFiles(folderUrl: string, options: { token?: string; onProgress?: DownloadProgress } = {}): ModelFiles {
  const base = folderUrl.endsWith('/') ? folderUrl : `${folderUrl}/`;
  const url = (name: string) => new URL(name.split('/').map(encodeURIComponent).join('/'), base).href;
  const headers = (extra: Record<string, string> = {}): Record<string, string> =>
    options.token ? { ...extra, Authorization: `Bearer ${options.token}` } : extra;

  const request = async (name: string, init: RequestInit): Promise<Response> => {
    try {
      return await fetch(url(name), init);
    } catch (error) {
      throw new ModelFetchError(`could not reach ${url(name)}: ${(error as Error).message}`);
    }
  };
  const failure = (name: string, response: Response) =>
    new ModelFetchError(
      response.status === 404
        ? `${url(name)} was not found (HTTP 404)`
        : response.status === 401 || response.status === 403
          ? `${url(name)} needs a token with access to it (HTTP ${response.status})`
          : `${url(name)}: HTTP ${response.status} ${response.statusText}`,
    );

  return {
    location: base,
    describe: url,
    async exists(name) {
      const response = await request(name, { method: 'HEAD', headers: headers() });
      if (response.ok) return true;
      if (response.status === 404) return false;
      throw failure(name, response);
    },
    async readText(name) {
      const response = await request(name, { headers: headers() });
      if (!response.ok) throw failure(name, response);
      return response.text();
    },
    async open(name) {
      // A one-byte range answers with the total size in Content-Range, even where HEAD does not give it (redirects to a CDN).
      const probe = await request(name, { headers: headers({ Range: 'bytes=0-0' }) });
      if (!probe.ok) throw failure(name, probe);
      const total = probe.status === 206 ? probe.headers.get('content-range')?.split('/')[1] : probe.headers.get('content-length');
      await probe.body?.cancel();
      const size = Number(total);
      if (!total || !Number.isSafeInteger(size)) {
        throw new ModelFetchError(`${url(name)}: the server did not say how large the file is (no Content-Range or Content-Length)`);
      }
      let received = 0;
      return {
        name: url(name),
        size,
        async read(target, position) {
          if (target.length === 0) return;
          if (position + target.length > size) {
            throw new ModelFetchError(`${url(name)}: file ends at byte ${size}, expected ${position + target.length - size} more bytes`);
          }
          const response = await request(name, { headers: headers({ Range: `bytes=${position}-${position + target.length - 1}` }) });
          if (response.status !== 206 && !(response.status === 200 && position === 0 && target.length === size)) {
            await response.body?.cancel();
            throw response.ok
              ? new ModelFetchError(`${url(name)}: the server ignored a Range request (HTTP ${response.status}); tensors are read by byte range`)
              : failure(name, response);
          }
          let done = 0;
          const reader = response.body!.getReader();
          for (;;) {
            const { done: finished, value } = await reader.read();
            if (finished) break;
            if (done + value.length > target.length) {
              await reader.cancel();
              throw new ModelFetchError(`${url(name)}: the server sent more bytes than the range asked for`);
            }
            target.set(value, done);
            done += value.length;
            received += value.length;
            options.onProgress?.(name, received);
          }
          if (done !== target.length) {
            throw new ModelFetchError(`${url(name)}: the download broke off after ${done} of ${target.length} bytes`);
          }
        },
        async close() {},
      } satisfies RandomAccessFile;
    },
  };
}

/** Files the user picked (an <input type="file" webkitdirectory> or a drop): the model folder's files by name. */
export function pickedModelFiles(files: readonly File[]): ModelFiles {
  const byName = new Map(files.map((file) => [file.name, file]));
  const folder = files[0]?.webkitRelativePath.split('/')[0] || 'the picked files';
  const get = (name: string) => {
    const file = byName.get(name);
    if (!file) throw new ModelFetchError(`${name} is not among ${folder}`);
    return file;
  };
  return {
    location: folder,
    describe: (name) => `${folder}/${name}`,
    exists: async (name) => byName.has(name),
    readText: async (name) => get(name).text(),
    async open(name) {
      const file = get(name);
      return {
        name: `${folder}/${name}`,
        size: file.size,
        async read(target, position) {
          const bytes = new Uint8Array(await file.slice(position, position + target.length).arrayBuffer());
          if (bytes.length !== target.length) {
            throw new ModelFetchError(`${folder}/${name}: file ends at byte ${file.size}, expected ${target.length - bytes.length} more bytes`);
          }
          target.set(bytes);
        },
        async close() {},
      };
    },
  };
}

export function modelFiles(source: ModelSource, onProgress?: DownloadProgress): ModelFiles {
  return 'files' in source ? pickedModelFiles(source.files) : httpModelFiles(source.url, { token: source.token, onProgress });
}
