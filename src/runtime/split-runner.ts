import type { CutNode, GraphSegment, SplitGraph } from '../onnx/split.js';
import type { InferenceRunner, OrtTensor } from './tensor.js';

/** A session over one segment's model, as onnxruntime-node and onnxruntime-web both open them. */
export interface SegmentSession {
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}

/** One node the graph was cut at, prepared once (its weights loaded): its value inputs in, its outputs out in the node's order. */
export interface CutNodeRunner {
  run(inputs: Record<string, OrtTensor>): Promise<OrtTensor[]> | OrtTensor[];
}

/** What runs the nodes the graph was cut at. */
export interface CutNodeKernel {
  prepare(node: CutNode): Promise<CutNodeRunner> | CutNodeRunner;
  /** Every node is prepared: what was held only for preparing them (e.g. the weights file) can go. */
  prepared?(): void;
  release?(): Promise<void> | void;
}

type PreparedPiece = { piece: GraphSegment; session: SegmentSession } | { piece: CutNode; runner: CutNodeRunner };

/**
 * A model run as pieces (splitGraph): segments of the graph in ONNX Runtime sessions, and the nodes it was cut at
 * by a kernel of the caller's. Outputs of one piece feed the next; a value is dropped after the last piece that reads it.
 */
export class SplitRunner implements InferenceRunner {
  readonly zeroSizedTensors = true;

  private constructor(
    private readonly pieces: PreparedPiece[],
    private readonly graphOutputs: string[],
    private readonly releaseAll: () => Promise<void>,
  ) {}

  static async open(
    split: SplitGraph,
    openSegment: (model: Uint8Array) => Promise<SegmentSession>,
    kernel: CutNodeKernel,
  ): Promise<SplitRunner> {
    const sessions: SegmentSession[] = [];
    const releaseAll = async () => {
      await Promise.all(sessions.map((session) => session.release()));
      await kernel.release?.();
    };
    const pieces: PreparedPiece[] = [];
    try {
      for (const piece of split.pieces) {
        if (piece.kind === 'node') {
          pieces.push({ piece, runner: await kernel.prepare(piece) });
        } else {
          const session = await openSegment(piece.model);
          sessions.push(session);
          pieces.push({ piece, session });
        }
      }
    } catch (error) {
      await releaseAll();
      throw error;
    }
    kernel.prepared?.();
    return new SplitRunner(pieces, split.outputs, releaseAll);
  }

  async run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>> {
    const values = new Map(Object.entries(feeds));
    const wanted = new Set(fetches ?? this.graphOutputs);
    const take = (name: string) => {
      const value = values.get(name);
      if (!value) throw new Error(`the model's input '${name}' was not fed`);
      return value;
    };
    for (const prepared of this.pieces) {
      const { piece } = prepared;
      const inputs = Object.fromEntries(piece.inputs.map((name) => [name, take(name)]));
      if ('session' in prepared) {
        const outputs = await prepared.session.run(inputs);
        for (const name of prepared.piece.outputs) values.set(name, outputs[name]!);
      } else {
        const outputs = await prepared.runner.run(inputs);
        (prepared.piece.node.output ?? []).forEach((name, i) => values.set(name, outputs[i]!));
      }
      for (const name of piece.lastReadHere) values.delete(name);
    }
    return Object.fromEntries([...wanted].map((name) => [name, take(name)]));
  }

  release(): Promise<void> {
    return this.releaseAll();
  }
}
