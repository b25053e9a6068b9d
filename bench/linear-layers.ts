import type { WeightFormat } from '../src/index.js';
import { GPT_NEO_1_3B_CONFIG, noise } from '../test/helpers/random-checkpoint.js';
import { fastestRun } from './fastest-run.js';
import {
  type Checkpoint,
  checkpointParameters,
  type Float32Kernel,
  GraphBuilder,
  LINEAR_BYTES_PER_PARAMETER,
  OrtTensor,
  parseConfig,
  type TensorInfo,
} from './internals.js';

/** As many weights as GPT-Neo 1.3B's blocks (24 x 50.3M), in 2048 -> 8192 layers like its c_fc. */
const K = 2048;
const N = 8192;
const LAYERS = 72;

/** `layers` random N x K linear layers over one input x [1, K], built as the model builds them in `format`. */
export function randomLinearLayers(format: WeightFormat, layers: number, N: number, K: number, float32Kernel: Float32Kernel = 'gemm'): GraphBuilder {
  const names = Array.from({ length: layers }, (_, i) => `linear.${i}`);
  const tensors = new Map<string, TensorInfo>(names.map((name) => [`${name}.weight`, { name: `${name}.weight`, dtype: 'F32', shape: [N, K] }]));
  const checkpoint: Checkpoint = {
    tensors,
    files: [],
    readFloat32: async (name) => noise(N * K, names.indexOf(name.replace(/\.weight$/, '')) + 1),
    close: async () => {},
  };
  const g = new GraphBuilder();
  const x = g.input('x', 'float32', [1, K]);
  const params = checkpointParameters(g, checkpoint, parseConfig(GPT_NEO_1_3B_CONFIG), format, 'random linear layers', float32Kernel);
  names.forEach((name, i) => g.output(params.linear(x, name, N, K, false), `y.${i}`, 'float32', [1, N]));
  return g;
}

/**
 * The ceiling of batch-1 decoding in one weight format: the bytes per second that ONNX Runtime's kernels reach
 * on the project's linear layers alone (built as for the model, with their activation quantization), one token
 * through 1.2 B random parameters with nothing else in the graph. Fastest of several runs.
 */
export async function measureLinearLayers(format: WeightFormat, threads?: number): Promise<number> {
  // fp32 as Node runs it with its weights in memory (the default on Linux): convolutions.
  const g = randomLinearLayers(format, LAYERS, N, K, 'conv');
  const feeds = { x: new OrtTensor('float32', noise(K, 0), [1, K]) };
  // As the model runs them: float32 weights in place, quantized ones repacked for their kernels.
  const seconds = await fastestRun(g, feeds, { threads, prepackWeights: format !== 'fp32' }, `Preparing ${format} linear layers`);
  return (LAYERS * N * K * LINEAR_BYTES_PER_PARAMETER[format]) / seconds;
}
