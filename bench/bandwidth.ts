import { openTimedGraph } from './fastest-run.js';
import { GraphBuilder, OrtTensor } from './internals.js';

const K = 8192;
const N = 32768;

/**
 * The machine's memory read bandwidth as ONNX Runtime sees it: a float32 GEMV over a 1 GiB weight read in place
 * (far larger than any cache) reads every byte once per run. Fastest of several runs, in bytes per second.
 */
export async function measureReadBandwidth(threads?: number): Promise<number> {
  const probe = await openBandwidthProbe(threads);
  try {
    return await probe.measure();
  } finally {
    await probe.close();
  }
}

/** The same probe kept open, for measuring the bandwidth again in every round of an interleaved comparison. */
export async function openBandwidthProbe(threads?: number): Promise<{ measure(): Promise<number>; close(): Promise<void> }> {
  const [g, feeds] = probeGraph();
  const timed = await openTimedGraph(g, feeds, { threads, prepackWeights: false }, 'Preparing bandwidth probe');
  return { measure: async () => (N * K * 4) / (await timed.fastest()), close: () => timed.close() };
}

function probeGraph(): [GraphBuilder, Record<string, OrtTensor>] {
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [1, K]);
  const w = g.weight('w', 'float32', [N, K], async () => Float32Array.from({ length: N * K }, (_, i) => ((i * 7919) % 1000) / 1000));
  g.output(g.node('Gemm', [x, w], { transB: 1 }), 'y', 'float32', [1, N]);
  return [g, { x: new OrtTensor('float32', new Float32Array(K).fill(1), [1, K]) }];
}
