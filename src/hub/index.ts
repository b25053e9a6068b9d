import { getRepoFile } from './download.js';
import { assertRepoId } from './resolve.js';
import { resolveSettings, type HubOptions } from './settings.js';

export { HubError, type HubErrorCode } from './errors.js';
export { resolveModelFolder } from './resolve.js';
export { type CachedRepo, removeHubRepo, scanHubCache } from './scan.js';
export { resolveSettings } from './settings.js';
export type { HubOptions } from './settings.js';

/**
 * Lower level: one file of a repo into the cache; returns its path in the snapshot folder, or null if the Hub
 * says 404 (EntryNotFound) and optional is true.
 */
export async function hubDownload(
  repoId: string,
  filename: string,
  options: HubOptions & { optional?: boolean } = {},
): Promise<string | null> {
  assertRepoId(repoId);
  const file = await getRepoFile(resolveSettings(options), repoId, filename, options.optional ?? false);
  return file.path;
}
