import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { FakeRepo } from './fake-hub.js';

export function commitSha(seed: string): string {
  return createHash('sha1').update(seed).digest('hex');
}

const madeDirs: string[] = [];

export function tempDir(prefix = 'gpt-neo-hub-'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  madeDirs.push(dir);
  return dir;
}

export async function removeTempDirs(): Promise<void> {
  await Promise.all(madeDirs.splice(0).map((dir) => fs.rm(dir, { recursive: true, force: true })));
}

/** A GPT-Neo-shaped repo: small text files in git, weights (random bytes, several chunks long) in LFS. */
export function modelRepo(seed: string, weights: Record<string, Buffer> = { 'model.safetensors': randomBytes(300_000) }): FakeRepo {
  return {
    commit: commitSha(seed),
    files: {
      'config.json': Buffer.from(JSON.stringify({ model_type: 'gpt_neo', seed })),
      'vocab.json': Buffer.from('{"a": 0, "b": 1}'),
      'merges.txt': Buffer.from('#version: 0.2\na b\n'),
      'tokenizer_config.json': Buffer.from('{"model_max_length": 2048}'),
      ...weights,
    },
    lfs: Object.keys(weights).filter((name) => !name.endsWith('.json')),
  };
}

/** Every file and symlink under a folder, relative, with symlink targets: the cache layout as a snapshot. */
export async function listTree(root: string): Promise<Record<string, string>> {
  const tree: Record<string, string> = {};
  const walk = async (dir: string) => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name);
      const rel = path.relative(root, full).split(path.sep).join('/');
      if (entry.isSymbolicLink()) tree[rel] = `-> ${await fs.readlink(full)}`;
      else if (entry.isDirectory()) await walk(full);
      else tree[rel] = `${(await fs.stat(full)).size} bytes`;
    }
  };
  await walk(root);
  return tree;
}

/** Options that ignore whatever HF_* variables the machine running the tests has. */
export function isolated(endpoint: string, cacheDir: string) {
  return { endpoint, cacheDir, token: false as const, offline: false };
}

export function gets(requests: string[]): string[] {
  return requests.filter((line) => line.startsWith('GET '));
}
