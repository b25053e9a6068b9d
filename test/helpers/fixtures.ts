import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'fixtures', 'gpt-neo');

export const fixture = (...parts: string[]) => path.join(FIXTURES, ...parts);

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function readReference(model: string): any {
  return JSON.parse(readFileSync(fixture(model, 'reference.json'), 'utf8'));
}

export function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  let max = 0;
  for (let i = 0; i < a.length; i++) max = Math.max(max, Math.abs(a[i]! - b[i]!));
  return max;
}

export function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < row.length; i++) if (row[i]! > row[best]!) best = i;
  return best;
}

export function logSumExp(row: ArrayLike<number>): number {
  let max = -Infinity;
  for (let i = 0; i < row.length; i++) max = Math.max(max, row[i]!);
  let sum = 0;
  for (let i = 0; i < row.length; i++) sum += Math.exp(row[i]! - max);
  return max + Math.log(sum);
}

/** A fixture model folder as a fake Hub repo: its files, with the weights served from LFS. */
export function fixtureRepo(model: string, commit: string): { commit: string; files: Record<string, Buffer>; lfs: string[] } {
  const files: Record<string, Buffer> = {};
  for (const name of readdirSync(fixture(model))) {
    if (/\.(json|txt|safetensors|bin)$/.test(name) && name !== 'reference.json' && name !== 'valid.txt') {
      files[name] = readFileSync(fixture(model, name));
    }
  }
  return { commit, files, lfs: Object.keys(files).filter((name) => /\.(safetensors|bin)$/.test(name)) };
}
