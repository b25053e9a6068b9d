// The peers of `npm run bench -- --peers <folder>`: finding each peer's pieces in the folder, naming what is
// missing, and reading a driver's report. Stand-in files play the packages and models; no peer runs here.
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { lastJsonLine, readBatchedReport, readDecodeReport, runInFreshProcess } from '../../bench/peers/child.js';
import { openPeers } from '../../bench/peers/index.js';

const folders: string[] = [];
afterEach(async () => {
  await Promise.all(folders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

async function touch(file: string, content = ''): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, content);
}

interface Layout {
  llamaCpp?: boolean;
  ggufs?: string[];
  transformersJs?: boolean;
  exportConfig?: boolean;
  onnx?: string[];
}

/** A peers folder with the pieces asked for (by default all of them) as empty stand-ins. */
async function peersFolder(layout: Layout = {}): Promise<string> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'peers-'));
  folders.push(folder);
  if (layout.llamaCpp ?? true) await touch(path.join(folder, 'nlc', 'node_modules', 'node-llama-cpp', 'package.json'), '{}');
  for (const type of layout.ggufs ?? ['f32', 'q8_0', 'q4_0']) await touch(path.join(folder, 'gguf', `gpt2-1.3b-${type}.gguf`));
  if (layout.transformersJs ?? true) await touch(path.join(folder, 'tjs', 'node_modules', '@huggingface', 'transformers', 'package.json'), '{}');
  if (layout.exportConfig ?? true) await touch(path.join(folder, 'tjs-neo13b', 'config.json'), '{}');
  for (const file of layout.onnx ?? ['model.onnx', 'model_quantized.onnx', 'model_q4.onnx']) await touch(path.join(folder, 'tjs-neo13b', 'onnx', file));
  return folder;
}

describe('openPeers', () => {
  it('finds both peers with every format, llama.cpp at both contexts and transformers.js at the short one', async () => {
    const opened = openPeers(await peersFolder(), ['fp32', 'q8', 'q4']);
    expect(opened.peers.map((peer) => peer.name)).toEqual(['llama.cpp', 'transformers.js']);
    expect(opened.llamaCpp).toBe(opened.peers[0]);
    expect(opened.skipped).toEqual([]);
    expect(opened.peers.map((peer) => peer.contexts)).toEqual([[16, 1900], [16]]);
    for (const peer of opened.peers) for (const format of ['fp32', 'q8', 'q4'] as const) expect(peer.missing(format)).toBeUndefined();
  });

  it('takes each peer\'s contexts from the options', async () => {
    const opened = openPeers(await peersFolder(), ['q8'], { contexts: { 'transformers.js': [16, 1900] } });
    expect(opened.peers.map((peer) => peer.contexts)).toEqual([[16, 1900], [16, 1900]]);
  });

  it('names a missing GGUF as that format\'s gap and refuses to decode it, without failing the other formats', async () => {
    const folder = await peersFolder({ ggufs: ['f32', 'q8_0'] });
    const { llamaCpp } = openPeers(folder, ['fp32', 'q8', 'q4']);
    expect(llamaCpp?.missing('q8')).toBeUndefined();
    expect(llamaCpp?.missing('q4')).toBe(`${path.join(folder, 'gguf', 'gpt2-1.3b-q4_0.gguf')} is missing (the peers kit's setup writes it)`);
    await expect(llamaCpp!.decode('q4', [16], 32, 2)).rejects.toThrow(/^llama\.cpp peer: .*gpt2-1\.3b-q4_0\.gguf is missing/);
    await expect(llamaCpp!.batched('q4', 8, 64, 2)).rejects.toThrow(/gpt2-1\.3b-q4_0\.gguf is missing/);
  });

  it('says a file is still being written when only its temporary name is there', async () => {
    const folder = await peersFolder({ ggufs: ['q8_0'] });
    await touch(path.join(folder, 'gguf', 'gpt2-1.3b-q4_0.gguf.tmp'));
    expect(openPeers(folder, ['q8', 'q4']).llamaCpp?.missing('q4')).toMatch(/gpt2-1\.3b-q4_0\.gguf is still being written \(gpt2-1\.3b-q4_0\.gguf\.tmp\)$/);
  });

  it('names a missing transformers.js file per format', async () => {
    const folder = await peersFolder({ onnx: ['model.onnx', 'model_quantized.onnx'] });
    const transformersJs = openPeers(folder, ['q8', 'q4']).peers[1]!;
    expect(transformersJs.missing('q8')).toBeUndefined();
    expect(transformersJs.missing('q4')).toContain(path.join(folder, 'tjs-neo13b', 'onnx', 'model_q4.onnx'));
    await expect(transformersJs.decode('q4', [16], 32, 2)).rejects.toThrow(/^transformers\.js peer: .*model_q4\.onnx is missing/);
  });

  it('skips a peer whose package is not installed, naming the folder and the kit that installs it', async () => {
    const folder = await peersFolder({ llamaCpp: false });
    const opened = openPeers(folder, ['q8']);
    expect(opened.peers.map((peer) => peer.name)).toEqual(['transformers.js']);
    expect(opened.llamaCpp).toBeUndefined();
    expect(opened.skipped).toEqual([
      `llama.cpp skipped: ${path.join(folder, 'nlc', 'node_modules', 'node-llama-cpp')} is not installed (the peers kit's setup installs node-llama-cpp 3.21.1 there)`,
    ]);
  });

  it('skips transformers.js without its export\'s config.json', async () => {
    const folder = await peersFolder({ exportConfig: false });
    const opened = openPeers(folder, ['q8']);
    expect(opened.peers.map((peer) => peer.name)).toEqual(['llama.cpp']);
    expect(opened.skipped[0]).toMatch(/^transformers\.js skipped: .*tjs-neo13b\/config\.json is missing/);
  });

  it('skips a peer that has none of the formats asked for, naming each file', async () => {
    const folder = await peersFolder({ ggufs: ['f32'] });
    const opened = openPeers(folder, ['q8', 'q4']);
    expect(opened.llamaCpp).toBeUndefined();
    expect(opened.skipped[0]).toMatch(/^llama\.cpp skipped: .*gpt2-1\.3b-q8_0\.gguf is missing .*; .*gpt2-1\.3b-q4_0\.gguf is missing/);
  });

  it('fails on a folder that does not exist or holds no peer', async () => {
    expect(() => openPeers('/no/such/peers', ['q8'])).toThrow('--peers /no/such/peers: no such folder');
    const folder = await peersFolder({ llamaCpp: false, transformersJs: false });
    expect(() => openPeers(folder, ['q8'])).toThrow(/no peer can run there\. llama\.cpp skipped: .*node-llama-cpp is not installed.*transformers\.js skipped: /);
  });
});

describe('a driver\'s report', () => {
  const report = { engine: 'engine 1.0', decode: { 16: 12.5, 1900: 7.25 }, prefill: { tokens: 512, tokensPerSecond: 90 } };

  it('is the last JSON line of what the driver printed', () => {
    expect(lastJsonLine(`[warn] loading\n${JSON.stringify({ a: 1 })}\n${JSON.stringify(report)}\n`, 'driver')).toEqual(report);
    expect(() => lastJsonLine('only a log line\n', 'node driver.js')).toThrow('node driver.js printed no report (got: only a log line)');
  });

  it('gives decode at each context asked for and the 512-token prefill', () => {
    expect(readDecodeReport(report, [16, 1900], 'driver')).toEqual({ engine: 'engine 1.0', decode: { 16: 12.5, 1900: 7.25 }, prefill512: 90 });
  });

  it('refuses a report without a speed asked for instead of showing it as one', () => {
    expect(() => readDecodeReport({ ...report, decode: { 16: 12.5 } }, [16, 1900], 'llama.cpp q8')).toThrow(
      'llama.cpp q8 reported no decode speed after 1900 tokens (got nothing)',
    );
    expect(() => readDecodeReport({ ...report, decode: { 16: 0 } }, [16], 'driver')).toThrow(/no decode speed after 16 tokens \(got 0\)/);
    expect(() => readDecodeReport({ ...report, prefill: { tokens: 64, tokensPerSecond: 90 } }, [16], 'driver')).toThrow(/no prefill of 512 tokens/);
    expect(() => readDecodeReport(null, [16], 'driver')).toThrow(/no prefill of 512 tokens \(got nothing\)/);
  });

  it('gives both batched speeds', () => {
    const batched = { engine: 'engine 1.0', streams: 8, oneStreamTokensPerSecond: 10, streamsTokensPerSecond: 40 };
    expect(readBatchedReport(batched, 'driver')).toEqual(batched);
    expect(() => readBatchedReport({ ...batched, streamsTokensPerSecond: Number.NaN }, 'driver')).toThrow(/no streamsTokensPerSecond/);
  });

  it('comes from a fresh process, whose failure shows the driver\'s last words', async () => {
    const folder = await mkdtemp(path.join(os.tmpdir(), 'peers-driver-'));
    folders.push(folder);
    const speaks = path.join(folder, 'speaks.mjs');
    await writeFile(speaks, `console.log('log line'); console.log(JSON.stringify({ args: process.argv.slice(2) }));`);
    expect(await runInFreshProcess(speaks, ['--threads', '2'], undefined)).toEqual({ args: ['--threads', '2'] });
    const fails = path.join(folder, 'fails.mjs');
    await writeFile(fails, `process.stderr.write('at somewhere\\nENOENT: no such file, open model.gguf\\n'); process.exit(1);`);
    await expect(runInFreshProcess(fails, ['x.gguf'], undefined)).rejects.toThrow(
      'node fails.mjs x.gguf failed: at somewhere | ENOENT: no such file, open model.gguf',
    );
  });
});
