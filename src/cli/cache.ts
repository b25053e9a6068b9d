import { Command } from 'commander';
import { findEntries, pruneCaches, removeEntry, scanCaches, type CacheEntry, type CacheReport } from '../cache/index.js';
import { CAUSAL_LM_VARIANT } from '../convert/index.js';
import { parseAge, parseSize } from '../util/cache-size.js';
import { cliValue } from './options.js';
import { formatBytes } from '../util/progress.js';

export function cacheCommand(): Command {
  const cache = new Command('cache').description(
    'List and remove what is cached: Hub downloads (shared with Python) and converted models',
  );
  cache
    .command('ls')
    .description('every Hub repo and converted model, with size on disk and last use')
    .option('--json', 'machine-readable output')
    .action(async (flags: { json?: boolean }) => {
      const report = await scanCaches();
      const forScripts = { ...report, entries: report.entries.map((e) => ({ ...e, lastUsed: new Date(e.lastUsed).toISOString() })) };
      process.stdout.write(flags.json ? `${JSON.stringify(forScripts, null, 2)}\n` : formatReport(report));
    });
  cache
    .command('rm')
    .description('remove Hub repos (org/name) or conversions (their name from `cache ls`, or a unique prefix)')
    .argument('<targets...>', 'repo ids or conversion names')
    .action(async (targets: string[]) => {
      const report = await scanCaches();
      const entries = targets.flatMap((target) => findEntries(report, target));
      const busy: string[] = [];
      for (const entry of entries) {
        if ((await removeEntry(entry, report.hubCacheDir)) === 'removed') process.stdout.write(`removed ${describe(entry)}\n`);
        else busy.push(entry.id);
      }
      if (busy.length > 0) throw new Error(`not removed, in use by another process right now: ${busy.join(', ')}`);
    });
  cache
    .command('prune')
    .description('remove what was not used lately, then the least recently used beyond a size; leftovers of killed work always')
    .option('--older-than <age>', 'not used for this long: 30d, 12h, 2w', (v) => cliValue(() => parseAge(v, '--older-than')))
    .option('--max-size <size>', 'then keep the caches within this size: 20GB, 500MB, 1.5GiB', (v) => cliValue(() => parseSize(v, '--max-size')))
    .option('--dry-run', 'only list what would be removed')
    .action(async (flags: { olderThan?: number; maxSize?: number; dryRun?: boolean }) => {
      const report = await scanCaches();
      const { removed, inUse } = await pruneCaches(report, flags);
      const verb = flags.dryRun ? 'would remove' : 'removed';
      for (const entry of removed) process.stdout.write(`${verb} ${describe(entry)}\n`);
      for (const entry of inUse) process.stdout.write(`kept ${describe(entry)}: in use by another process\n`);
      const freed = removed.reduce((sum, entry) => sum + entry.size, 0);
      process.stdout.write(`${verb} ${count(removed.length, 'entry', 'entries')}, ${formatBytes(freed)}; ${formatBytes(report.totalSize - freed)} left\n`);
    });
  return cache;
}


function describe(entry: CacheEntry): string {
  const what = entry.kind === 'hub' ? `Hub repo ${entry.id}` : `conversion ${entry.id} (${entry.source})`;
  return `${what}, ${formatBytes(entry.size)}`;
}

function formatReport(report: CacheReport): string {
  const hub = report.entries.filter((e) => e.kind === 'hub');
  const conversions = report.entries.filter((e) => e.kind === 'conversion');
  const sum = (entries: CacheEntry[]) => formatBytes(entries.reduce((total, e) => total + e.size, 0));
  const lines = [
    `Hub cache ${report.hubCacheDir}: ${count(hub.length, 'repo', 'repos')}, ${sum(hub)}`,
    ...table(['REPO', 'SIZE', 'LAST USED', 'REVISIONS'], hub.map((e) => [e.id, formatBytes(e.size), ago(e.lastUsed), e.source])),
    '',
    `Converted models ${report.conversionsDir}: ${count(conversions.length, 'entry', 'entries')}, ${sum(conversions)}`,
    ...table(
      ['NAME', 'FORMAT', 'SIZE', 'LAST USED', 'SOURCE'],
      conversions.map((e) => [e.id, e.leftover ? 'leftover' : `${e.format}${e.variant === CAUSAL_LM_VARIANT ? '' : ` ${e.variant}`}`, formatBytes(e.size), ago(e.lastUsed), e.source]),
    ),
    '',
    `Total: ${formatBytes(report.totalSize)}`,
  ];
  return `${lines.join('\n')}\n`;
}

function count(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

function table(header: string[], rows: string[][]): string[] {
  if (rows.length === 0) return ['  (empty)'];
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows].map((row) => `  ${row.map((cell, i) => (i === row.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ')}`);
}

function ago(ms: number): string {
  const seconds = Math.max(0, (Date.now() - ms) / 1000);
  if (seconds < 90) return `${Math.round(seconds)} s ago`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 129_600) return `${Math.round(seconds / 3600)} h ago`;
  return `${Math.round(seconds / 86_400)} days ago`;
}
