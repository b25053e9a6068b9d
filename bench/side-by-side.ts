// `npm run bench -- --llamacpp <build folder>`: batch-1 decode of this project and of llama.cpp on the same
// machine, in interleaved rounds (bandwidth probe, ours, theirs, per format), because this host's speed moves by
// up to 2x within minutes: only pairs measured back to back compare, and only medians over rounds summarize.
import type { WeightFormat } from '../src/index.js';
import { openBandwidthProbe } from './bandwidth.js';
import type { LlamaCppPeer } from './llamacpp-peer.js';
import { PEER_FORMATS } from './llamacpp-peer.js';

/** Short and long context of the comparison: the 16 and ~1,900 tokens docs/speed.md reports decode at (room for the decoded tokens in 2,048). */
export const PEER_CONTEXTS = [16, 1900] as const;

export interface SideBySideOptions {
  formats: readonly WeightFormat[];
  rounds: number;
  threads: number;
  decodeTokens: number;
  peer: LlamaCppPeer;
  /** Our decode tokens/s at each of PEER_CONTEXTS, measured in a fresh process. */
  ours(format: WeightFormat): Promise<Record<number, number>>;
  log(message: string): void;
}

export interface Spread {
  median: number;
  min: number;
  max: number;
}

export function spread(values: readonly number[]): Spread {
  if (values.length === 0) throw new Error('spread of no values');
  const sorted = [...values].sort((a, b) => a - b);
  const middle = sorted.length >> 1;
  const median = sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
  return { median, min: sorted[0]!, max: sorted.at(-1)! };
}

export interface SideBySideRow {
  format: WeightFormat;
  context: number;
  probe: Spread;
  ours: Spread;
  theirs: Spread;
  /** Of the per-round ratios ours / theirs: each pair ran back to back. */
  ratio: Spread;
}

/** Runs the rounds and returns one row per (format, context). */
export async function runSideBySide(options: SideBySideOptions): Promise<SideBySideRow[]> {
  if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new Error(`--rounds must be a positive integer, got ${options.rounds}`);
  const samples = new Map<string, { probe: number[]; ours: number[]; theirs: number[] }>();
  const sampleOf = (format: WeightFormat, context: number) => {
    const key = `${format}@${context}`;
    if (!samples.has(key)) samples.set(key, { probe: [], ours: [], theirs: [] });
    return samples.get(key)!;
  };
  const probe = await openBandwidthProbe(options.threads);
  try {
    for (let round = 1; round <= options.rounds; round++) {
      for (const format of options.formats) {
        const bandwidth = await probe.measure();
        const ours = await options.ours(format);
        const theirs = (await options.peer.decode(format, PEER_CONTEXTS, options.decodeTokens, options.threads)).tokensPerSecond;
        for (const context of PEER_CONTEXTS) {
          const sample = sampleOf(format, context);
          sample.probe.push(bandwidth);
          sample.ours.push(ours[context]!);
          sample.theirs.push(theirs[context]!);
        }
        options.log(
          `round ${round} ${format}: probe ${(bandwidth / 1e9).toFixed(1)} GB/s; ` +
            PEER_CONTEXTS.map((c) => `@${c} ours ${ours[c]!.toFixed(2)}, llama.cpp ${theirs[c]!.toFixed(2)} tok/s`).join('; '),
        );
      }
    }
  } finally {
    await probe.close();
  }
  return options.formats.flatMap((format) =>
    PEER_CONTEXTS.map((context) => {
      const sample = sampleOf(format, context);
      return {
        format,
        context,
        probe: spread(sample.probe),
        ours: spread(sample.ours),
        theirs: spread(sample.theirs),
        ratio: spread(sample.ours.map((ours, i) => ours / sample.theirs[i]!)),
      };
    }),
  );
}

/** The rows as a Markdown table: medians with the range over rounds. */
export function sideBySideTable(rows: readonly SideBySideRow[], rounds: number): string {
  const show = (s: Spread, digits: number, scale = 1) =>
    `${(s.median / scale).toFixed(digits)} (${(s.min / scale).toFixed(digits)}–${(s.max / scale).toFixed(digits)})`;
  const header = ['format', 'context', 'probe GB/s', 'ours tok/s', 'llama.cpp tok/s', 'ours / llama.cpp'];
  const lines = [
    `Batch-1 decode, median (min–max) of ${rounds} interleaved rounds; llama.cpp weights read into its memory (--no-mmap)\n`,
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((r) =>
      `| ${[`${r.format} / ${PEER_FORMATS[r.format].toUpperCase()}`, r.context, show(r.probe, 1, 1e9), show(r.ours, 2), show(r.theirs, 2), show(r.ratio, 2)].join(' | ')} |`,
    ),
  ];
  return lines.join('\n');
}
