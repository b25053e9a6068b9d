import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { ELEMENT_TYPE_CODES } from './graph.js';

const { onnx } = onnxProto;

interface PieceValues {
  /** Values it takes: the whole graph's inputs, or values earlier pieces produce. */
  inputs: string[];
  /** Of its inputs, those no later piece reads and the whole graph does not output: free once it has run. */
  lastReadHere: string[];
}

/** A run of consecutive nodes as a model of its own, over the same external data file as the whole. */
export interface GraphSegment extends PieceValues {
  kind: 'segment';
  model: Uint8Array;
  /** Values it produces that later pieces or the whole graph's outputs use. */
  outputs: string[];
}

/** A node the graph was cut at, for the caller to run by other means; `inputs` in the node's order. */
export interface CutNode extends PieceValues {
  kind: 'node';
  node: OnnxTypes.INodeProto;
  /** Its inputs that are initializers, by name (their bytes in the external data file, or in the tensor). */
  initializers: Map<string, OnnxTypes.ITensorProto>;
}

export type GraphPiece = GraphSegment | CutNode;

export interface SplitGraph {
  pieces: GraphPiece[];
  /** The whole graph's outputs. */
  outputs: string[];
  /** How many nodes `isCut` picked. */
  cuts: number;
}

/**
 * Splits a model at the nodes `isCut` picks: the nodes between two cut nodes become a model of their own, the cut
 * nodes stay nodes. Running the pieces in order, each on the values the earlier ones produced, computes what the
 * whole graph does; this is how a runtime that lacks a fast kernel for one op gets it from elsewhere while the
 * graph builder stays the one description of the model. Initializers stay external data at their offsets in the
 * same weights file, and each piece's model holds only the initializers its nodes use.
 */
export function splitGraph(modelBytes: Uint8Array, isCut: (node: OnnxTypes.INodeProto) => boolean): SplitGraph {
  const model = onnx.ModelProto.decode(modelBytes);
  const graph = model.graph;
  if (!graph) throw new Error('splitGraph: the model has no graph');
  const initializers = new Map((graph.initializer ?? []).map((tensor) => [tensor.name!, tensor]));
  const types = elementTypes(graph, initializers);
  const graphOutputs = new Set((graph.output ?? []).map((output) => output.name!));
  const declared = new Map([...(graph.input ?? []), ...(graph.output ?? [])].map((info) => [info.name!, info]));
  const valueInfo = (name: string) => declared.get(name) ?? onnx.ValueInfoProto.create({ name, type: { tensorType: { elemType: types.get(name) } } });

  const groups: Array<OnnxTypes.INodeProto[] | OnnxTypes.INodeProto> = [];
  let run: OnnxTypes.INodeProto[] = [];
  for (const node of graph.node ?? []) {
    if (!isCut(node)) {
      run.push(node);
      continue;
    }
    if (run.length > 0) groups.push(run);
    groups.push(node);
    run = [];
  }
  if (run.length > 0) groups.push(run);

  // Each group's value inputs (in first-use order), and the last group that reads each value.
  const groupInputs = groups.map((group) => {
    const nodes = Array.isArray(group) ? group : [group];
    const produced = new Set(nodes.flatMap((node) => node.output ?? []));
    const names = nodes.flatMap((node) => node.input ?? []).filter((name) => name && !produced.has(name) && !initializers.has(name));
    return [...new Set(names)];
  });
  const lastReader = new Map<string, number>();
  groupInputs.forEach((inputs, index) => inputs.forEach((name) => lastReader.set(name, index)));
  const readBy = (index: number) => {
    const inputs = groupInputs[index]!;
    return { inputs, lastReadHere: inputs.filter((name) => lastReader.get(name) === index && !graphOutputs.has(name)) };
  };

  const pieces = groups.map((group, index): GraphPiece => {
    if (!Array.isArray(group)) {
      const used = (group.input ?? []).filter((name) => initializers.has(name));
      return { kind: 'node', node: group, ...readBy(index), initializers: new Map(used.map((name) => [name, initializers.get(name)!])) };
    }
    const produced = group.flatMap((node) => node.output ?? []);
    const used = [...new Set(group.flatMap((node) => node.input ?? []))].filter((name) => initializers.has(name));
    const outputs = produced.filter((value) => graphOutputs.has(value) || (lastReader.get(value) ?? -1) > index);
    const { inputs, lastReadHere } = readBy(index);
    const segment = onnx.ModelProto.create({
      ...model,
      graph: {
        name: `${graph.name}_${index}`,
        node: group,
        initializer: used.map((name) => initializers.get(name)!),
        input: inputs.map(valueInfo),
        output: outputs.map(valueInfo),
      },
    });
    return { kind: 'segment', model: onnx.ModelProto.encode(segment).finish(), inputs, lastReadHere, outputs };
  });
  return { pieces, outputs: [...graphOutputs], cuts: pieces.filter((piece) => piece.kind === 'node').length };
}

/**
 * The element type of every value, from the graph's inputs and initializers through each node. A segment's
 * inputs and outputs must declare one; the rules cover the ops the graph builder emits, and an op without one
 * is named rather than guessed.
 */
function elementTypes(graph: OnnxTypes.IGraphProto, initializers: Map<string, OnnxTypes.ITensorProto>): Map<string, number> {
  const types = new Map<string, number>();
  for (const input of graph.input ?? []) types.set(input.name!, input.type?.tensorType?.elemType ?? 0);
  for (const [name, tensor] of initializers) types.set(name, tensor.dataType ?? 0);
  for (const node of graph.node ?? []) {
    const first = types.get(node.input?.[0] ?? '');
    const attribute = (name: string) => node.attribute?.find((a) => a.name === name);
    for (const [index, output] of (node.output ?? []).entries()) {
      if (!output) continue;
      let type: number | undefined;
      switch (node.opType) {
        case 'Shape':
        case 'ArgMax':
          type = ELEMENT_TYPE_CODES.int64;
          break;
        case 'TopK':
          type = index === 1 ? ELEMENT_TYPE_CODES.int64 : first;
          break;
        case 'Cast':
          type = Number(attribute('to')?.i);
          break;
        case 'Constant':
          type = attribute('value')?.t?.dataType ?? undefined;
          break;
        case 'Where':
          type = types.get(node.input?.[1] ?? '');
          break;
        case 'Equal':
        case 'Less':
        case 'Greater':
        case 'Not':
        case 'And':
        case 'Or':
          type = onnx.TensorProto.DataType.BOOL;
          break;
        case 'QuantizeLinear':
          type = types.get(node.input?.[2] ?? '') ?? ELEMENT_TYPE_CODES.uint8;
          break;
        case 'MatMulInteger':
          type = ELEMENT_TYPE_CODES.int32;
          break;
        case 'MatMulIntegerToFloat':
          type = types.get(node.input?.[2] ?? '');
          break;
        default:
          type = SAME_AS_FIRST_INPUT.has(node.opType ?? '') ? first : undefined;
      }
      if (!type) throw new Error(`splitGraph: cannot tell the element type of '${output}' (op ${node.opType} has no rule)`);
      types.set(output, type);
    }
  }
  return types;
}

/** Ops whose outputs have the element type of their first input. */
const SAME_AS_FIRST_INPUT = new Set([
  'Add', 'Sub', 'Mul', 'Div', 'Neg', 'Max', 'Min', 'Pow', 'Sqrt', 'Exp', 'Log', 'Tanh', 'Erf', 'Sigmoid', 'Relu', 'Abs', 'Round',
  'Softmax', 'LogSoftmax', 'LayerNormalization', 'Gelu', 'FastGelu', 'MatMul', 'Gemm', 'Conv', 'MatMulNBits',
  'Reshape', 'Transpose', 'Squeeze', 'Unsqueeze', 'Slice', 'Concat', 'Split', 'Gather', 'GatherElements', 'ScatterElements', 'Expand',
  'Identity', 'Tile', 'ReduceMax', 'ReduceMin', 'ReduceSum', 'ReduceMean', 'ReduceLogSumExp', 'CumSum', 'Range', 'Trilu',
]);
