import type { RandomAccessFile } from '../util/model-files.js';
import { dtypeByteSize, elementCount, knownDtypes, readAsFloat32 } from './dtype.js';
import { CheckpointError } from './errors.js';
import { openLocalFile } from './local-files.js';
import type { TensorInfo, WeightFile } from './types.js';

/** The reference safetensors implementation refuses headers above 100 MB; a bigger length means a corrupt file. */
const MAX_HEADER_BYTES = 100_000_000;
const LENGTH_PREFIX_BYTES = 8;

interface SafetensorsEntry extends TensorInfo {
  /** Absolute file offsets of the tensor's bytes. */
  begin: number;
  end: number;
}

/** Opens a .safetensors file reading only its header; tensors are read on demand at their offsets. */
export async function openSafetensors(file: string): Promise<WeightFile> {
  return readSafetensors(await openLocalFile(file));
}

/** A .safetensors file from any source (a local file, HTTP ranges, a Blob): its header now, tensors on demand. */
export async function readSafetensors(source: RandomAccessFile): Promise<WeightFile> {
  const { name: file, size } = source;
  try {
    const headerBytes = await readHeaderBytes(source, file, size);
    const dataStart = headerBytes.length;
    const entries = parseHeader(headerBytes.subarray(LENGTH_PREFIX_BYTES), file, dataStart, size - dataStart);
    return new SafetensorsFile(file, size, source, entries);
  } catch (error) {
    await source.close();
    throw error;
  }
}

/** Returns the length prefix followed by the JSON header, exactly as stored. */
async function readHeaderBytes(source: RandomAccessFile, file: string, fileSize: number): Promise<Uint8Array> {
  if (fileSize < LENGTH_PREFIX_BYTES) {
    throw new CheckpointError(`${file}: too short for a safetensors file (${fileSize} bytes, need an 8-byte header length)`);
  }
  const prefix = new Uint8Array(LENGTH_PREFIX_BYTES);
  await source.read(prefix, 0);
  const headerLength = new DataView(prefix.buffer).getBigUint64(0, true);
  if (headerLength > BigInt(MAX_HEADER_BYTES)) {
    throw new CheckpointError(
      `${file}: header length ${headerLength} is absurd (limit ${MAX_HEADER_BYTES} bytes); not a safetensors file?`,
    );
  }
  if (headerLength > BigInt(fileSize - LENGTH_PREFIX_BYTES)) {
    throw new CheckpointError(`${file}: header length ${headerLength} runs past the end of the file (${fileSize} bytes)`);
  }
  const bytes = new Uint8Array(LENGTH_PREFIX_BYTES + Number(headerLength));
  bytes.set(prefix);
  await source.read(bytes.subarray(LENGTH_PREFIX_BYTES), LENGTH_PREFIX_BYTES);
  return bytes;
}

function parseHeader(json: Uint8Array, file: string, dataStart: number, dataLength: number): SafetensorsEntry[] {
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(json));
  } catch (error) {
    throw new CheckpointError(`${file}: malformed JSON header: ${(error as Error).message}`);
  }
  if (!isPlainObject(header)) throw new CheckpointError(`${file}: malformed JSON header: expected an object of tensors`);

  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(header)) {
    if (name === '__metadata__') continue;
    const { dtype, shape, begin, end } = validateEntry(value, `${file}: tensor '${name}'`, dataLength);
    entries.push({ name, dtype, shape, begin: dataStart + begin, end: dataStart + end });
  }
  // File order makes a pass over all tensors read the disk sequentially, and makes overlaps adjacent.
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  for (let i = 1; i < entries.length; i++) {
    const previous = entries[i - 1];
    const current = entries[i];
    if (current.begin < previous.end) {
      const offsets = (entry: SafetensorsEntry): string => `[${entry.begin - dataStart}, ${entry.end - dataStart}]`;
      throw new CheckpointError(
        `${file}: tensors '${previous.name}' and '${current.name}' overlap ` +
          `(data_offsets ${offsets(previous)} and ${offsets(current)})`,
      );
    }
  }
  return entries;
}

/** Checks one header entry; its offsets are relative to the data section. */
function validateEntry(
  value: unknown,
  where: string,
  dataLength: number,
): { dtype: string; shape: number[]; begin: number; end: number } {
  if (!isPlainObject(value)) throw new CheckpointError(`${where}: entry is not an object`);
  const { dtype, shape, data_offsets: offsets } = value;
  if (typeof dtype !== 'string') throw new CheckpointError(`${where}: missing dtype`);
  const elementBytes = dtypeByteSize(dtype);
  if (elementBytes === undefined) {
    throw new CheckpointError(`${where}: unknown dtype '${dtype}' (supported: ${knownDtypes().join(', ')})`);
  }
  if (!Array.isArray(shape) || !shape.every(isNonNegativeInteger)) {
    throw new CheckpointError(`${where}: shape ${JSON.stringify(shape)} is not a list of non-negative integers`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every(isNonNegativeInteger)) {
    throw new CheckpointError(`${where}: data_offsets ${JSON.stringify(offsets)} is not a pair of non-negative integers`);
  }
  const [begin, end] = offsets as [number, number];
  if (end < begin) throw new CheckpointError(`${where}: data_offsets [${begin}, ${end}] end before they begin`);
  if (end > dataLength) {
    throw new CheckpointError(`${where}: data_offsets [${begin}, ${end}] run past the data section (${dataLength} bytes)`);
  }
  const expectedBytes = elementCount(shape) * elementBytes;
  if (end - begin !== expectedBytes) {
    throw new CheckpointError(
      `${where}: byte size ${end - begin} does not match shape [${shape.join(', ')}] of ${dtype} (${expectedBytes} bytes)`,
    );
  }
  return { dtype, shape, begin, end };
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isNonNegativeInteger(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

class SafetensorsFile implements WeightFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  private readonly entries: ReadonlyMap<string, SafetensorsEntry>;

  constructor(
    readonly path: string,
    readonly size: number,
    private readonly source: RandomAccessFile,
    entries: SafetensorsEntry[],
  ) {
    this.entries = new Map(entries.map((entry) => [entry.name, entry]));
    this.tensors = new Map(entries.map(({ name, dtype, shape }) => [name, { name, dtype, shape }]));
  }

  async readFloat32(name: string): Promise<Float32Array> {
    const entry = this.entries.get(name);
    if (!entry) throw new CheckpointError(`${this.path}: no tensor '${name}'`);
    return readAsFloat32(entry.dtype, elementCount(entry.shape), (target) => this.source.read(target, entry.begin));
  }

  close(): Promise<void> {
    return this.source.close();
  }
}
