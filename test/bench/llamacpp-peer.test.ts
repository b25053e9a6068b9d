// The llama.cpp peer of `npm run bench`: finding its tool and GGUFs, running it, reading its output, and the
// medians and ranges the side-by-side table reports. A stand-in script plays llama-batched-bench.
import { chmod, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { openLlamaCppPeer, parseBatchedBench } from '../../bench/llamacpp-peer.js';
import { spread } from '../../bench/side-by-side.js';

const folders: string[] = [];
afterEach(async () => {
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

async function buildFolder(script?: string, ggufs = ['f32', 'q8_0', 'q4_0']): Promise<string> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'llamacpp-peer-'));
  folders.push(folder);
  if (script !== undefined) {
    await mkdir(path.join(folder, 'build', 'bin'), { recursive: true });
    const tool = path.join(folder, 'build', 'bin', 'llama-batched-bench');
    await writeFile(tool, `#!/bin/sh\n${script}\n`);
    await chmod(tool, 0o755);
  }
  for (const type of ggufs) await writeFile(path.join(folder, `gpt2-1.3b-${type}.gguf`), 'GGUF');
  return folder;
}

/** Prints one JSON line per -npp value, decode speed = 1000 / prompt length + 5, and its arguments on stderr. */
const ECHO_SPEEDS = `
echo "$@" >&2
npp=$(echo "$@" | sed 's/.*-npp \\([0-9,]*\\).*/\\1/')
for pp in $(echo $npp | tr ',' ' '); do
  echo "{\\"pp\\": $pp, \\"tg\\": 32, \\"pl\\": 1, \\"speed_pp\\": 50.0, \\"speed_tg\\": $((1000 / pp + 5)).5}"
done`;

describe('llama.cpp peer', () => {
  it('runs llama-batched-bench with the weights read into memory and reads each context\'s decode speed', async () => {
    const folder = await buildFolder(ECHO_SPEEDS);
    const peer = await openLlamaCppPeer(folder, ['fp32', 'q8', 'q4']);
    expect(peer.gguf('q8')).toBe(path.join(folder, 'gpt2-1.3b-q8_0.gguf'));
    const result = await peer.decode('q4', [16, 1900], 32, 2);
    expect(result.tokensPerSecond).toEqual({ 16: 67.5, 1900: 5.5 });
  });

  it('names the missing tool and how to build it', async () => {
    const folder = await buildFolder();
    await expect(openLlamaCppPeer(folder, ['fp32'])).rejects.toThrow(/no executable llama-batched-bench in .*--target llama-batched-bench/);
  });

  it('names a missing GGUF', async () => {
    const folder = await buildFolder(ECHO_SPEEDS, ['f32']);
    await expect(openLlamaCppPeer(folder, ['fp32', 'q4'])).rejects.toThrow(/gpt2-1\.3b-q4_0\.gguf is missing \(the q4 peer/);
  });

  it('reports the tool\'s own error when it fails', async () => {
    const folder = await buildFolder('echo "llama_model_load: error loading model: bad magic" >&2; exit 1');
    const peer = await openLlamaCppPeer(folder, ['q8']);
    await expect(peer.decode('q8', [16], 32, 2)).rejects.toThrow(/failed: llama_model_load: error loading model: bad magic/);
  });

  it('refuses output without the asked context instead of reporting a speed', () => {
    const line = '{"pp": 16, "tg": 32, "pl": 1, "speed_tg": 9.5}';
    expect(parseBatchedBench(`log line\n${line}\n`, [16])).toEqual({ 16: 9.5 });
    expect(() => parseBatchedBench(line, [16, 1900])).toThrow(/no decode speed for a 1900-token prompt/);
    expect(() => parseBatchedBench('{"pp": 16, "speed_tg": 0}', [16])).toThrow(/no decode speed/);
  });
});

describe('spread over rounds', () => {
  it('gives the median and the range', () => {
    expect(spread([3, 1, 2])).toEqual({ median: 2, min: 1, max: 3 });
    expect(spread([4, 1, 3, 2])).toEqual({ median: 2.5, min: 1, max: 4 });
    expect(() => spread([])).toThrow();
  });
});
