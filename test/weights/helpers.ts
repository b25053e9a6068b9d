import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32, deflateRawSync } from 'node:zlib';
import { afterEach } from 'vitest';

export const FIXTURES = fileURLToPath(new URL('../fixtures/gpt-neo/', import.meta.url));
export const fixture = (name: string): string => path.join(FIXTURES, name);

const temporaryFolders: string[] = [];
afterEach(async () => {
  await Promise.all(temporaryFolders.splice(0).map((folder) => rm(folder, { recursive: true, force: true })));
});

/** A fresh folder, removed after the current test. */
export async function temporaryFolder(): Promise<string> {
  const folder = await mkdtemp(path.join(os.tmpdir(), 'gpt-neo-weights-'));
  temporaryFolders.push(folder);
  return folder;
}

export async function writeBytes(file: string, ...parts: Uint8Array[]): Promise<string> {
  await writeFile(file, concat(parts));
  return file;
}

export function concat(parts: Uint8Array[]): Uint8Array {
  const result = new Uint8Array(parts.reduce((total, part) => total + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    result.set(part, offset);
    offset += part.length;
  }
  return result;
}

/** Raw safetensors bytes from a header (object or verbatim text) and a data section; `headerLength` overrides the prefix. */
export function safetensorsBytes(header: object | string, data: Uint8Array, headerLength?: bigint): Uint8Array {
  const json = new TextEncoder().encode(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = new Uint8Array(8);
  new DataView(prefix.buffer).setBigUint64(0, headerLength ?? BigInt(json.length), true);
  return concat([prefix, json, data]);
}

export const bytesOf = (view: ArrayBufferView): Uint8Array => new Uint8Array(view.buffer, view.byteOffset, view.byteLength);

export function float32Bits(values: Float32Array): Uint32Array {
  return new Uint32Array(values.buffer, values.byteOffset, values.length);
}

/** Nearest value with `mantissaBits` explicit bits and minimum normal exponent `minExponent`, ties to even (no overflow handling). */
function roundToFormat(x: number, mantissaBits: number, minExponent: number): number {
  if (x === 0 || !Number.isFinite(x)) return x;
  const exponent = Math.max(Math.floor(Math.log2(Math.abs(x))), minExponent);
  const ulp = 2 ** (exponent - mantissaBits);
  const scaled = x / ulp;
  let rounded = Math.round(scaled);
  if (Math.abs(scaled % 1) === 0.5 && rounded % 2 !== 0) rounded -= 1;
  return rounded * ulp;
}

/** Independent reference for float32 -> float16 rounding, computed in doubles. */
export const roundToFloat16 = (x: number): number => roundToFormat(x, 10, -14);
export const roundToBFloat16 = (x: number): number => roundToFormat(x, 7, -126);

export interface ZipEntry {
  name: string;
  data: Uint8Array;
  deflate?: boolean;
}

const u16 = (value: number): number[] => [value & 0xff, (value >>> 8) & 0xff];
const u32 = (value: number): number[] => [...u16(value & 0xffff), ...u16(value >>> 16)];
const u64 = (value: number): number[] => [...u32(value % 2 ** 32), ...u32(Math.floor(value / 2 ** 32))];

/**
 * A zip like torch.save writes: stored entries, local headers padded (extra field "FB") so data is 64-byte aligned.
 * `zip64` writes the ZIP64 records that files over 4 GB need, so the reader's ZIP64 path can be tested small.
 */
export function zipBytes(entries: ZipEntry[], { zip64 = false } = {}): Uint8Array {
  const parts: number[][] = [];
  const central: number[][] = [];
  let offset = 0;
  const append = (part: number[]): void => {
    parts.push(part);
    offset += part.length;
  };
  for (const entry of entries) {
    const name = [...new TextEncoder().encode(entry.name)];
    const stored = entry.deflate ? deflateRawSync(entry.data) : entry.data;
    const method = entry.deflate ? 8 : 0;
    const crc = crc32(entry.data);
    const headerOffset = offset;
    const padding = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
    const localExtra = [...u16(0x4246), ...u16(padding), ...new Array<number>(padding).fill(0x5a)];
    append([
      ...u32(0x04034b50), ...u16(45), ...u16(0), ...u16(method), ...u16(0), ...u16(0x21),
      ...u32(crc), ...u32(stored.length), ...u32(entry.data.length), ...u16(name.length), ...u16(localExtra.length),
      ...name, ...localExtra,
    ]);
    append([...stored]);
    const centralExtra = zip64 ? [...u16(1), ...u16(24), ...u64(entry.data.length), ...u64(stored.length), ...u64(headerOffset)] : [];
    const sizeField = (value: number): number[] => u32(zip64 ? 0xffffffff : value);
    central.push([
      ...u32(0x02014b50), ...u16(45), ...u16(45), ...u16(0), ...u16(method), ...u16(0), ...u16(0x21),
      ...u32(crc), ...sizeField(stored.length), ...sizeField(entry.data.length), ...u16(name.length),
      ...u16(centralExtra.length), ...u16(0), ...u16(0), ...u16(0), ...u32(0), ...sizeField(headerOffset),
      ...name, ...centralExtra,
    ]);
  }
  const centralStart = offset;
  for (const header of central) append(header);
  const centralSize = offset - centralStart;
  if (zip64) {
    const recordOffset = offset;
    append([
      ...u32(0x06064b50), ...u64(44), ...u16(45), ...u16(45), ...u32(0), ...u32(0),
      ...u64(entries.length), ...u64(entries.length), ...u64(centralSize), ...u64(centralStart),
    ]);
    append([...u32(0x07064b50), ...u32(0), ...u64(recordOffset), ...u32(1)]);
  }
  const count = zip64 ? 0xffff : entries.length;
  append([
    ...u32(0x06054b50), ...u16(0), ...u16(0), ...u16(count), ...u16(count),
    ...u32(zip64 ? 0xffffffff : centralSize), ...u32(zip64 ? 0xffffffff : centralStart), ...u16(0),
  ]);
  return Uint8Array.from(parts.flat());
}

/** Emits pickle opcodes by name, so tests can build both valid state_dicts and hostile pickles. */
export class PickleWriter {
  private readonly bytes: number[] = [];

  constructor(private readonly protocol: number) {
    this.op(0x80, protocol);
  }

  op(...bytes: number[]): this {
    this.bytes.push(...bytes);
    return this;
  }

  str(text: string): this {
    const utf8 = [...new TextEncoder().encode(text)];
    return this.protocol >= 4 && utf8.length < 256 ? this.op(0x8c, utf8.length, ...utf8) : this.op(0x58, ...u32(utf8.length), ...utf8);
  }

  int(value: number): this {
    if (value >= 0 && value < 256) return this.op(0x4b, value);
    if (value >= 0 && value < 65536) return this.op(0x4d, ...u16(value));
    if (value >= -(2 ** 31) && value < 2 ** 31) return this.op(0x4a, ...u32(value >>> 0));
    const bytes: number[] = [];
    let remaining = BigInt(value);
    do {
      bytes.push(Number(remaining & 0xffn));
      remaining >>= 8n;
    } while (remaining !== 0n && remaining !== -1n);
    if ((bytes.at(-1)! & 0x80) !== (value < 0 ? 0x80 : 0)) bytes.push(value < 0 ? 0xff : 0);
    return this.op(0x8a, bytes.length, ...bytes);
  }

  /** GLOBAL before protocol 4, STACK_GLOBAL after, like pickle itself. */
  global(module: string, name: string): this {
    if (this.protocol >= 4) return this.str(module).str(name).op(0x93);
    return this.op(0x63, ...new TextEncoder().encode(`${module}\n${name}\n`));
  }

  tuple(items: number[]): this {
    if (items.length === 0) return this.op(0x29);
    const short = items.length <= 3;
    if (!short) this.op(0x28);
    for (const item of items) this.int(item);
    return this.op(short ? 0x84 + items.length : 0x74);
  }

  /** Stores the top of the stack in memo slot `slot` (MEMOIZE numbers slots in order from 0). */
  memoize(slot: number): this {
    return this.protocol >= 4 ? this.op(0x94) : this.op(0x71, slot);
  }

  memoGet(slot: number): this {
    return this.op(0x68, slot);
  }

  finish(): Uint8Array {
    const body = this.bytes.slice(2);
    // Protocol 4+ wraps opcodes in a FRAME; the reader must skip it.
    const frame = this.protocol >= 4 ? [0x95, ...u64(body.length)] : [];
    return Uint8Array.from([...this.bytes.slice(0, 2), ...frame, ...body, 0x2e]);
  }
}

export interface PickledTensor {
  name: string;
  storageClass: string;
  key: string;
  storageElements: number;
  offset?: number;
  shape: number[];
  stride?: number[];
  /** Wrap in torch._utils._rebuild_parameter, as nn.Parameter pickles. */
  parameter?: boolean;
}

function contiguousStride(shape: number[]): number[] {
  const stride = new Array<number>(shape.length);
  let step = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    stride[d] = step;
    step *= shape[d];
  }
  return stride;
}

/** A state_dict pickle as torch.save writes it: OrderedDict of _rebuild_tensor_v2 calls over persistent storages. */
export function stateDictPickle(tensors: PickledTensor[], protocol = 2): Uint8Array {
  const pickle = new PickleWriter(protocol);
  pickle.global('collections', 'OrderedDict').memoize(0).op(0x29, 0x52).op(0x28);
  for (const [i, tensor] of tensors.entries()) {
    pickle.str(tensor.name);
    if (tensor.parameter) pickle.global('torch._utils', '_rebuild_parameter');
    if (i === 0) pickle.global('torch._utils', '_rebuild_tensor_v2').memoize(1);
    else pickle.memoGet(1);
    pickle.op(0x28);
    pickle.op(0x28).str('storage').global('torch', tensor.storageClass).str(tensor.key).str('cpu').int(tensor.storageElements);
    pickle.op(0x74, 0x51);
    pickle.int(tensor.offset ?? 0).tuple(tensor.shape).tuple(tensor.stride ?? contiguousStride(tensor.shape));
    pickle.op(0x89).memoGet(0).op(0x29, 0x52).op(0x74, 0x52);
    if (tensor.parameter) pickle.op(0x88).memoGet(0).op(0x29, 0x52).op(0x87, 0x52);
  }
  pickle.op(0x75);
  // state_dict()'s OrderedDict carries `_metadata` as instance state
  pickle.op(0x7d).str('_metadata').memoGet(0).op(0x29, 0x52).op(0x73, 0x62);
  return pickle.finish();
}

/** A torch.save zip from a pickle and raw storages, under an arbitrary top folder. */
export function torchZipBytes(
  pickle: Uint8Array,
  storages: Record<string, Uint8Array>,
  { prefix = 'archive', zip64 = false, extraEntries = [] as ZipEntry[] } = {},
): Uint8Array {
  return zipBytes(
    [
      { name: `${prefix}/data.pkl`, data: pickle },
      { name: `${prefix}/byteorder`, data: new TextEncoder().encode('little') },
      ...Object.entries(storages).map(([key, data]) => ({ name: `${prefix}/data/${key}`, data })),
      { name: `${prefix}/version`, data: new TextEncoder().encode('3\n') },
      ...extraEntries,
    ],
    { zip64 },
  );
}
