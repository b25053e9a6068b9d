import { closeSync, openSync, readSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import onnxProto from 'onnx-proto';
import { externalDataOf } from '../onnx/write.js';
import type { TokenEmbeddings } from '../model/types.js';

const { onnx } = onnxProto;

/** Where a float32 [rows, width] initializer of an ONNX model lives in its external data file. */
export function locateExternalMatrix(
  modelBytes: Uint8Array,
  name: string,
  source: string,
): { file: string; offset: number; rows: number; width: number } {
  const model = onnx.ModelProto.decode(modelBytes);
  const tensor = model.graph?.initializer?.find((t) => t.name === name);
  if (!tensor) throw new Error(`${source}: no weight named '${name}'`);
  const dims = (tensor.dims ?? []).map(Number);
  const external = externalDataOf(tensor);
  if (tensor.dataType !== onnx.TensorProto.DataType.FLOAT || dims.length !== 2 || !external) {
    throw new Error(`${source}: weight '${name}' is not a float32 matrix in an external data file`);
  }
  return { file: external.location, offset: external.offset, rows: dims[0]!, width: dims[1]! };
}

/**
 * A float32 [rows, width] weight of a converted model, read row by row from its external data file.
 * Token embeddings are looked up this way rather than by a Gather over the memory-mapped table: a Gather
 * faults in whole pages around every row it reads, and a long prompt touched most of the 0.4 GB table.
 */
export class EmbeddingTable implements TokenEmbeddings {
  private constructor(
    private readonly fd: number,
    private readonly offset: number,
    readonly rows: number,
    readonly width: number,
  ) {}

  /** Opens weight `name` of the ONNX model at `modelPath` (an initializer stored as external data). */
  static async open(modelPath: string, name: string): Promise<EmbeddingTable> {
    const { file, offset, rows, width } = locateExternalMatrix(await readFile(modelPath), name, modelPath);
    const fd = openSync(path.join(path.dirname(modelPath), file), 'r');
    return new EmbeddingTable(fd, offset, rows, width);
  }

  lookup(ids: ArrayLike<number>): Float32Array {
    const out = new Float32Array(ids.length * this.width);
    const bytes = new Uint8Array(out.buffer);
    const rowBytes = this.width * 4;
    for (let i = 0; i < ids.length; i++) {
      const read = readSync(this.fd, bytes, i * rowBytes, rowBytes, this.offset + ids[i]! * rowBytes);
      if (read !== rowBytes) throw new Error(`embedding row ${ids[i]} is cut short in the weights file`);
    }
    return out;
  }

  close(): void {
    closeSync(this.fd);
  }
}
