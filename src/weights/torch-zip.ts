import { type Entry, Reader, ZipReader } from '@zip.js/zip.js';
import type { RandomAccessFile } from '../util/model-files.js';
import { dtypeByteSize, elementCount, readAsFloat32 } from './dtype.js';
import { CheckpointError } from './errors.js';
import { openLocalFile } from './local-files.js';
import { parseTorchStateDict, type TorchTensor } from './torch-pickle.js';
import type { TensorInfo, WeightFile } from './types.js';

const ZIP_LOCAL_HEADER_MAGIC = [0x50, 0x4b, 0x03, 0x04];
/** A local file header: 30 fixed bytes, then the file name and the extra field, whose lengths it gives. */
const LOCAL_HEADER_BYTES = 30;
/** A pickle is kilobytes to a few megabytes; anything huge is not a state_dict. */
const MAX_PICKLE_BYTES = 1 << 30;

/** Where a tensor's storage lives in the file. */
interface LocatedTensor extends TorchTensor {
  /** Absolute file offset of the storage's first byte. */
  storageStart: number;
}

/**
 * Opens a torch.save zip checkpoint (pytorch_model.bin): `<prefix>/data.pkl` describes the tensors and
 * `<prefix>/data/<key>` holds each storage, stored uncompressed, so tensors are read straight at their offsets.
 * Only random access is needed (a file on disk, HTTP ranges, a picked File): the zip's central directory and a
 * few local headers, never the whole archive. `file` is closed with the returned WeightFile.
 */
export async function readTorchZip(file: RandomAccessFile): Promise<WeightFile> {
  try {
    await checkZipMagic(file);
    const archive = await ZipDirectory.read(file);
    const pickleName = archive.findPickle();
    const prefix = pickleName.slice(0, -'data.pkl'.length);
    await rejectBigEndian(archive, `${prefix}byteorder`);

    const pickle = await archive.readSmallEntry(pickleName, MAX_PICKLE_BYTES);
    const located = new Map<string, LocatedTensor>();
    for (const [name, tensor] of parseTorchStateDict(pickle, file.name)) {
      located.set(name, { ...tensor, storageStart: await locateStorage(archive, `${prefix}data/`, name, tensor) });
    }
    return new TorchZipFile(file, located);
  } catch (error) {
    await file.close();
    throw error;
  }
}

/** A pytorch_model.bin on the local disk. */
export async function openTorchZip(file: string): Promise<WeightFile> {
  return readTorchZip(await openLocalFile(file));
}

async function checkZipMagic(file: RandomAccessFile): Promise<void> {
  const magic = new Uint8Array(4);
  if (file.size >= 4) await file.read(magic, 0);
  if (magic.some((byte, i) => byte !== ZIP_LOCAL_HEADER_MAGIC[i])) {
    throw new CheckpointError(
      `${file.name}: not a zip-format torch checkpoint (the legacy torch.save format of torch < 1.6 is not supported)`,
    );
  }
}

async function rejectBigEndian(archive: ZipDirectory, byteorderName: string): Promise<void> {
  if (!archive.has(byteorderName)) return;
  const byteorder = new TextDecoder().decode(await archive.readSmallEntry(byteorderName, 16));
  if (byteorder !== 'little') {
    throw new CheckpointError(`${archive.name}: storages are ${byteorder}-endian; only little-endian is supported`);
  }
}

/** Checks that the tensor's view lies inside its storage entry and returns the storage's file offset. */
async function locateStorage(archive: ZipDirectory, dataFolder: string, name: string, tensor: TorchTensor): Promise<number> {
  const { storage } = tensor;
  const where = `${archive.name}: tensor '${name}'`;
  const entryName = dataFolder + storage.key;
  if (!archive.has(entryName)) throw new CheckpointError(`${where}: storage entry '${entryName}' is missing from the zip`);
  const elementBytes = dtypeByteSize(storage.dtype) as number;
  const entryBytes = archive.entrySize(entryName);
  if (entryBytes !== storage.elementCount * elementBytes) {
    throw new CheckpointError(
      `${where}: storage '${entryName}' holds ${entryBytes} bytes, ` +
        `the pickle says ${storage.elementCount} ${storage.dtype} elements`,
    );
  }
  const lastElement = tensor.storageOffset + viewSpan(tensor.shape, tensor.stride);
  if (lastElement > storage.elementCount) {
    throw new CheckpointError(
      `${where}: view (offset ${tensor.storageOffset}, shape [${tensor.shape}], stride [${tensor.stride}]) ` +
        `reaches element ${lastElement} of a storage of ${storage.elementCount}`,
    );
  }
  return archive.dataStart(entryName);
}

/** Number of storage elements from the view's first element to its last, inclusive (0 for an empty view). */
function viewSpan(shape: readonly number[], stride: readonly number[]): number {
  if (shape.includes(0)) return 0;
  return 1 + shape.reduce((span, dim, d) => span + (dim - 1) * stride[d], 0);
}

function isContiguous(shape: readonly number[], stride: readonly number[]): boolean {
  if (shape.includes(0)) return true;
  let expected = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    // a dimension of size 1 is never stepped over, so its stride is irrelevant
    if (shape[d] !== 1 && stride[d] !== expected) return false;
    expected *= shape[d];
  }
  return true;
}

/** Copies a strided view (a transposed tensor, say) into row-major order. */
function gatherStrided(span: Float32Array, shape: readonly number[], stride: readonly number[]): Float32Array {
  const result = new Float32Array(elementCount(shape));
  const index = new Array<number>(shape.length).fill(0);
  let sourceOffset = 0;
  for (let i = 0; i < result.length; i++) {
    result[i] = span[sourceOffset];
    for (let d = shape.length - 1; d >= 0; d--) {
      index[d]++;
      sourceOffset += stride[d];
      if (index[d] < shape[d]) break;
      sourceOffset -= stride[d] * shape[d];
      index[d] = 0;
    }
  }
  return result;
}

/** zip.js reads the archive through this: byte ranges of the RandomAccessFile, nothing buffered whole. */
class RandomAccessReader extends Reader<RandomAccessFile> {
  constructor(private readonly file: RandomAccessFile) {
    super(file);
    this.size = file.size;
  }

  override async readUint8Array(index: number, length: number): Promise<Uint8Array> {
    const bytes = new Uint8Array(Math.max(0, Math.min(length, this.size - index)));
    await this.file.read(bytes, index);
    return bytes;
  }
}

/**
 * The zip's central directory, read with zip.js (which handles ZIP64 for files over 4 GB). zip.js only finds the
 * entries; their bytes are read through the RandomAccessFile at the offsets their local headers give.
 */
class ZipDirectory {
  private constructor(
    private readonly file: RandomAccessFile,
    private readonly entries: Map<string, Entry>,
  ) {}

  static async read(file: RandomAccessFile): Promise<ZipDirectory> {
    try {
      const zip = new ZipReader(new RandomAccessReader(file), { useWebWorkers: false });
      const entries = new Map<string, Entry>();
      for (const entry of await zip.getEntries()) entries.set(entry.filename, entry);
      return new ZipDirectory(file, entries);
    } catch (error) {
      throw new CheckpointError(`${file.name}: cannot read the zip directory: ${(error as Error).message}`);
    }
  }

  get name(): string {
    return this.file.name;
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** torch names the pickle `<top folder>/data.pkl`; the folder name is arbitrary ("archive", the file's stem...). */
  findPickle(): string {
    const pickles = [...this.entries.keys()].filter((name) => /^([^/]+\/)?data\.pkl$/.test(name));
    if (pickles.length !== 1) {
      throw new CheckpointError(
        pickles.length === 0
          ? `${this.name}: no data.pkl in the zip; not a torch checkpoint`
          : `${this.name}: several data.pkl entries (${pickles.join(', ')})`,
      );
    }
    return pickles[0];
  }

  entrySize(name: string): number {
    return this.entry(name).uncompressedSize;
  }

  async dataStart(name: string): Promise<number> {
    const entry = this.entry(name);
    if (entry.compressionMethod !== 0 || entry.encrypted) {
      throw new CheckpointError(
        `${this.name}: zip entry '${name}' is compressed or encrypted; torch checkpoints store entries uncompressed`,
      );
    }
    // The local header's extra field (torch pads it to align data) can differ from the central directory's.
    const header = new Uint8Array(LOCAL_HEADER_BYTES);
    if (entry.offset + LOCAL_HEADER_BYTES <= this.file.size) await this.file.read(header, entry.offset);
    if (header.subarray(0, 4).some((byte, i) => byte !== ZIP_LOCAL_HEADER_MAGIC[i])) {
      throw new CheckpointError(`${this.name}: zip entry '${name}' has no local header at byte ${entry.offset}`);
    }
    const view = new DataView(header.buffer);
    const start = entry.offset + LOCAL_HEADER_BYTES + view.getUint16(26, true) + view.getUint16(28, true);
    if (start + entry.uncompressedSize > this.file.size) {
      throw new CheckpointError(`${this.name}: zip entry '${name}' runs past the end of the file (${this.file.size} bytes)`);
    }
    return start;
  }

  async readSmallEntry(name: string, maxBytes: number): Promise<Uint8Array> {
    const size = this.entrySize(name);
    if (size > maxBytes) throw new CheckpointError(`${this.name}: zip entry '${name}' is implausibly large (${size} bytes)`);
    const bytes = new Uint8Array(size);
    await this.file.read(bytes, await this.dataStart(name));
    return bytes;
  }

  private entry(name: string): Entry {
    const entry = this.entries.get(name);
    if (!entry) throw new CheckpointError(`${this.name}: zip entry '${name}' is missing`);
    return entry;
  }
}

class TorchZipFile implements WeightFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;

  readonly path: string;
  readonly size: number;

  constructor(
    private readonly file: RandomAccessFile,
    private readonly located: ReadonlyMap<string, LocatedTensor>,
  ) {
    this.path = file.name;
    this.size = file.size;
    this.tensors = new Map(
      [...located].map(([name, tensor]) => [name, { name, dtype: tensor.storage.dtype, shape: tensor.shape }]),
    );
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const tensor = this.located.get(name);
    if (!tensor) throw new CheckpointError(`${this.path}: no tensor '${name}'`);
    const { dtype } = tensor.storage;
    const start = tensor.storageStart + tensor.storageOffset * (dtypeByteSize(dtype) as number);
    const contiguous = isContiguous(tensor.shape, tensor.stride);
    const count = contiguous ? elementCount(tensor.shape) : viewSpan(tensor.shape, tensor.stride);
    const values = await readAsFloat32(dtype, count, (target) => this.file.read(target, start));
    return contiguous ? values : gatherStrided(values, tensor.shape, tensor.stride);
  }

  close(): Promise<void> {
    return this.file.close();
  }
}
