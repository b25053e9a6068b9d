import { open, rm } from 'node:fs/promises';
import { elementCount, float32ToBFloat16Bits, float32ToFloat16Bits } from './dtype.js';
import { CheckpointError } from './errors.js';
import { writeFully } from './file-io.js';

export type WritableDtype = 'F32' | 'F16' | 'BF16';

export interface TensorToWrite {
  name: string;
  dtype: WritableDtype;
  shape: number[];
  /** Called once, when the tensor's turn to be written comes, so only one tensor is in memory at a time. */
  data: () => Float32Array | Promise<Float32Array>;
}

const WRITABLE_DTYPE_BYTES: Readonly<Record<WritableDtype, number>> = { F32: 4, F16: 2, BF16: 2 };

/**
 * Writes a safetensors file tensor by tensor in the given order. The header only needs dtypes and shapes, so it is
 * written first and each tensor's data is requested, converted and written in turn. A failed write removes the file.
 */
export async function writeSafetensors(
  file: string,
  tensors: TensorToWrite[],
  metadata?: Record<string, string>,
): Promise<void> {
  const header = buildHeader(file, tensors, metadata);
  const handle = await open(file, 'w');
  try {
    await writeFully(handle, header, 0);
    let position = header.length;
    for (const tensor of tensors) {
      const bytes = encode(file, tensor, await tensor.data());
      await writeFully(handle, bytes, position);
      position += bytes.length;
    }
    await handle.close();
  } catch (error) {
    await handle.close();
    await rm(file, { force: true });
    throw error;
  }
}

/** Length prefix + JSON header, padded with spaces so the data section starts 8-byte aligned. */
function buildHeader(file: string, tensors: TensorToWrite[], metadata: Record<string, string> | undefined): Uint8Array {
  // Built by hand rather than from an object: JSON.stringify would move integer-like tensor names to the front.
  const fields: string[] = [];
  if (metadata) fields.push(`"__metadata__":${JSON.stringify(metadata)}`);
  const seen = new Set<string>();
  let offset = 0;
  for (const { name, dtype, shape } of tensors) {
    const where = `${file}: tensor '${name}'`;
    if (name === '__metadata__' || seen.has(name)) throw new CheckpointError(`${where}: duplicate or reserved name`);
    seen.add(name);
    if (!Object.hasOwn(WRITABLE_DTYPE_BYTES, dtype)) {
      throw new CheckpointError(`${where}: cannot write dtype '${dtype}' (supported: F32, F16, BF16)`);
    }
    if (!shape.every((dim) => Number.isSafeInteger(dim) && dim >= 0)) {
      throw new CheckpointError(`${where}: shape [${shape.join(', ')}] is not a list of non-negative integers`);
    }
    const end = offset + elementCount(shape) * WRITABLE_DTYPE_BYTES[dtype];
    fields.push(`${JSON.stringify(name)}:${JSON.stringify({ dtype, shape, data_offsets: [offset, end] })}`);
    offset = end;
  }
  const json = new TextEncoder().encode(`{${fields.join(',')}}`);
  const paddedLength = Math.ceil(json.length / 8) * 8;
  const bytes = new Uint8Array(8 + paddedLength).fill(0x20, 8 + json.length);
  new DataView(bytes.buffer).setBigUint64(0, BigInt(paddedLength), true);
  bytes.set(json, 8);
  return bytes;
}

function encode(file: string, tensor: TensorToWrite, values: Float32Array): Uint8Array {
  const expected = elementCount(tensor.shape);
  if (values.length !== expected) {
    throw new CheckpointError(
      `${file}: tensor '${tensor.name}': data has ${values.length} values, shape [${tensor.shape.join(', ')}] needs ${expected}`,
    );
  }
  const encoded =
    tensor.dtype === 'F16' ? float32ToFloat16Bits(values) : tensor.dtype === 'BF16' ? float32ToBFloat16Bits(values) : values;
  return new Uint8Array(encoded.buffer, encoded.byteOffset, encoded.byteLength);
}
