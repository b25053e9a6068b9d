// `npm run bench -- --peers <folder>`: batch-1 decode and prefill of this project and of the engines a user would
// pick instead (bench/peers/), on the same machine, in interleaved rounds (bandwidth probe, ours, each peer, per
// format), because a shared host's speed moves by up to 2x within minutes: only runs measured back to back compare,
// and only medians over rounds summarize.
import type { WeightFormat } from '../src/index.js';
import { openBandwidthProbe } from './bandwidth.js';
import { CONTEXTS_OPTIONS, PEER_CONTEXTS, type Peer, type Speeds } from './peers/index.js';

/** What a row measures: decode after a prompt of that many tokens, or the prefill of a 512-token prompt. */
export type Measure = number | 'prefill512';

export const MEASURES: readonly Measure[] = [...PEER_CONTEXTS, 'prefill512'];

/** One format's runs of one round, back to back. */
export interface RoundSample {
  round: number;
  format: WeightFormat;
  /** The bandwidth probe's read rate just before, bytes/s. */
  probe: number;
  ours: Speeds;
  /** By peer name; no entry when the peer lacks the format or failed in this round. */
  peers: Partial<Record<string, Speeds>>;
}

/** What the summary and the table need of a peer. */
export type PeerColumn = Pick<Peer, 'name' | 'contexts' | 'missing'>;

export interface SideBySideOptions {
  formats: readonly WeightFormat[];
  rounds: number;
  threads: number;
  decodeTokens: number;
  peers: readonly Peer[];
  /** Our speeds at each of PEER_CONTEXTS and prefill, measured in a fresh process. */
  ours(format: WeightFormat): Promise<Speeds>;
  log(message: string): void;
}

export interface SideBySideRun {
  samples: RoundSample[];
  /** Each peer's engine and version, as its driver reported them. */
  engines: Partial<Record<string, string>>;
}

/**
 * Runs the rounds. A peer that fails in a round is logged and left out of that round (its other rounds still
 * count); ours failing ends the run, since the comparison is about ours.
 */
export async function runSideBySide(options: SideBySideOptions): Promise<SideBySideRun> {
  if (!Number.isInteger(options.rounds) || options.rounds < 1) throw new Error(`--rounds must be a positive integer, got ${options.rounds}`);
  const run: SideBySideRun = { samples: [], engines: {} };
  const probe = await openBandwidthProbe(options.threads);
  try {
    for (let round = 1; round <= options.rounds; round++) {
      for (const format of options.formats) {
        const sample: RoundSample = { round, format, probe: await probe.measure(), ours: await options.ours(format), peers: {} };
        for (const peer of options.peers) {
          if (peer.missing(format) !== undefined) continue;
          try {
            const speeds = await peer.decode(format, peer.contexts, options.decodeTokens, options.threads);
            sample.peers[peer.name] = speeds;
            run.engines[peer.name] = speeds.engine;
          } catch (error) {
            options.log(`round ${round} ${format}: ${peer.name} failed, left out of this round: ${error instanceof Error ? error.message : String(error)}`);
          }
        }
        run.samples.push(sample);
        options.log(`round ${round} ${format}: ${roundLine(sample)}`);
      }
    }
  } finally {
    await probe.close();
  }
  return run;
}

function roundLine(sample: RoundSample): string {
  const speeds = (who: string, s: Speeds) =>
    `${who} ${Object.entries(s.decode).map(([context, tokensPerSecond]) => `@${context} ${tokensPerSecond.toFixed(2)}`).join(', ')}, prefill ${s.prefill512.toFixed(1)}`;
  return [
    `probe ${(sample.probe / 1e9).toFixed(1)} GB/s`,
    speeds('ours', sample.ours),
    ...Object.entries(sample.peers).flatMap(([name, s]) => (s ? [speeds(name, s)] : [])),
  ].join('; ') + ' tok/s';
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

/**
 * A peer's cell of a row: its speed and the ratio ours / its over the rounds it ran, or why there is none (no file
 * for the format, a context it was not asked to decode at, or failed in every round).
 */
export type PeerCell =
  | { kind: 'measured'; speed: Spread; ratio: Spread; rounds: number }
  | { kind: 'skipped'; reason: 'no file' | 'not run' | 'failed' };

export interface SideBySideRow {
  format: WeightFormat;
  measure: Measure;
  probe: Spread;
  ours: Spread;
  peers: Partial<Record<string, PeerCell>>;
}

/** One row per format and measure; each ratio is the median of per-round ratios, runs paired back to back. */
export function summarize(samples: readonly RoundSample[], formats: readonly WeightFormat[], peers: readonly PeerColumn[]): SideBySideRow[] {
  return formats.flatMap((format) => {
    const ofFormat = samples.filter((sample) => sample.format === format);
    if (ofFormat.length === 0) return [];
    return MEASURES.map((measure) => ({
      format,
      measure,
      probe: spread(ofFormat.map((sample) => sample.probe)),
      ours: spread(ofFormat.map((sample) => speedOf(sample.ours, measure) ?? Number.NaN)),
      peers: Object.fromEntries(peers.map((peer) => [peer.name, peerCell(peer, ofFormat, format, measure)])),
    }));
  });
}

function peerCell(peer: PeerColumn, samples: readonly RoundSample[], format: WeightFormat, measure: Measure): PeerCell {
  if (peer.missing(format) !== undefined) return { kind: 'skipped', reason: 'no file' };
  if (typeof measure === 'number' && !peer.contexts.includes(measure)) return { kind: 'skipped', reason: 'not run' };
  const pairs = samples.flatMap((sample) => {
    const theirs = sample.peers[peer.name] && speedOf(sample.peers[peer.name]!, measure);
    const ours = speedOf(sample.ours, measure);
    return theirs !== undefined && ours !== undefined ? [{ ours, theirs }] : [];
  });
  if (pairs.length === 0) return { kind: 'skipped', reason: 'failed' };
  return {
    kind: 'measured',
    speed: spread(pairs.map((pair) => pair.theirs)),
    ratio: spread(pairs.map((pair) => pair.ours / pair.theirs)),
    rounds: pairs.length,
  };
}

function speedOf(speeds: Speeds, measure: Measure): number | undefined {
  return measure === 'prefill512' ? speeds.prefill512 : speeds.decode[measure];
}

export interface TableContext {
  rounds: number;
  threads: number;
  decodeTokens: number;
  peers: readonly (PeerColumn & Pick<Peer, 'setup'>)[];
  engines: Partial<Record<string, string>>;
  formats: readonly WeightFormat[];
}

/** The rows as a Markdown table: medians with the range over rounds, then what each peer ran and what it skipped. */
export function sideBySideTable(rows: readonly SideBySideRow[], context: TableContext): string {
  const show = (s: Spread, digits: number, scale = 1) =>
    s.min === s.max
      ? (s.median / scale).toFixed(digits)
      : `${(s.median / scale).toFixed(digits)} (${(s.min / scale).toFixed(digits)}–${(s.max / scale).toFixed(digits)})`;
  const peerCells = (cell: PeerCell | undefined): string[] => {
    if (cell === undefined || cell.kind === 'skipped') return [`– (${cell?.reason ?? 'not run'})`, '–'];
    const partial = cell.rounds < context.rounds ? `, ${cell.rounds} of ${context.rounds} rounds` : '';
    return [show(cell.speed, 2), `${show(cell.ratio, 2)}${partial}`];
  };
  const header = [
    'format', 'measure', 'probe GB/s', 'ours tok/s',
    ...context.peers.flatMap((peer) => [`${peer.name} tok/s`, `ours / ${peer.name}`]),
  ];
  const lines = [
    `Side by side, ${context.threads} threads: batch-1 decode after a prompt of the given length (${context.decodeTokens} steps timed after one untimed step) ` +
      `and prefill of a 512-token prompt, in tok/s; median (min–max) of ${context.rounds} interleaved round${context.rounds === 1 ? '' : 's'}. ` +
      'Each ratio is the median of the rounds\' ours / peer, both measured back to back.\n',
    `| ${header.join(' | ')} |`,
    `|${header.map(() => '---').join('|')}|`,
    ...rows.map((row) =>
      `| ${[
        row.format,
        row.measure === 'prefill512' ? 'prefill 512' : `decode @${row.measure}`,
        show(row.probe, 1, 1e9),
        show(row.ours, 2),
        ...context.peers.flatMap((peer) => peerCells(row.peers[peer.name])),
      ].join(' | ')} |`,
    ),
    '',
    ...context.peers.flatMap((peer) => peerNotes(peer, context)),
  ];
  return lines.join('\n');
}

function peerNotes(peer: TableContext['peers'][number], context: TableContext): string[] {
  const notRun = PEER_CONTEXTS.filter((length) => !peer.contexts.includes(length));
  return [
    `- ${peer.name}: ${context.engines[peer.name] ?? 'no run succeeded'}; ${peer.setup}.` +
      (notRun.length > 0 ? ` Not run after ${notRun.join(', ')} tokens (--${CONTEXTS_OPTIONS[peer.name]} asks for them).` : ''),
    ...context.formats.flatMap((format) => {
      const missing = peer.missing(format);
      return missing === undefined ? [] : [`  - ${format}: ${missing}`];
    }),
  ];
}

/** Our server's and llama.cpp's aggregate speed-up from one stream to `streams`, medians over rounds. */
export function batchedScalingLine(streams: number, ours: readonly number[], llamaCpp: readonly number[]): string {
  const show = (values: readonly number[]) => {
    if (values.length === 0) return 'not measured';
    const s = spread(values);
    return values.length === 1 ? s.median.toFixed(2) : `${s.median.toFixed(2)} (${s.min.toFixed(2)}–${s.max.toFixed(2)}, ${values.length} rounds)`;
  };
  return `${streams} streams / 1 stream: ours ${show(ours)}, llama.cpp ${show(llamaCpp)}`;
}
