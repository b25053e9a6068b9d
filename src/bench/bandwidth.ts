import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { GraphBuilder } from '../onnx/graph.js';
import { MODEL_FILE, writeOnnxModel } from '../onnx/write.js';
import { OrtTensor, RuntimeSession } from '../runtime/session.js';

/**
 * The machine's memory read bandwidth as ONNX Runtime sees it: a float32 GEMV over a 1 GiB weight read in place
 * (far larger than any cache) reads every byte once per run. Best of several runs, in bytes per second.
 */
export async function measureReadBandwidth(threads?: number): Promise<number> {
  const K = 8192;
  const N = 32768;
  const folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-bandwidth-'));
  try {
    const g = new GraphBuilder();
    const x = g.input('x', 'float32', [1, K]);
    const w = g.weight('w', 'float32', [N, K], async () => Float32Array.from({ length: N * K }, (_, i) => ((i * 7919) % 1000) / 1000));
    g.output(g.node('Gemm', [x, w], { transB: 1 }), 'y', 'float32', [1, N]);
    await writeOnnxModel(g, path.join(folder, 'gemv'), 'Preparing bandwidth probe');
    const session = await RuntimeSession.create(path.join(folder, 'gemv', MODEL_FILE), { threads, prepackWeights: false });
    const feeds = { x: new OrtTensor('float32', new Float32Array(K).fill(1), [1, K]) };
    let best = Infinity;
    for (let run = 0; run < 12; run++) {
      const started = performance.now();
      await session.run(feeds);
      if (run >= 2) best = Math.min(best, (performance.now() - started) / 1000);
    }
    await session.release();
    return (N * K * 4) / best;
  } finally {
    await rm(folder, { recursive: true, force: true });
  }
}
