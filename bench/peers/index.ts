// The engines a user would pick instead of this project, as peers of `npm run bench -- --peers <folder>`:
// llama.cpp through node-llama-cpp (its prebuilt Node binding) on GPT-2-architecture GGUFs of GPT-Neo 1.3B's exact
// shape, and transformers.js on an Optimum-layout ONNX export of a GPT-Neo 1.3B checkpoint. Both are installed in
// a peers folder by the peers kit's setup, not by this package; each measurement runs its driver in a fresh process.
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { WeightFormat } from '../../src/index.js';
import { type PeerSpeeds, readBatchedReport, readDecodeReport, runInFreshProcess } from './child.js';
import type { BatchedReport } from './driver.js';
import { type PeerLayout, type PeerName, peerLayouts } from './layout.js';

export type { PeerSpeeds, Speeds } from './child.js';
export type { BatchedReport } from './driver.js';
export { GGUF_TYPES, type PeerName, TRANSFORMERSJS_FILES } from './layout.js';

/** The prompt lengths decode is compared after: short, and ~1,900 (room for the decoded tokens in 2,048). */
export const PEER_CONTEXTS = [16, 1900] as const;

/**
 * Where each peer decodes unless told otherwise. transformers.js only after the short prompt: after 1,900 tokens it
 * decodes at under 1 tok/s and its prompt alone takes about a minute, every round and format.
 */
export const DEFAULT_PEER_CONTEXTS: Record<PeerName, readonly number[]> = { 'llama.cpp': PEER_CONTEXTS, 'transformers.js': [16] };

/** The bench's option that sets a peer's contexts (main.ts defines them; the table's notes name them). */
export const CONTEXTS_OPTIONS: Record<PeerName, string> = { 'llama.cpp': 'llamacpp-contexts', 'transformers.js': 'transformersjs-contexts' };

/** The prompt whose prefill PeerSpeeds.prefill512 reports. */
const PREFILL_TOKENS = 512;

/** The prompt of each stream in the batched comparison, as bench/serve.ts sends it. */
const BATCHED_PROMPT_TOKENS = 16;

export interface Peer {
  readonly name: PeerName;
  /** How it runs (after its engine's name and version), for the notes under a table. */
  readonly setup: string;
  /** The prompt lengths it decodes after in the comparison. */
  readonly contexts: readonly number[];
  /** Why `format` cannot run (its model file is missing), or undefined when it can. */
  missing(format: WeightFormat): string | undefined;
  /** Batch-1 decode tokens/s after each prompt length, `tokens` steps timed, and a 512-token prompt's prefill. */
  decode(format: WeightFormat, contexts: readonly number[], tokens: number, threads: number): Promise<PeerSpeeds>;
}

export interface LlamaCppPeer extends Peer {
  readonly name: 'llama.cpp';
  /** One sequence, then `streams` at once in one context, each a 16-token prompt and `newTokens` new tokens. */
  batched(format: WeightFormat, streams: number, newTokens: number, threads: number): Promise<BatchedReport>;
}

export interface OpenedPeers {
  /** The peers present, in the order they are measured. */
  peers: Peer[];
  /** The llama.cpp peer when present: the one with a batched comparison. */
  llamaCpp: LlamaCppPeer | undefined;
  /** One line per peer left out: what is missing and how to make it. */
  skipped: string[];
}

export interface PeerOptions {
  /** Prompt lengths per peer, instead of DEFAULT_PEER_CONTEXTS. */
  contexts?: Partial<Record<PeerName, readonly number[]>>;
  /** The drivers' environment (default: the bench's). */
  env?: NodeJS.ProcessEnv;
}

/**
 * The peers installed in `folder` that can run at least one of `formats`. A peer without its package or model
 * folder is skipped (named in `skipped`); a format whose file a peer lacks is its `missing(format)`. Throws when the
 * folder does not exist or holds no peer at all.
 */
export function openPeers(folder: string, formats: readonly WeightFormat[], options: PeerOptions = {}): OpenedPeers {
  const root = path.resolve(folder);
  if (!existsSync(root)) throw new Error(`--peers ${folder}: no such folder`);
  const opened: OpenedPeers = { peers: [], llamaCpp: undefined, skipped: [] };
  for (const layout of peerLayouts(root, formats)) {
    if (layout.absent !== undefined) {
      opened.skipped.push(`${layout.name} skipped: ${layout.absent}`);
      continue;
    }
    const contexts = options.contexts?.[layout.name] ?? DEFAULT_PEER_CONTEXTS[layout.name];
    if (layout.name === 'llama.cpp') {
      opened.llamaCpp = llamaCppPeer(layout, contexts, options.env);
      opened.peers.push(opened.llamaCpp);
    } else {
      opened.peers.push(transformersJsPeer(layout, contexts, options.env));
    }
  }
  if (opened.peers.length === 0) throw new Error(`--peers ${folder}: no peer can run there. ${opened.skipped.join('. ')}`);
  return opened;
}

const driver = (name: string) => path.join(path.dirname(fileURLToPath(import.meta.url)), name);

/** The file of `format`, or the error naming it. */
function fileOf(layout: PeerLayout, format: WeightFormat): string {
  const missing = layout.missing[format];
  if (missing !== undefined) throw new Error(`${layout.name} peer: ${missing}`);
  return layout.files[format];
}

function llamaCppPeer(layout: PeerLayout, contexts: readonly number[], env: NodeJS.ProcessEnv | undefined): LlamaCppPeer {
  const script = driver('llamacpp-run.js');
  return {
    name: 'llama.cpp',
    setup: `GPT-2-architecture GGUFs of the same shape in ${layout.models} (fp32 F32, q8 Q8_0, q4 Q4_0), CPU only, weights read into its memory, flash attention at node-llama-cpp's default`,
    contexts,
    missing: (format) => layout.missing[format],
    async decode(format, asked, tokens, threads) {
      const args = [
        layout.nodeModules, fileOf(layout, format), '--threads', String(threads),
        '--contexts', asked.join(','), '--tokens', String(tokens), '--prefill', String(PREFILL_TOKENS),
      ];
      return readDecodeReport(await runInFreshProcess(script, args, env), asked, `llama.cpp ${format}`);
    },
    async batched(format, streams, newTokens, threads) {
      const args = [
        layout.nodeModules, fileOf(layout, format), '--threads', String(threads),
        '--batched', String(streams), '--prompt', String(BATCHED_PROMPT_TOKENS), '--new-tokens', String(newTokens),
      ];
      return readBatchedReport(await runInFreshProcess(script, args, env), `llama.cpp ${format} batched`);
    },
  };
}

function transformersJsPeer(layout: PeerLayout, contexts: readonly number[], env: NodeJS.ProcessEnv | undefined): Peer {
  const script = driver('transformersjs-run.js');
  return {
    name: 'transformers.js',
    setup: `generate() on CPU with the Optimum-layout export in ${layout.models} (fp32 model.onnx, q8 model_quantized.onnx, q4 model_q4.onnx)`,
    contexts,
    missing: (format) => layout.missing[format],
    async decode(format, asked, tokens, threads) {
      fileOf(layout, format); // transformers.js picks the file from the dtype; a missing one is named before a process starts
      const args = [
        layout.nodeModules, layout.models, '--dtype', format, '--threads', String(threads),
        '--contexts', asked.join(','), '--tokens', String(tokens), '--prefill', String(PREFILL_TOKENS),
      ];
      return readDecodeReport(await runInFreshProcess(script, args, env), asked, `transformers.js ${format}`);
    },
  };
}
