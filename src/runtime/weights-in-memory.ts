// A converted model's overridable weights (initializers that are graph inputs too, which ONNX Runtime reads in
// place on every run rather than repack) read into process memory backed by 2 MiB pages, and fed to ONNX Runtime
// as graph inputs over that memory without a copy.
//
// Why: decoding reads every such weight once per token (the float32 head: 0.4 GB of GPT-Neo 1.3B), at memory
// bandwidth, and how the pages are backed decides how close it gets. ONNX Runtime memory-maps external weights;
// that mapping's page cache comes back in 4 KiB folios once the kernel has evicted it (this project's host pages
// out idle cache within a minute), and a stream through 4 KiB pages misses the TLB all the time. Anonymous memory
// with MADV_HUGEPAGE is backed by 2 MiB pages on any Linux with transparent huge pages in `madvise` or `always`.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { ELEMENT_TYPE_CODES } from '../onnx/graph.js';
import { externalDataOf } from '../onnx/write.js';
import { type FileRange, HugePageRegion } from './huge-pages.js';
import { OrtTensor } from './tensor.js';

const { onnx } = onnxProto;

interface ExternalWeight {
  name: string;
  dims: number[];
  /** Where its bytes are in the data file and go in the region. */
  range: FileRange;
}

/** A model whose overridable external weights became plain graph inputs, over one anonymous memory region. */
export interface WeightsInMemory {
  /** The model without those initializers; its other weights still name the external data file. */
  model: Uint8Array;
  /** The weights, to add to every run's feeds; views of the region, valid until release(). */
  feeds: Record<string, OrtTensor>;
  /** Bytes of the region (the weights, rounded up to whole 2 MiB pages). */
  bytes: number;
  /** Unmaps the region: call only once no session reads the feeds any more. */
  release(): void;
}

/** Each weight starts on a page of the region, as it did in the file. */
const WEIGHT_ALIGNMENT = 4096;

/**
 * Reads the overridable external weights of the ONNX model at `modelPath` (in one data file next to it) into an
 * anonymous region advised for 2 MiB pages, and drops their initializers from the model, leaving the inputs.
 * Weights left external are still read by ONNX Runtime from the data file (see
 * RuntimeSession.createWithWeightsInMemory).
 */
export async function loadWeightsIntoMemory(modelPath: string): Promise<WeightsInMemory> {
  const bytes = await readFile(modelPath);
  const model = onnx.ModelProto.decode(bytes);
  const graph = model.graph;
  if (!graph) throw new Error(`${modelPath}: the ONNX model has no graph`);
  const inputs = new Set((graph.input ?? []).map((input) => input.name));
  const external: ExternalWeight[] = [];
  let dataFile: string | undefined;
  let regionBytes = 0;
  for (const initializer of graph.initializer ?? []) {
    const data = externalDataOf(initializer);
    if (!data || !inputs.has(initializer.name)) continue;
    // The overridable weights this project writes are float32: the float32 head (see model/parameters.ts).
    if (initializer.dataType !== ELEMENT_TYPE_CODES.float32 || (dataFile !== undefined && data.location !== dataFile)) {
      throw new Error(`${modelPath}: weight '${initializer.name}' is not a float32 tensor in the model's one external data file`);
    }
    dataFile = data.location;
    const range = { fileOffset: data.offset, regionOffset: regionBytes, length: data.length };
    external.push({ name: initializer.name ?? '', dims: (initializer.dims ?? []).map(Number), range });
    regionBytes = Math.ceil((regionBytes + data.length) / WEIGHT_ALIGNMENT) * WEIGHT_ALIGNMENT;
  }
  // A graph with no float32 head (a task head's variant) runs as it is.
  if (!dataFile) return { model: bytes, feeds: {}, bytes: 0, release: () => {} };

  const dataPath = path.join(path.dirname(modelPath), dataFile);
  const region = HugePageRegion.allocate(regionBytes, dataPath);
  try {
    await region.fill(dataPath, external.map((w) => w.range));
    const feeds = Object.fromEntries(
      external.map((w) => [w.name, new OrtTensor('float32', new Float32Array(region.view(w.range.regionOffset, w.range.length)), w.dims)]),
    );
    const moved = new Set(external.map((w) => w.name));
    graph.initializer = (graph.initializer ?? []).filter((t) => !moved.has(t.name ?? ''));
    return { model: onnx.ModelProto.encode(model).finish(), feeds, bytes: region.bytes, release: () => region.release() };
  } catch (error) {
    region.release();
    throw error;
  }
}
