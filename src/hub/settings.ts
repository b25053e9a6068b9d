import { readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface HubOptions {
  /** Branch, tag or commit sha; default 'main'. */
  revision?: string;
  /** Default: HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub. */
  cacheDir?: string;
  /** Default: HF_ENDPOINT, else https://huggingface.co. */
  endpoint?: string;
  /** Default: HF_TOKEN (then the $HF_HOME/token file, as huggingface_hub does); false = none. */
  token?: string | false;
  /** Default: HF_HUB_OFFLINE=1 / true. */
  offline?: boolean;
  /** Default true: progress bar via startProgress when stderr is a TTY. */
  progress?: boolean;
}

/** HubOptions with every default filled in from the environment, the way huggingface_hub reads it. */
export interface HubSettings {
  revision: string;
  cacheDir: string;
  endpoint: string;
  token: string | undefined;
  offline: boolean;
  progress: boolean;
  /** Seconds to wait for a HEAD answer (huggingface_hub's HF_HUB_ETAG_TIMEOUT, default 10). */
  metadataTimeoutSeconds: number;
  /** Seconds a download may stall before it counts as cut (huggingface_hub's HF_HUB_DOWNLOAD_TIMEOUT, default 10). */
  downloadTimeoutSeconds: number;
}

export const DEFAULT_ENDPOINT = 'https://huggingface.co';

export function resolveSettings(options: HubOptions = {}): HubSettings {
  const env = process.env;
  const hfHome = expandHome(env.HF_HOME || path.join(env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'huggingface'));
  return {
    revision: options.revision ?? 'main',
    cacheDir: options.cacheDir ?? expandHome(env.HF_HUB_CACHE || env.HUGGINGFACE_HUB_CACHE || path.join(hfHome, 'hub')),
    endpoint: (options.endpoint ?? (env.HF_ENDPOINT || DEFAULT_ENDPOINT)).replace(/\/+$/, ''),
    token: options.token === false ? undefined : (options.token ?? tokenFromEnvironment(hfHome)),
    offline: options.offline ?? isTrue(env.HF_HUB_OFFLINE || env.TRANSFORMERS_OFFLINE),
    progress: options.progress ?? true,
    metadataTimeoutSeconds: positiveNumber(env.HF_HUB_ETAG_TIMEOUT) ?? 10,
    downloadTimeoutSeconds: positiveNumber(env.HF_HUB_DOWNLOAD_TIMEOUT) ?? 10,
  };
}

// Same precedence as huggingface_hub's get_token(): HF_TOKEN, the legacy HUGGING_FACE_HUB_TOKEN, then the
// file `huggingface-cli login` writes.
function tokenFromEnvironment(hfHome: string): string | undefined {
  const fromEnv = cleanToken(process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN);
  if (fromEnv) return fromEnv;
  const tokenPath = expandHome(process.env.HF_TOKEN_PATH || path.join(hfHome, 'token'));
  try {
    return cleanToken(readFileSync(tokenPath, 'utf8'));
  } catch {
    return undefined;
  }
}

function cleanToken(token: string | undefined): string | undefined {
  return token?.replace(/[\r\n]/g, '').trim() || undefined;
}

// huggingface_hub's _is_true: only these spellings switch a flag on.
function isTrue(value: string | undefined): boolean {
  return value !== undefined && ['1', 'ON', 'YES', 'TRUE'].includes(value.toUpperCase());
}

function positiveNumber(value: string | undefined): number | undefined {
  const n = Number(value);
  return value && Number.isFinite(n) && n > 0 ? n : undefined;
}

function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') ? path.join(os.homedir(), p.slice(1)) : p;
}
