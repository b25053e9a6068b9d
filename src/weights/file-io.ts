import type { FileHandle } from 'node:fs/promises';
import { CheckpointError } from './errors.js';

/** A single read(2) returns at most about 2 GB, so big tensors are read in pieces. */
const MAX_IO_CHUNK = 1 << 30;

/** Fills `target` from `position`; a short file is a CheckpointError naming `file`. */
export async function readExactly(handle: FileHandle, target: Uint8Array, position: number, file: string): Promise<void> {
  let done = 0;
  while (done < target.length) {
    const length = Math.min(target.length - done, MAX_IO_CHUNK);
    const { bytesRead } = await handle.read(target, done, length, position + done);
    if (bytesRead === 0) {
      throw new CheckpointError(`${file}: file ends at byte ${position + done}, expected ${target.length - done} more bytes`);
    }
    done += bytesRead;
  }
}

export async function writeFully(handle: FileHandle, source: Uint8Array, position: number): Promise<void> {
  let done = 0;
  while (done < source.length) {
    const length = Math.min(source.length - done, MAX_IO_CHUNK);
    const { bytesWritten } = await handle.write(source, done, length, position + done);
    done += bytesWritten;
  }
}
