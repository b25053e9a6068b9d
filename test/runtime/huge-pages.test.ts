// Memory advised for transparent huge pages: the kernel marks such a mapping `hg` in /proc/self/smaps.
import koffi from 'koffi';
import { describe, expect, it } from 'vitest';
import { hugePageFloat32Array } from '../../src/runtime/huge-pages.js';
import { vmFlagsAt } from '../helpers/memory.js';

const HUGE_PAGE = 2 * 2 ** 20;

describe.runIf(process.platform === 'linux')('huge-page buffers', () => {
  it('a large KV-cache array is advised for huge pages in its whole 2 MiB pages, and starts zeroed', () => {
    const array = hugePageFloat32Array((8 * HUGE_PAGE) / 4);
    const start = koffi.address(array);
    const firstWholePage = (start + BigInt(HUGE_PAGE - 1)) & ~BigInt(HUGE_PAGE - 1);
    expect(vmFlagsAt(firstWholePage)).toContain('hg');
    expect(array.length).toBe((8 * HUGE_PAGE) / 4);
    expect(array.every((x) => x === 0)).toBe(true);
  });
});
