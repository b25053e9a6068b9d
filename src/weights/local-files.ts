import { open, readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { readExactly } from './file-io.js';
import type { ModelFiles, RandomAccessFile } from '../util/model-files.js';

/** A model folder on the local disk. */
export function localModelFiles(folder: string): ModelFiles {
  const absolute = path.resolve(folder);
  const full = (name: string) => path.join(absolute, name);
  return {
    location: absolute,
    describe: full,
    exists: async (name) => (await stat(full(name)).catch(() => null))?.isFile() ?? false,
    readText: (name) => readFile(full(name), 'utf8'),
    open: (name) => openLocalFile(full(name)),
  };
}

export async function openLocalFile(file: string): Promise<RandomAccessFile> {
  const handle = await open(file, 'r');
  const { size } = await handle.stat().catch(async (error: unknown) => {
    await handle.close();
    throw error;
  });
  return {
    name: file,
    size,
    read: (target, position) => readExactly(handle, target, position, file),
    close: () => handle.close(),
  };
}
