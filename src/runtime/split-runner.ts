import type { onnx as OnnxTypes } from 'onnx-proto';
import { type CutNode, type GraphPiece, splitGraph } from '../onnx/split.js';
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

interface PlannedPiece {
  piece: GraphPiece;
  runner: SegmentSession | CutNodeRunner;
  /** Values no later piece reads. */
  lastUse: Set<string>;
}

/**
 * A model run as pieces: segments of the graph in ONNX Runtime sessions, and the nodes it was cut at by a
 * kernel of the caller's. Outputs of one piece feed the next; a value is dropped after the last piece that reads it.
 */
export class SplitRunner implements InferenceRunner {
  readonly zeroSizedTensors = true;

  private constructor(
    private readonly pieces: PlannedPiece[],
    private readonly graphOutputs: string[],
    private readonly releaseAll: () => Promise<void>,
  ) {}

  static async open(
    model: Uint8Array,
    isCut: (node: OnnxTypes.INodeProto) => boolean,
    openSegment: (model: Uint8Array) => Promise<SegmentSession>,
    kernel: CutNodeKernel,
  ): Promise<SplitRunner> {
    const { pieces, outputs } = splitGraph(model, isCut);
    const sessions: SegmentSession[] = [];
    const releaseAll = async () => {
      await Promise.all(sessions.map((session) => session.release()));
      await kernel.release?.();
    };
    const runners: Array<SegmentSession | CutNodeRunner> = [];
    try {
      for (const piece of pieces) {
        if (piece.kind === 'node') {
          runners.push(await kernel.prepare(piece));
        } else {
          const session = await openSegment(piece.model);
          sessions.push(session);
          runners.push(session);
        }
      }
    } catch (error) {
      await releaseAll();
      throw error;
    }
    kernel.prepared?.();
    const lastReader = new Map<string, number>();
    pieces.forEach((piece, index) => {
      for (const input of piece.inputs) lastReader.set(input, index);
    });
    const planned = pieces.map((piece, index) => ({
      piece,
      runner: runners[index]!,
      lastUse: new Set([...lastReader].filter(([, last]) => last === index).map(([name]) => name)),
    }));
    return new SplitRunner(planned, outputs, releaseAll);
  }

  async run(feeds: Record<string, OrtTensor>, fetches?: readonly string[]): Promise<Record<string, OrtTensor>> {
    const values = new Map(Object.entries(feeds));
    const wanted = new Set(fetches ?? this.graphOutputs);
    const take = (name: string) => {
      const value = values.get(name);
      if (!value) throw new Error(`the model's input '${name}' was not fed`);
      return value;
    };
    for (const { piece, runner, lastUse } of this.pieces) {
      const inputs = Object.fromEntries(piece.inputs.map((name) => [name, take(name)]));
      if (piece.kind === 'segment') {
        const outputs = await (runner as SegmentSession).run(inputs);
        for (const name of piece.outputs) values.set(name, outputs[name]!);
      } else {
        const outputs = await (runner as CutNodeRunner).run(inputs);
        (piece.node.output ?? []).forEach((name, i) => values.set(name, outputs[i]!));
      }
      for (const name of lastUse) if (!wanted.has(name)) values.delete(name);
    }
    return Object.fromEntries([...wanted].map((name) => [name, take(name)]));
  }

  release(): Promise<void> {
    return this.releaseAll();
  }
}
