import os from 'node:os';
import ort from 'onnxruntime-node';

export type OrtTensor = ort.Tensor;
export const OrtTensor = ort.Tensor;

export interface RuntimeOptions {
  /** Intra-op threads; default: the number of cores. */
  threads?: number;
}

/** An ONNX Runtime CPU session over a model file on disk (its external weights next to it). */
export class RuntimeSession {
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
    });
    return new RuntimeSession(session);
  }

  get inputNames(): readonly string[] {
    return this.session.inputNames;
  }

  async run(feeds: Record<string, ort.Tensor>): Promise<Record<string, ort.Tensor>> {
    return this.session.run(feeds);
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
