/** Bytes per element of every dtype the readers accept (safetensors names). */
const DTYPE_BYTES: Readonly<Record<string, number>> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** Element size of a dtype, or undefined for a dtype the readers cannot convert. */
export function dtypeByteSize(dtype: string): number | undefined {
  return Object.hasOwn(DTYPE_BYTES, dtype) ? DTYPE_BYTES[dtype] : undefined;
}

export function knownDtypes(): string[] {
  return Object.keys(DTYPE_BYTES);
}

/** Product of the dimensions; 1 for a scalar (shape []). */
export function elementCount(shape: readonly number[]): number {
  return shape.reduce((product, dim) => product * dim, 1);
}

let float16ToFloat32Bits: Uint32Array | undefined;

/** float32 bit pattern of every float16 bit pattern; built once, so widening is one lookup per element. */
function float16Table(): Uint32Array {
  if (float16ToFloat32Bits) return float16ToFloat32Bits;
  const table = new Uint32Array(65536);
  for (let half = 0; half < 65536; half++) {
    const sign = (half & 0x8000) << 16;
    const exponent = (half >>> 10) & 0x1f;
    let mantissa = half & 0x3ff;
    if (exponent === 0x1f) {
      // inf / nan keep their payload bits, so a nan stays the same nan
      table[half] = sign | 0x7f800000 | (mantissa << 13);
    } else if (exponent !== 0) {
      table[half] = sign | ((exponent + 112) << 23) | (mantissa << 13);
    } else if (mantissa === 0) {
      table[half] = sign;
    } else {
      // float16 subnormals are float32 normals: shift the leading 1 into the implicit bit
      let float32Exponent = 113;
      while ((mantissa & 0x400) === 0) {
        mantissa <<= 1;
        float32Exponent--;
      }
      table[half] = sign | (float32Exponent << 23) | ((mantissa & 0x3ff) << 13);
    }
  }
  float16ToFloat32Bits = table;
  return table;
}

/**
 * Reads `count` elements of `dtype` through `readInto` (which must fill the array it is given) and converts them to
 * float32. For dtypes of at most 4 bytes the raw bytes are read into the tail of the float32 result and widened front
 * to back in place: element i is written only after every source element it overlaps has been consumed, so the
 * conversion needs no memory beyond the result itself.
 */
export async function readAsFloat32(
  dtype: string,
  count: number,
  readInto: (target: Uint8Array) => Promise<void>,
): Promise<Float32Array> {
  const elementBytes = dtypeByteSize(dtype);
  if (elementBytes === undefined) throw new Error(`unsupported dtype ${dtype}`);
  if (elementBytes === 8) {
    const raw = new ArrayBuffer(count * 8);
    await readInto(new Uint8Array(raw));
    return dtype === 'F64' ? Float32Array.from(new Float64Array(raw)) : int64ToFloat32(new BigInt64Array(raw));
  }
  const buffer = new ArrayBuffer(count * 4);
  const sourceOffset = count * (4 - elementBytes);
  await readInto(new Uint8Array(buffer, sourceOffset, count * elementBytes));
  widenInPlace(dtype, buffer, sourceOffset, count);
  return new Float32Array(buffer);
}

function widenInPlace(dtype: string, buffer: ArrayBuffer, sourceOffset: number, count: number): void {
  switch (dtype) {
    case 'F32':
      return;
    case 'F16': {
      const table = float16Table();
      const source = new Uint16Array(buffer, sourceOffset, count);
      const target = new Uint32Array(buffer, 0, count);
      for (let i = 0; i < count; i++) target[i] = table[source[i]];
      return;
    }
    case 'BF16': {
      // bfloat16 is the top half of a float32, so widening is exact by construction
      const source = new Uint16Array(buffer, sourceOffset, count);
      const target = new Uint32Array(buffer, 0, count);
      for (let i = 0; i < count; i++) target[i] = source[i] << 16;
      return;
    }
    case 'I32':
      copyElements(new Int32Array(buffer, sourceOffset, count), new Float32Array(buffer, 0, count));
      return;
    case 'I16':
      copyElements(new Int16Array(buffer, sourceOffset, count), new Float32Array(buffer, 0, count));
      return;
    case 'I8':
      copyElements(new Int8Array(buffer, sourceOffset, count), new Float32Array(buffer, 0, count));
      return;
    case 'U8':
    case 'BOOL':
      copyElements(new Uint8Array(buffer, sourceOffset, count), new Float32Array(buffer, 0, count));
      return;
    default:
      throw new Error(`unsupported dtype ${dtype}`);
  }
}

function copyElements(source: ArrayLike<number>, target: Float32Array): void {
  for (let i = 0; i < target.length; i++) target[i] = source[i];
}

function int64ToFloat32(source: BigInt64Array): Float32Array {
  const target = new Float32Array(source.length);
  for (let i = 0; i < source.length; i++) target[i] = Number(source[i]);
  return target;
}

/** Rounds float32 values to float16 bit patterns, to nearest even like torch's `.half()`; nan stays nan. */
export function float32ToFloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const result = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) result[i] = float32BitsToFloat16Bits(bits[i]);
  return result;
}

function float32BitsToFloat16Bits(bits: number): number {
  const sign = (bits >>> 16) & 0x8000;
  const magnitude = bits & 0x7fffffff;
  if (magnitude >= 0x7f800000) {
    const isNan = magnitude > 0x7f800000;
    return sign | 0x7c00 | (isNan ? 0x200 | ((magnitude >>> 13) & 0x3ff) : 0);
  }
  // 65520 and above round to infinity
  if (magnitude >= 0x477ff000) return sign | 0x7c00;
  if (magnitude >= 0x38800000) {
    // a mantissa carry correctly bumps the exponent
    return sign | roundShiftRightToEven(magnitude - 0x38000000, 13);
  }
  // below 2^-25 (and 2^-25 itself, a tie) rounds to zero
  if (magnitude <= 0x33000000) return sign;
  const exponent = magnitude >>> 23;
  const mantissa = (magnitude & 0x7fffff) | 0x800000;
  // float16 subnormals count units of 2^-24
  return sign | roundShiftRightToEven(mantissa, 126 - exponent);
}

function roundShiftRightToEven(value: number, shift: number): number {
  const kept = value >>> shift;
  const remainder = value & ((1 << shift) - 1);
  const half = 1 << (shift - 1);
  return remainder > half || (remainder === half && (kept & 1) === 1) ? kept + 1 : kept;
}

/** Rounds float32 values to bfloat16 bit patterns, to nearest even like torch's `.bfloat16()`; nan stays nan. */
export function float32ToBFloat16Bits(values: Float32Array): Uint16Array {
  const bits = new Uint32Array(values.buffer, values.byteOffset, values.length);
  const result = new Uint16Array(values.length);
  for (let i = 0; i < bits.length; i++) {
    const value = bits[i];
    const isNan = (value & 0x7fffffff) > 0x7f800000;
    result[i] = isNan ? (value >>> 16) | 0x40 : (value + 0x7fff + ((value >>> 16) & 1)) >>> 16;
  }
  return result;
}
