// The side-by-side table of `npm run bench -- --peers <folder>`: medians and ranges over rounds, ratios taken per
// round, the cells a peer cannot fill, and the notes under the table. Made-up samples stand in for the runs.
import { describe, expect, it } from 'vitest';
import type { WeightFormat } from '../../src/index.js';
import { batchedScalingLine, type PeerColumn, type RoundSample, sideBySideTable, spread, summarize } from '../../bench/side-by-side.js';

const fast: PeerColumn & { setup: string } = {
  name: 'llama.cpp',
  setup: 'GGUFs in /peers/gguf',
  contexts: [16, 1900],
  missing: (format) => (format === 'q4' ? '/peers/gguf/gpt2-1.3b-q4_0.gguf is missing' : undefined),
};
const slow: PeerColumn & { setup: string } = { name: 'transformers.js', setup: 'generate()', contexts: [16], missing: () => undefined };

const speeds = (short: number, long: number, prefill512: number) => ({ decode: { 16: short, 1900: long }, prefill512 });

/** Three rounds of q8; llama.cpp failed in the third; transformers.js decoded at 16 only. */
const samples: RoundSample[] = [
  { round: 1, format: 'q8', probe: 40e9, ours: speeds(10, 5, 100), peers: { 'llama.cpp': speeds(10, 10, 50), 'transformers.js': { decode: { 16: 5 }, prefill512: 200 } } },
  { round: 2, format: 'q8', probe: 50e9, ours: speeds(12, 6, 120), peers: { 'llama.cpp': speeds(8, 4, 60), 'transformers.js': { decode: { 16: 6 }, prefill512: 100 } } },
  { round: 3, format: 'q8', probe: 60e9, ours: speeds(30, 3, 90), peers: { 'transformers.js': { decode: { 16: 10 }, prefill512: 90 } } },
];

describe('spread over rounds', () => {
  it('gives the median and the range', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4 });
    expect(() => spread([])).toThrow();
  });
});

describe('summarize', () => {
  const rows = summarize(samples, ['q8', 'q4'], [fast, slow]);
  const row = (format: WeightFormat, measure: number | 'prefill512') => rows.find((r) => r.format === format && r.measure === measure)!;

  it('has a row per context and one for prefill, for each format that ran', () => {
    expect(rows.map((r) => `${r.format} ${r.measure}`)).toEqual(['q8 16', 'q8 1900', 'q8 prefill512']);
    expect(row('q8', 16).probe).toEqual({ median: 50e9, min: 40e9, max: 60e9 });
    expect(row('q8', 16).ours).toEqual({ median: 12, min: 10, max: 30 });
  });

  it('takes the median of per-round ratios over the rounds where the peer ran', () => {
    // Rounds 1 and 2: 10/10 and 12/8. The ratio of the medians (12/9) would pair round 3's ours with nothing.
    expect(row('q8', 16).peers['llama.cpp']).toEqual({
      kind: 'measured',
      speed: { median: 9, min: 8, max: 10 },
      ratio: { median: 1.25, min: 1, max: 1.5 },
      rounds: 2,
    });
    expect(row('q8', 16).peers['transformers.js']).toMatchObject({ ratio: { median: 2, min: 2, max: 3 }, rounds: 3 });
    expect(row('q8', 'prefill512').peers['transformers.js']).toMatchObject({ ratio: { median: 1, min: 0.5, max: 1.2 } });
  });

  it('marks a context the peer was not asked for, a format it lacks and a measure it never delivered', () => {
    expect(row('q8', 1900).peers['transformers.js']).toEqual({ kind: 'skipped', reason: 'not run' });
    const q4 = summarize([{ ...samples[0]!, format: 'q4', peers: {} }], ['q4'], [fast, slow]);
    expect(q4[0]!.peers['llama.cpp']).toEqual({ kind: 'skipped', reason: 'no file' });
    expect(q4[0]!.peers['transformers.js']).toEqual({ kind: 'skipped', reason: 'failed' });
  });
});

describe('sideBySideTable', () => {
  const table = sideBySideTable(summarize(samples, ['q8', 'q4'], [fast, slow]), {
    rounds: 3,
    threads: 2,
    decodeTokens: 32,
    peers: [fast, slow],
    engines: { 'llama.cpp': 'node-llama-cpp 3.21.1 (llama.cpp v0.4.0)', 'transformers.js': 'transformers.js 4.3.1' },
    formats: ['q8', 'q4'],
  });
  const lines = table.split('\n');

  it('has a column pair per peer and medians with their ranges', () => {
    expect(lines).toContain('| format | measure | probe GB/s | ours tok/s | llama.cpp tok/s | ours / llama.cpp | transformers.js tok/s | ours / transformers.js |');
    expect(lines).toContain('| q8 | decode @16 | 50.0 (40.0–60.0) | 12.00 (10.00–30.00) | 9.00 (8.00–10.00) | 1.25 (1.00–1.50), 2 of 3 rounds | 6.00 (5.00–10.00) | 2.00 (2.00–3.00) |');
    expect(lines).toContain('| q8 | decode @1900 | 50.0 (40.0–60.0) | 5.00 (3.00–6.00) | 7.00 (4.00–10.00) | 1.00 (0.50–1.50), 2 of 3 rounds | – (not run) | – |');
    expect(lines.some((line) => line.startsWith('| q8 | prefill 512 |'))).toBe(true);
  });

  it('says how it was measured and what each peer ran and lacked', () => {
    expect(lines[0]).toMatch(/^Side by side, 2 threads: .*32 steps timed after one untimed step.*median \(min–max\) of 3 interleaved rounds\./);
    expect(lines).toContain('- llama.cpp: node-llama-cpp 3.21.1 (llama.cpp v0.4.0); GGUFs in /peers/gguf.');
    expect(lines).toContain('  - q4: /peers/gguf/gpt2-1.3b-q4_0.gguf is missing');
    expect(lines).toContain('- transformers.js: transformers.js 4.3.1; generate(). Not run after 1900 tokens (--transformersjs-contexts asks for them).');
  });

  it('shows a single round without a range', () => {
    const single = sideBySideTable(summarize(samples.slice(0, 1), ['q8'], [fast]), {
      rounds: 1, threads: 2, decodeTokens: 32, peers: [fast], engines: {}, formats: ['q8'],
    });
    expect(single).toContain('| q8 | decode @16 | 40.0 | 10.00 | 10.00 | 1.00 |');
    expect(single).toContain('of 1 interleaved round.');
  });
});

describe('batchedScalingLine', () => {
  it('gives both speed-ups from one stream to several, with the range over rounds', () => {
    expect(batchedScalingLine(8, [3, 2.5, 3.5], [4])).toBe('8 streams / 1 stream: ours 3.00 (2.50–3.50, 3 rounds), llama.cpp 4.00');
    expect(batchedScalingLine(8, [3], [])).toBe('8 streams / 1 stream: ours 3.00, llama.cpp not measured');
  });
});
