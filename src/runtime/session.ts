import os from 'node:os';
import ort from 'onnxruntime-node';
import type { InferenceRunner, OrtTensor } from './tensor.js';

export { OrtTensor } from './tensor.js';

export interface RuntimeOptions {
  /** Intra-op threads; default: the number of cores. */
  threads?: number;
  /**
   * Let ONNX Runtime repack constant weights into its kernels' layouts at load (default true). Float32
   * GEMV runs as fast on the stored layout, and without repacking the weights stay memory-mapped from
   * disk instead of being copied: no second copy in RAM and a load that takes a fraction of a second.
   * Quantized kernels need it: 4-bit MatMulNBits ran ~100x and the int8 GEMM 4x slower without.
   */
  prepackWeights?: boolean;
  /**
   * Worker threads spin briefly while waiting for work (default true, as in ONNX Runtime). `npm run bench`
   * measures both: on the 2-core machine here neither won consistently (each was ahead by up to 11% in some run).
   */
  spinning?: boolean;
}

/** An ONNX Runtime CPU session over a model file on disk (its external weights next to it). */
export class RuntimeSession implements InferenceRunner {
  private constructor(private readonly session: ort.InferenceSession) {}

  static async create(modelPath: string, options: RuntimeOptions = {}): Promise<RuntimeSession> {
    const threads = options.threads ?? os.availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) {
      throw new Error(`threads must be a positive integer, got ${options.threads}`);
    }
    const session = await ort.InferenceSession.create(modelPath, {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      // Errors only: ONNX Runtime warns about overridable initializers, which the q8 head is on purpose.
      logSeverityLevel: 3,
      // Session config entries (onnxruntime_session_options_config_keys.h), passed as strings.
      extra: {
        session: {
          disable_prepacking: options.prepackWeights === false ? '1' : '0',
          intra_op: { allow_spinning: options.spinning === false ? '0' : '1' },
        },
      },
    });
    return new RuntimeSession(session);
  }

  /** Runs the graph; `fetches` names the outputs wanted (default all), so unwanted ones are not copied out. */
  async run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>> {
    return fetches ? this.session.run(feeds, fetches) : this.session.run(feeds);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
