// llama.cpp as a side-by-side peer of `npm run bench`: the best-known CPU engine decoding a GPT-2-architecture
// GGUF of GPT-Neo 1.3B's exact shape (same bytes per token), built by the side-by-side peer tools or by hand
// (docs/speed.md). Nothing of llama.cpp is part of this package; the bench runs its binaries.
import { execFile } from 'node:child_process';
import { access, constants } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import type { WeightFormat } from '../src/index.js';

/** The GGUF type that reads what each of our formats reads per token. */
export const PEER_FORMATS: Record<WeightFormat, string> = { fp32: 'f32', q8: 'q8_0', q4: 'q4_0' };

/** The one tool that measures decode after a prompt of any length in one process (llama-bench of early 2025 has no `-d`). */
const BENCH_TOOL = 'llama-batched-bench';

export interface PeerDecode {
  /** Batch-1 decode tokens/s after a prompt of `context` tokens. */
  tokensPerSecond: Record<number, number>;
}

export interface LlamaCppPeer {
  tool: string;
  gguf(format: WeightFormat): string;
  /** Decodes `tokens` tokens after each prompt length in `contexts`, weights read into llama.cpp's memory (`--no-mmap`). */
  decode(format: WeightFormat, contexts: readonly number[], tokens: number, threads: number): Promise<PeerDecode>;
}

/**
 * Finds the tool and the GGUFs in a llama.cpp build folder: the tool in `build/bin`, `bin` or the folder itself,
 * the GGUFs as `gpt2-1.3b-<type>.gguf` in the folder. A missing piece is named with the command that makes it.
 */
export async function openLlamaCppPeer(folder: string, formats: readonly WeightFormat[]): Promise<LlamaCppPeer> {
  const root = path.resolve(folder);
  const candidates = ['build/bin', 'bin', '.'].map((dir) => path.join(root, dir, BENCH_TOOL));
  let tool: string | undefined;
  for (const candidate of candidates) {
    if (await access(candidate, constants.X_OK).then(() => true, () => false)) {
      tool = candidate;
      break;
    }
  }
  if (!tool) {
    throw new Error(
      `llama.cpp peer: no executable ${BENCH_TOOL} in ${candidates.map((c) => path.dirname(c)).join(', ')} ` +
        `(build it with: cmake --build ${path.join(root, 'build')} --target ${BENCH_TOOL})`,
    );
  }
  const gguf = (format: WeightFormat) => path.join(root, `gpt2-1.3b-${PEER_FORMATS[format]}.gguf`);
  for (const format of formats) {
    if (!(await access(gguf(format), constants.R_OK).then(() => true, () => false))) {
      throw new Error(`llama.cpp peer: ${gguf(format)} is missing (the ${format} peer: a GGUF of GPT-Neo 1.3B's shape, see docs/speed.md)`);
    }
  }
  const found = tool;
  return {
    tool: found,
    gguf,
    async decode(format, contexts, tokens, threads) {
      const args = [
        '-m', gguf(format), '-c', String(Math.max(...contexts) + tokens), '-b', '2048', '-ub', '512',
        '-npp', contexts.join(','), '-ntg', String(tokens), '-npl', '1', '-t', String(threads),
        '--no-mmap', '--output-format', 'jsonl',
      ];
      const { stdout } = await promisify(execFile)(found, args, { maxBuffer: 1 << 20 }).catch((error: { stderr?: string; message: string }) => {
        const lastLines = (error.stderr ?? '').trim().split('\n').slice(-3).join(' | ');
        throw new Error(`llama.cpp peer: ${found} ${args.join(' ')} failed: ${lastLines || error.message}`);
      });
      return { tokensPerSecond: parseBatchedBench(stdout, contexts) };
    },
  };
}

/** Decode tokens/s per prompt length from llama-batched-bench's JSON lines (`speed_tg` of the row with `pp` = context). */
export function parseBatchedBench(stdout: string, contexts: readonly number[]): Record<number, number> {
  const rows = stdout
    .split('\n')
    .filter((line) => line.trimStart().startsWith('{'))
    .map((line) => JSON.parse(line) as { pp?: unknown; speed_tg?: unknown });
  const result: Record<number, number> = {};
  for (const context of contexts) {
    const row = rows.find((r) => r.pp === context);
    if (!row || typeof row.speed_tg !== 'number' || !(row.speed_tg > 0)) {
      throw new Error(`llama.cpp peer: ${BENCH_TOOL} printed no decode speed for a ${context}-token prompt (got: ${stdout.trim().slice(0, 200) || 'nothing'})`);
    }
    result[context] = row.speed_tg;
  }
  return result;
}
