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
import { open, readFile } from 'node:fs/promises';
import path from 'node:path';
import koffi from 'koffi';
import onnxProto from 'onnx-proto';
import { OrtTensor } from './tensor.js';

const { onnx } = onnxProto;

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MADV_HUGEPAGE = 14;
const MAP_FAILED = 0xffff_ffff_ffff_ffffn;
const HUGE_PAGE = 2 * 2 ** 20;
/** The file is read into the region this many bytes at a time (one view each: koffi views stay under 4 GiB). */
const READ_CHUNK = 64 * 2 ** 20;

interface Libc {
  mmap(addr: null, length: number, prot: number, flags: number, fd: number, offset: number): bigint;
  madvise(addr: bigint, length: number, advice: number): number;
  munmap(addr: bigint, length: number): number;
}
let libc: Libc | undefined;

function memoryFunctions(): Libc {
  if (process.platform !== 'linux') {
    throw new Error(`weights in memory use Linux's mmap flags and transparent huge pages; on ${process.platform} pass weightsInMemory: false`);
  }
  if (!libc) {
    const c = koffi.load(null);
    libc = {
      mmap: c.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, intptr_t offset)'),
      madvise: c.func('int madvise(void *addr, size_t length, int advice)'),
      munmap: c.func('int munmap(void *addr, size_t length)'),
    } as Libc;
  }
  return libc;
}

/** The element types a converted model stores externally, by ONNX type code, and their typed arrays. */
const ELEMENT_TYPES = new Map<number, (buffer: ArrayBuffer, dims: number[]) => OrtTensor>([
  [onnx.TensorProto.DataType.FLOAT, (b, dims) => new OrtTensor('float32', new Float32Array(b), dims)],
  [onnx.TensorProto.DataType.INT64, (b, dims) => new OrtTensor('int64', new BigInt64Array(b), dims)],
  [onnx.TensorProto.DataType.INT8, (b, dims) => new OrtTensor('int8', new Int8Array(b), dims)],
  [onnx.TensorProto.DataType.UINT8, (b, dims) => new OrtTensor('uint8', new Uint8Array(b), dims)],
]);

interface ExternalWeight {
  name: string;
  dataType: number;
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
    if (initializer.dataLocation !== onnx.TensorProto.DataLocation.EXTERNAL) continue;
    const entries = new Map((initializer.externalData ?? []).map((entry) => [entry.key, entry.value]));
    const location = entries.get('location');
    const dataType = initializer.dataType ?? 0;
    if (!location || !ELEMENT_TYPES.has(dataType) || (dataFile !== undefined && location !== dataFile)) {
      throw new Error(`${modelPath}: weight '${initializer.name}' is not a float32/int64/int8/uint8 tensor in the model's one external data file`);
    }
    dataFile = location;
    external.push({
      name: initializer.name ?? '',
      dataType,
      dims: (initializer.dims ?? []).map(Number),
      offset: Number(entries.get('offset') ?? 0),
      length: Number(entries.get('length')),
    });
  }
  if (!dataFile) throw new Error(`${modelPath}: the model has no external weights to read into memory`);

  const dataPath = path.join(path.dirname(modelPath), dataFile);
  const extent = Math.max(...external.map((w) => w.offset + w.length));
  const region = HugePageRegion.allocate(extent, dataPath);
  try {
    await region.fill(dataPath, extent);
    const feeds = Object.fromEntries(
      external.map((w) => [w.name, ELEMENT_TYPES.get(w.dataType)!(region.view(w.offset, w.length), w.dims)]),
    );
    const moved = new Set(external.map((w) => w.name));
    graph.initializer = (graph.initializer ?? []).filter((t) => !moved.has(t.name ?? ''));
    graph.input = [
      ...(graph.input ?? []),
      ...external.map((w) =>
        onnx.ValueInfoProto.create({
          name: w.name,
          type: { tensorType: { elemType: w.dataType, shape: { dim: w.dims.map((d) => ({ dimValue: d })) } } },
        }),
      ),
    ];
    return { model: onnx.ModelProto.encode(model).finish(), feeds, bytes: region.bytes, release: () => region.release() };
  } catch (error) {
    region.release();
    throw error;
  }
}

/** Anonymous private memory, 2 MiB-aligned and advised for transparent huge pages. */
class HugePageRegion {
  private released = false;

  private constructor(
    private readonly mapping: bigint,
    private readonly mappedBytes: number,
    private readonly base: bigint,
    readonly bytes: number,
  ) {}

  static allocate(minimumBytes: number, purpose: string): HugePageRegion {
    const c = memoryFunctions();
    const bytes = Math.ceil(minimumBytes / HUGE_PAGE) * HUGE_PAGE;
    // One spare huge page, so the region can start on a 2 MiB boundary (mmap only aligns to 4 KiB).
    const mappedBytes = bytes + HUGE_PAGE;
    const mapping = c.mmap(null, mappedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mapping === MAP_FAILED || mapping === 0n) {
      throw new Error(
        `could not reserve ${(bytes / 1e9).toFixed(2)} GB of memory for the weights of ${purpose} (mmap: ${koffi.errno()}); ` +
          'pass weightsInMemory: false to read them memory-mapped instead',
      );
    }
    const base = (mapping + BigInt(HUGE_PAGE - 1)) & ~BigInt(HUGE_PAGE - 1);
    // Advice only: without transparent huge pages the region still works, in 4 KiB pages.
    c.madvise(base, bytes, MADV_HUGEPAGE);
    return new HugePageRegion(mapping, mappedBytes, base, bytes);
  }

  /** An ArrayBuffer over [offset, offset + length) of the region, without a copy. */
  view(offset: number, length: number): ArrayBuffer {
    if (this.released) throw new Error('the weights in memory were released');
    return koffi.view(this.base + BigInt(offset), length);
  }

  /** Copies the first `length` bytes of `file` into the region (faulting its pages in as huge pages). */
  async fill(file: string, length: number): Promise<void> {
    const handle = await open(file, 'r');
    try {
      for (let at = 0; at < length; ) {
        const chunk = new Uint8Array(this.view(at, Math.min(READ_CHUNK, length - at)));
        const { bytesRead } = await handle.read(chunk, 0, chunk.byteLength, at);
        if (bytesRead === 0) throw new Error(`${file} ends at ${at} bytes, but the model's weights need ${length}`);
        at += bytesRead;
      }
    } finally {
      await handle.close();
    }
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    memoryFunctions().munmap(this.mapping, this.mappedBytes);
  }
}
