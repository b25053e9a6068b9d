import type { GraphBuilder } from '../onnx/graph.js';
import { serializeOnnxModel } from '../onnx/write.js';
import { RuntimeSession, type OrtTensor } from '../runtime/session.js';

/** A training graph in its ONNX Runtime session, with the inputs it kept (a slice of the model leaves some out). */
export class GraphSession {
  private constructor(
    private readonly session: RuntimeSession,
    readonly inputs: readonly string[],
  ) {}

  /** Training graphs hold no weights (every parameter is an input), so each is a small protobuf loaded from memory. */
  static async create(g: GraphBuilder, threads: number | undefined): Promise<GraphSession> {
    if (g.weights.length > 0) throw new Error(`a training graph takes its parameters as inputs, but has weight '${g.weights[0]!.name}'`);
    const session = await RuntimeSession.create(await serializeOnnxModel(g, async () => {}), { threads, memoryPattern: false });
    return new GraphSession(session, g.inputs.map((input) => input.name));
  }

  /** Runs the graph with the value `feed` gives for each of its inputs. */
  async run(feed: (input: string) => OrtTensor): Promise<Record<string, OrtTensor>> {
    return this.session.run(Object.fromEntries(this.inputs.map((input) => [input, feed(input)])));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
