import { mkdir, open, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto, { type onnx as OnnxTypes } from 'onnx-proto';
import { stagingPath } from '../util/atomic-write.js';
import { startProgress } from '../util/progress.js';
import { ELEMENT_TYPE_CODES, type ElementType, type GraphBuilder, valueInfoProto } from './graph.js';

const { onnx } = onnxProto;

export const MODEL_FILE = 'model.onnx';
export const WEIGHTS_FILE = 'weights.bin';

/** Weight offsets are aligned so ONNX Runtime can memory-map them instead of copying. */
const WEIGHT_ALIGNMENT = 64 * 1024;

const ELEMENT_BYTES: Record<ElementType, number> = { float32: 4, float64: 8, float16: 2, int64: 8, int32: 4, uint8: 1, int8: 1 };

/**
 * Writes the graph as `model.onnx` with every weight in the external data file `weights.bin`
 * (an ONNX protobuf cannot exceed 2 GB; GPT-Neo 1.3B in float32 is 5.3 GB). Weights are produced and
 * written one at a time, so memory stays at one tensor. The folder appears atomically when complete.
 */
export async function writeOnnxModel(graph: GraphBuilder, folder: string, label = 'Converting weights'): Promise<void> {
  const staging = stagingPath(folder);
  await mkdir(staging, { recursive: true });
  const progress = startProgress(label, weightsFileSize(graph), 'bytes');
  const file = await open(path.join(staging, WEIGHTS_FILE), 'w');
  let model: Uint8Array;
  try {
    model = await serializeOnnxModel(
      graph,
      async (bytes, offset) => {
        await file.write(bytes, 0, bytes.byteLength, offset);
      },
      (done) => progress.update(done),
    );
  } finally {
    await file.close();
    progress.stop();
  }
  await writeFile(path.join(staging, MODEL_FILE), model);
  await rm(folder, { recursive: true, force: true });
  await rename(staging, folder);
}

/** Bytes of the external data file for `graph`: every weight at an aligned offset. */
export function weightsFileSize(graph: GraphBuilder): number {
  return graph.weights.reduce((end, w) => alignWeightOffset(end) + byteLength(w.type, w.dims), 0);
}

function alignWeightOffset(offset: number): number {
  return Math.ceil(offset / WEIGHT_ALIGNMENT) * WEIGHT_ALIGNMENT;
}

/** Where an initializer written by serializeOnnxModel keeps its bytes; undefined for one stored in the model itself. */
export function externalDataOf(tensor: OnnxTypes.ITensorProto): { location: string; offset: number; length: number } | undefined {
  const entries = new Map((tensor.externalData ?? []).map((entry) => [entry.key, entry.value]));
  const location = entries.get('location');
  if (tensor.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL || !location) return undefined;
  return { location, offset: Number(entries.get('offset') ?? 0), length: Number(entries.get('length')) };
}

/**
 * Produces the weights one at a time, hands each to `writeWeight` at its offset in `weights.bin`, and returns
 * the model protobuf that refers to them. Node writes to a file, the browser build to its own storage.
 * `onProgress` gets the end of the data written so far (reaching weightsFileSize at the last weight).
 */
export async function serializeOnnxModel(
  graph: GraphBuilder,
  writeWeight: (bytes: Uint8Array, offset: number) => Promise<void>,
  onProgress: (writtenBytes: number) => void = () => {},
): Promise<Uint8Array> {
  const initializers = [];
  let offset = 0;
  for (const weight of graph.weights) {
    const data = await weight.produce();
    const expected = byteLength(weight.type, weight.dims);
    if (data.byteLength !== expected) {
      throw new Error(
        `weight '${weight.name}' has ${data.byteLength} bytes, expected ${expected} for ${weight.type}[${weight.dims.join(', ')}]`,
      );
    }
    offset = alignWeightOffset(offset);
    await writeWeight(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), offset);
    initializers.push(
      onnx.TensorProto.create({
        name: weight.name,
        dataType: ELEMENT_TYPE_CODES[weight.type],
        dims: weight.dims,
        dataLocation: onnx.TensorProto.DataLocation.EXTERNAL,
        externalData: [
          { key: 'location', value: WEIGHTS_FILE },
          { key: 'offset', value: String(offset) },
          { key: 'length', value: String(data.byteLength) },
        ],
      }),
    );
    offset += data.byteLength;
    onProgress(offset);
  }
  const model = onnx.ModelProto.create({
    irVersion: 10,
    producerName: 'gpt-neo',
    opsetImport: [
      { domain: '', version: 21 },
      { domain: 'com.microsoft', version: 1 },
    ],
    graph: {
      name: 'gpt_neo',
      node: graph.nodes,
      initializer: [...graph.constants, ...initializers],
      input: graph.inputs.map(valueInfoProto),
      output: graph.outputs.map(valueInfoProto),
    },
  });
  return onnx.ModelProto.encode(model).finish();
}

function byteLength(type: ElementType, dims: number[]): number {
  return dims.reduce((a, b) => a * b, 1) * ELEMENT_BYTES[type];
}
