import { GraphBuilder } from '../onnx/graph.js';
import { OrtTensor } from '../runtime/session.js';
import { fastestRun } from './fastest-run.js';

/**
 * The machine's memory read bandwidth as ONNX Runtime sees it: a float32 GEMV over a 1 GiB weight read in place
 * (far larger than any cache) reads every byte once per run. Fastest of several runs, in bytes per second.
 */
export async function measureReadBandwidth(threads?: number): Promise<number> {
  const K = 8192;
  const N = 32768;
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [1, K]);
  const w = g.weight('w', 'float32', [N, K], async () => Float32Array.from({ length: N * K }, (_, i) => ((i * 7919) % 1000) / 1000));
  g.output(g.node('Gemm', [x, w], { transB: 1 }), 'y', 'float32', [1, N]);
  const feeds = { x: new OrtTensor('float32', new Float32Array(K).fill(1), [1, K]) };
  const seconds = await fastestRun(g, feeds, { threads, prepackWeights: false }, 'Preparing bandwidth probe');
  return (N * K * 4) / seconds;
}
