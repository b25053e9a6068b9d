import os from 'node:os';
import ort from 'onnxruntime-node';
import type { GraphBuilder } from '../onnx/graph.js';
import { serializeOnnxModel } from '../onnx/write.js';
import type { OrtTensor } from '../runtime/session.js';

/** A training graph in its ONNX Runtime session, with the inputs it kept (a slice of the model leaves some out). */
export class GraphSession {
  private constructor(
    private readonly session: ort.InferenceSession,
    readonly inputs: readonly string[],
  ) {}

  /** Training graphs hold no weights (every parameter is an input), so each is a small protobuf loaded from memory. */
  static async create(g: GraphBuilder, threads: number | undefined): Promise<GraphSession> {
    if (g.weights.length > 0) throw new Error(`a training graph takes its parameters as inputs, but has weight '${g.weights[0]!.name}'`);
    const intraOpNumThreads = threads ?? os.availableParallelism();
    if (!Number.isInteger(intraOpNumThreads) || intraOpNumThreads < 1) throw new Error(`threads must be a positive integer, got ${threads}`);
    const session = await ort.InferenceSession.create(await serializeOnnxModel(g, async () => {}), {
      executionProviders: ['cpu'],
      intraOpNumThreads,
      interOpNumThreads: 1,
      graphOptimizationLevel: 'all',
      logSeverityLevel: 3,
      // Measured on the 125M shape (block 512 x batch 4): a memory pattern, which ONNX Runtime plans per input
      // shape on top of what its arena already holds, added 0.8 GB of peak RSS and no speed. The arena stays:
      // without it every step was 2.5 times slower (fresh memory is faulted in at every allocation).
      enableMemPattern: false,
    });
    return new GraphSession(session, g.inputs.map((input) => input.name));
  }

  /** Runs the graph with the value `feed` gives for each of its inputs. */
  async run(feed: (input: string) => OrtTensor): Promise<Record<string, OrtTensor>> {
    return (await this.session.run(Object.fromEntries(this.inputs.map((input) => [input, feed(input)])))) as Record<string, OrtTensor>;
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
