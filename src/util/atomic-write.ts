import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';

/**
 * A name beside `target` that no other writer (process or call) uses: work is built there and renamed over
 * `target`, so a reader sees the old content or the new, never a part. Its suffix marks it as leftover
 * work if its writer dies before the rename.
 */
export function stagingPath(target: string): string {
  return `${target}${STAGING_MARK}${process.pid}.${randomUUID()}`;
}

export const STAGING_MARK = '.staging-';

/** Writes a whole file so that it appears at once, complete, or not at all. */
export async function writeFileAtomic(target: string, data: string | Uint8Array): Promise<void> {
  const staging = stagingPath(target);
  try {
    await fs.writeFile(staging, data);
    await fs.rename(staging, target);
  } finally {
    await fs.rm(staging, { force: true });
  }
}
