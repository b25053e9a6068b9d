import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLock, tryAcquireLock } from '../../src/util/file-lock.js';
import { removeTempDirs, tempDir } from '../hub/helpers.js';

afterAll(removeTempDirs);

describe('file locks', () => {
  it('exclusive excludes everyone; shared holders share', async () => {
    const lockPath = path.join(tempDir(), 'sub', 'x.lock');
    const exclusive = await acquireLock(lockPath);
    expect(await tryAcquireLock(lockPath, { shared: true })).toBeUndefined();
    await exclusive.release();

    const first = await tryAcquireLock(lockPath, { shared: true });
    const second = await tryAcquireLock(lockPath, { shared: true });
    expect(first && second).toBeTruthy();
    expect(await tryAcquireLock(lockPath)).toBeUndefined();
    await first!.release();
    expect(await tryAcquireLock(lockPath)).toBeUndefined(); // `second` still holds it
    await second!.release();
  });
});
