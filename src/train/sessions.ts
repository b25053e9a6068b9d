import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { GraphBuilder } from '../onnx/graph.js';
import { MODEL_FILE, serializeOnnxModel } from '../onnx/write.js';
import { type OrtTensor, RuntimeSession } from '../runtime/session.js';

/** A training graph in its ONNX Runtime session, with the inputs it kept (a slice of the model leaves some out). */
export class GraphSession {
  private constructor(
    private readonly session: RuntimeSession,
    readonly inputs: readonly string[],
  ) {}

  /** Training graphs hold no weights (every parameter is an input), so each is a small file, loaded and deleted. */
  static async create(g: GraphBuilder, threads: number | undefined): Promise<GraphSession> {
    if (g.weights.length > 0) throw new Error(`a training graph takes its parameters as inputs, but has weight '${g.weights[0]!.name}'`);
    const folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-train-'));
    try {
      const file = path.join(folder, MODEL_FILE);
      await writeFile(file, await serializeOnnxModel(g, async () => {}));
      return new GraphSession(await RuntimeSession.create(file, { threads }), g.inputs.map((input) => input.name));
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  }

  /** Runs the graph with the value `feed` gives for each of its inputs. */
  async run(feed: (input: string) => OrtTensor): Promise<Record<string, OrtTensor>> {
    return this.session.run(Object.fromEntries(this.inputs.map((input) => [input, feed(input)])));
  }

  async release(): Promise<void> {
    await this.session.release();
  }
}
