// The page's default thread count: half the cores for small models, all of them (up to 4) for large weights.
import { describe, expect, it } from 'vitest';
import { defaultThreads } from '../../src/browser/runtime.js';

describe('defaultThreads', () => {
  it('gives small models half the cores, as onnxruntime-web does', () => {
    expect([1, 2, 4, 8, 16].map((cores) => defaultThreads(cores, 0.5e9))).toEqual([1, 1, 2, 4, 4]);
  });

  it('gives weights of 1 GB or more every core, at most 4', () => {
    expect([1, 2, 4, 8].map((cores) => defaultThreads(cores, 1.6e9))).toEqual([1, 2, 4, 4]);
  });
});
