import os from 'node:os';
import path from 'node:path';
import './no-telemetry.js';
import ort from 'onnxruntime-node';
import type { InferenceRunner, OrtTensor } from './tensor.js';
import { loadWeightsIntoMemory, type WeightsInMemory } from './weights-in-memory.js';

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
  /**
   * Let ONNX Runtime plan a memory pattern per input shape (default true). Training turns it off: on the 125M
   * shape (block 512 x batch 4) the pattern, planned on top of what the arena already holds, added 0.8 GB of
   * peak RSS and no speed. The arena itself stays: without it every step was 2.5 times slower.
   */
  memoryPattern?: boolean;
  /** Where a model given as bytes finds its external data file. */
  externalDataFolder?: string;
}

/** An ONNX Runtime CPU session over a model file on disk (its external weights next to it), or a model in memory. */
export class RuntimeSession implements InferenceRunner {
  private constructor(
    private readonly session: ort.InferenceSession,
    /** Weights fed as inputs on every run, when the model was opened with them in memory. */
    private readonly weights?: WeightsInMemory,
  ) {}

  /**
   * Opens the model at `modelPath` with its overridable external weights (those ONNX Runtime reads in place) read
   * into process memory in 2 MiB pages and fed as inputs on every run, instead of memory-mapped from the file by
   * ONNX Runtime (see weights-in-memory.ts). The other weights are read from the file as usual.
   */
  static async createWithWeightsInMemory(modelPath: string, options: RuntimeOptions = {}): Promise<RuntimeSession> {
    const weights = await loadWeightsIntoMemory(modelPath);
    try {
      // Weights left external are found next to the model file, as when ONNX Runtime opens it by path.
      const { session } = await RuntimeSession.create(weights.model, { ...options, externalDataFolder: path.dirname(modelPath) });
      return new RuntimeSession(session, weights);
    } catch (error) {
      weights.release();
      throw error;
    }
  }

  static async create(model: string | Uint8Array, options: RuntimeOptions = {}): Promise<RuntimeSession> {
    const threads = options.threads ?? os.availableParallelism();
    if (!Number.isInteger(threads) || threads < 1) {
      throw new Error(`threads must be a positive integer, got ${options.threads}`);
    }
    const sessionOptions: ort.InferenceSession.SessionOptions = {
      executionProviders: ['cpu'],
      intraOpNumThreads: threads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      // Errors only: ONNX Runtime warns about overridable initializers, which fp32's head is on purpose.
      logSeverityLevel: 3,
      enableMemPattern: options.memoryPattern !== false,
      // Session config entries (onnxruntime_session_options_config_keys.h), passed as strings.
      extra: {
        session: {
          disable_prepacking: options.prepackWeights === false ? '1' : '0',
          intra_op: { allow_spinning: options.spinning === false ? '0' : '1' },
          ...(options.externalDataFolder && { model_external_initializers_file_folder_path: options.externalDataFolder }),
        },
      },
    };
    // Two calls: create's overloads take a path or bytes, not their union.
    const session = await (typeof model === 'string'
      ? ort.InferenceSession.create(model, sessionOptions)
      : ort.InferenceSession.create(model, sessionOptions));
    return new RuntimeSession(session);
  }

  /** Runs the graph; `fetches` names the outputs wanted (default all), so unwanted ones are not copied out. */
  async run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>> {
    const all = this.weights ? { ...feeds, ...this.weights.feeds } : feeds;
    return fetches ? this.session.run(all, fetches) : this.session.run(all);
  }

  async release(): Promise<void> {
    await this.session.release();
    this.weights?.release();
  }
}
