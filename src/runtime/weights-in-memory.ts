// A converted model's weights read into process memory backed by 2 MiB pages, fed to ONNX Runtime as graph
// inputs over that memory without a copy.
//
// Why: float32 decoding reads every weight once per token, so it runs at memory bandwidth, and how the pages
// are backed decides how close it gets. ONNX Runtime memory-maps external weights; that mapping's page cache
// comes back in 4 KiB folios once the kernel has evicted it (this project's host pages out idle cache within a
// minute), and a 5 GB stream through 4 KiB pages misses the TLB all the time. Anonymous memory with
// MADV_HUGEPAGE is backed by 2 MiB pages on any Linux with transparent huge pages in `madvise` or `always`.
// ONNX Runtime's own copies (pre-packing, in-memory external data) were measured too: 20x the load time, or
// twice the weights in RSS (docs/speed.md).
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { ELEMENT_TYPE_CODES, valueInfoProto } from '../onnx/graph.js';
import { externalDataOf } from '../onnx/write.js';
import { HugePageRegion } from './huge-pages.js';
import { OrtTensor } from './tensor.js';

const { onnx } = onnxProto;

/** The element types a converted model stores externally, and a tensor of each over bytes of the region. */
const TENSOR_OVER = {
  float32: (bytes: ArrayBuffer, dims: number[]) => new OrtTensor('float32', new Float32Array(bytes), dims),
  int64: (bytes: ArrayBuffer, dims: number[]) => new OrtTensor('int64', new BigInt64Array(bytes), dims),
  int8: (bytes: ArrayBuffer, dims: number[]) => new OrtTensor('int8', new Int8Array(bytes), dims),
  uint8: (bytes: ArrayBuffer, dims: number[]) => new OrtTensor('uint8', new Uint8Array(bytes), dims),
};
type ExternalType = keyof typeof TENSOR_OVER;
const EXTERNAL_TYPES = new Map(
  (Object.keys(TENSOR_OVER) as ExternalType[]).map((type) => [ELEMENT_TYPE_CODES[type], type]),
);

interface ExternalWeight {
  name: string;
  type: ExternalType;
  dims: number[];
  offset: number;
  length: number;
}

/** A model whose external weights became graph inputs, and those inputs over one anonymous memory region. */
export interface WeightsInMemory {
  /** The model without its external initializers: each is a graph input of the same name, type and shape. */
  model: Uint8Array;
  /** The weights, to add to every run's feeds; views of the region, valid until release(). */
  feeds: Record<string, OrtTensor>;
  /** Bytes of the region (the external data file's used extent, rounded up to whole 2 MiB pages). */
  bytes: number;
  /** Unmaps the region: call only once no session reads the feeds any more. */
  release(): void;
}

/**
 * Reads every external weight of the ONNX model at `modelPath` (all in one data file next to it) into an
 * anonymous region advised for 2 MiB pages, and rewrites the model to take them as inputs.
 */
export async function loadWeightsIntoMemory(modelPath: string): Promise<WeightsInMemory> {
  const model = onnx.ModelProto.decode(await readFile(modelPath));
  const graph = model.graph;
  if (!graph) throw new Error(`${modelPath}: the ONNX model has no graph`);
  const external: ExternalWeight[] = [];
  let dataFile: string | undefined;
  for (const initializer of graph.initializer ?? []) {
    const data = externalDataOf(initializer);
    if (!data) continue;
    const type = EXTERNAL_TYPES.get(initializer.dataType ?? 0);
    if (!type || (dataFile !== undefined && data.location !== dataFile)) {
      throw new Error(`${modelPath}: weight '${initializer.name}' is not a float32/int64/int8/uint8 tensor in the model's one external data file`);
    }
    dataFile = data.location;
    external.push({ name: initializer.name ?? '', type, dims: (initializer.dims ?? []).map(Number), offset: data.offset, length: data.length });
  }
  if (!dataFile) throw new Error(`${modelPath}: the model has no external weights to read into memory`);

  const dataPath = path.join(path.dirname(modelPath), dataFile);
  const extent = Math.max(...external.map((w) => w.offset + w.length));
  const region = HugePageRegion.allocate(extent, dataPath);
  try {
    await region.fill(dataPath, extent);
    const feeds = Object.fromEntries(
      external.map((w) => [w.name, TENSOR_OVER[w.type](region.view(w.offset, w.length), w.dims)]),
    );
    const moved = new Set(external.map((w) => w.name));
    graph.initializer = (graph.initializer ?? []).filter((t) => !moved.has(t.name ?? ''));
    graph.input = [...(graph.input ?? []), ...external.map(valueInfoProto)];
    return { model: onnx.ModelProto.encode(model).finish(), feeds, bytes: region.bytes, release: () => region.release() };
  } catch (error) {
    region.release();
    throw error;
  }
}
