import { describe, expect, it } from 'vitest';
import { evictLeastRecentlyUsed, parseAge, parseSize } from '../../src/util/cache-size.js';

describe('cache limits as people write them', () => {
  it('reads sizes in decimal and binary units', () => {
    expect(parseSize('20GB', 'x')).toBe(20_000_000_000);
    expect(parseSize('1.5 GiB', 'x')).toBe(1_610_612_736);
    expect(parseSize('500mb', 'x')).toBe(500_000_000);
    expect(parseSize('12345', 'x')).toBe(12_345);
    expect(() => parseSize('-3GB', '--max-size')).toThrow('--max-size: "-3GB" is not a size');
    expect(() => parseSize('3 GBs', 'GPT_NEO_CACHE_MAX_SIZE')).toThrow('GPT_NEO_CACHE_MAX_SIZE: "3 GBs" is not a size');
  });

  it('reads ages', () => {
    expect(parseAge('30d', 'x')).toBe(30 * 86_400_000);
    expect(parseAge('12h', 'x')).toBe(12 * 3_600_000);
    expect(parseAge('2w', 'x')).toBe(14 * 86_400_000);
    expect(() => parseAge('30', '--older-than')).toThrow('--older-than: "30" is not an age');
  });

  it('evicts least recently used first, passing over entries that cannot go, until the rest fits', async () => {
    const entries = [
      { name: 'new', size: 5, lastUsed: 30 },
      { name: 'oldest', size: 4, lastUsed: 10 },
      { name: 'busy', size: 3, lastUsed: 15 },
      { name: 'old', size: 2, lastUsed: 20 },
    ];
    const tried: string[] = [];
    const removed = await evictLeastRecentlyUsed(entries, 8, async (entry) => {
      tried.push(entry.name);
      return entry.name !== 'busy';
    });
    expect(tried).toEqual(['oldest', 'busy', 'old']);
    expect(removed.map((e) => e.name)).toEqual(['oldest', 'old']);
    expect(await evictLeastRecentlyUsed(entries, 14, async () => true)).toEqual([]);
  });
});
