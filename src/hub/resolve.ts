import fs from 'node:fs/promises';
import path from 'node:path';
import { withLock } from '../util/file-lock.js';
import { RepoCache } from './cache.js';
import { getRepoFile, OFFLINE_BY_SETTING } from './download.js';
import { HubError } from './errors.js';
import { resolveSettings, type HubOptions, type HubSettings } from './settings.js';

const OPTIONAL_FILES = [
  'generation_config.json',
  'vocab.json',
  'merges.txt',
  'tokenizer.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
];

/** In transformers' order of preference; an index names the shards holding the weights. */
const WEIGHT_FORMS = [
  { file: 'model.safetensors', sharded: false },
  { file: 'model.safetensors.index.json', sharded: true },
  { file: 'pytorch_model.bin', sharded: false },
  { file: 'pytorch_model.bin.index.json', sharded: true },
];

/**
 * If idOrPath is an existing local folder, return it unchanged. Otherwise treat it as a Hub repo id ("org/name"
 * or "name") and make sure the files a GPT-Neo model needs are in the cache; return the snapshot folder
 * (cacheDir/models--org--name/snapshots/<commit>).
 */
export async function resolveModelFolder(idOrPath: string, options: HubOptions = {}): Promise<string> {
  if (await isDirectory(idOrPath)) return idOrPath;
  assertRepoId(idOrPath);
  const settings = resolveSettings(options);
  const cache = new RepoCache(settings.cacheDir, idOrPath);
  // Held while the files are gathered, so a `gpt-neo cache rm` cannot take the snapshot away between them.
  return withLock(cache.inUseLockPath, { shared: true, waitingFor: `a removal of ${idOrPath} from the cache` }, () =>
    fetchModelFiles(idOrPath, settings),
  );
}

async function fetchModelFiles(repoId: string, settings: HubSettings): Promise<string> {
  const config = await getRepoFile(settings, repoId, 'config.json', false);
  // Every other file is taken from the commit config.json came from, so the snapshot is consistent even if
  // the branch moves meanwhile; once the Hub has failed, the rest comes from the cache without trying again.
  const pinned: HubSettings = { ...settings, revision: config.commit, offline: settings.offline || !!config.hubUnreachable };
  const offlineReason = config.hubUnreachable
    ? `the Hub could not be used (${config.hubUnreachable.message})`
    : OFFLINE_BY_SETTING;
  const about = `${repoId} (revision "${settings.revision}")`;
  const fetchOptional = async (filename: string) => (await getRepoFile(pinned, repoId, filename, true, offlineReason)).path;
  const fetchRequired = (filename: string) => getRepoFile(pinned, repoId, filename, false, offlineReason);

  const present = new Set<string>();
  for (const filename of OPTIONAL_FILES) {
    if (await fetchOptional(filename)) present.add(filename);
  }
  if (!present.has('tokenizer.json') && !(present.has('vocab.json') && present.has('merges.txt'))) {
    throw new HubError(
      `${about} has no tokenizer: neither tokenizer.json nor vocab.json + merges.txt` +
        (pinned.offline ? ` (${offlineReason}, so only the cache was searched)` : ''),
      pinned.offline ? 'offline' : 'not-a-model',
    );
  }

  for (const form of WEIGHT_FORMS) {
    const found = await fetchOptional(form.file);
    if (!found) continue;
    if (form.sharded) {
      for (const shard of await shardsOf(found, about)) await fetchRequired(shard);
    }
    return path.dirname(config.path);
  }
  throw new HubError(
    `${about} has no weights: tried ${WEIGHT_FORMS.map((f) => f.file).join(', ')}` +
      (pinned.offline ? ` (${offlineReason}, so only the cache was searched)` : ''),
    pinned.offline ? 'offline' : 'not-a-model',
  );
}

async function shardsOf(indexPath: string, about: string): Promise<string[]> {
  const index = JSON.parse(await fs.readFile(indexPath, 'utf8')) as { weight_map?: unknown };
  const shards = index.weight_map && typeof index.weight_map === 'object' ? Object.values(index.weight_map) : [];
  if (shards.length === 0 || !shards.every((s): s is string => typeof s === 'string')) {
    throw new HubError(`${path.basename(indexPath)} of ${about} has no usable weight_map`, 'not-a-model');
  }
  return [...new Set(shards)];
}

// huggingface_hub's validate_repo_id: one optional namespace, names of word characters, '-' and '.',
// starting and ending with a word character, no '--' or '..'.
const REPO_ID = /^(?:[A-Za-z0-9_](?:[\w.-]*[A-Za-z0-9_])?\/)?[A-Za-z0-9_](?:[\w.-]{0,94}[A-Za-z0-9_])?$/;

export function assertRepoId(repoId: string): void {
  if (!REPO_ID.test(repoId) || repoId.includes('--') || repoId.includes('..') || repoId.endsWith('.git')) {
    throw new HubError(
      `"${repoId}" is neither an existing folder nor a Hugging Face repo id ("name" or "org/name")`,
      'invalid-repo-id',
    );
  }
}

async function isDirectory(p: string): Promise<boolean> {
  try {
    return (await fs.stat(p)).isDirectory();
  } catch {
    return false;
  }
}
