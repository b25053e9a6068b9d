import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { float32ToBFloat16Bits, float32ToFloat16Bits, readAsFloat32 } from '../../src/weights/dtype.js';
import { openCheckpoint } from '../../src/weights/index.js';
import { bytesOf, float32Bits, roundToFloat16, safetensorsBytes, temporaryFolder, writeBytes } from './helpers.js';

/** [float16 bits, float32 bits] worked out by hand from the IEEE layouts. */
const FLOAT16_CASES: Array<[number, number]> = [
  [0x0000, 0x00000000], // +0
  [0x8000, 0x80000000], // -0
  [0x0001, 0x33800000], // smallest subnormal 2^-24
  [0x8001, 0xb3800000], // its negative
  [0x03ff, 0x387fc000], // largest subnormal 1023 * 2^-24
  [0x0200, 0x38000000], // subnormal 2^-15
  [0x0400, 0x38800000], // smallest normal 2^-14
  [0x3c00, 0x3f800000], // 1
  [0x3555, 0x3eaaa000], // 0.333251953125
  [0xc000, 0xc0000000], // -2
  [0x7bff, 0x477fe000], // 65504, the largest finite
  [0x7c00, 0x7f800000], // +inf
  [0xfc00, 0xff800000], // -inf
  [0x7e00, 0x7fc00000], // quiet nan
  [0x7c01, 0x7f802000], // signalling nan keeps its payload
  [0xfe01, 0xffc02000], // negative nan with payload
];

/** bfloat16 is the top half of a float32, subnormals and nan payloads included. */
const BFLOAT16_CASES: Array<[number, number]> = [
  [0x0001, 0x00010000],
  [0x8001, 0x80010000],
  [0x3f80, 0x3f800000],
  [0xc2f7, 0xc2f70000],
  [0x7f7f, 0x7f7f0000],
  [0x7f80, 0x7f800000],
  [0xff80, 0xff800000],
  [0x7fc1, 0x7fc10000],
];

async function readSingleTensor(dtype: string, shape: number[], data: Uint8Array): Promise<Float32Array> {
  const folder = await temporaryFolder();
  const header = { __metadata__: { format: 'pt' }, t: { dtype, shape, data_offsets: [0, data.length] } };
  await writeBytes(path.join(folder, 'model.safetensors'), safetensorsBytes(header, data));
  const checkpoint = await openCheckpoint(folder);
  try {
    return await checkpoint.readFloat32('t');
  } finally {
    await checkpoint.close();
  }
}

describe('widening to float32', () => {
  test('F16 bit patterns widen exactly (subnormals, infinities, nan payloads)', async () => {
    const values = await readSingleTensor('F16', [FLOAT16_CASES.length], bytesOf(Uint16Array.from(FLOAT16_CASES, ([half]) => half)));
    expect([...float32Bits(values)].map((bits) => bits.toString(16))).toEqual(FLOAT16_CASES.map(([, bits]) => bits.toString(16)));
  });

  test('every one of the 65536 F16 patterns widens to the value the IEEE formula gives', async () => {
    const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const values = await readSingleTensor('F16', [256, 256], bytesOf(all));
    for (let half = 0; half < 65536; half++) {
      const exponent = (half >> 10) & 0x1f;
      const fraction = half & 0x3ff;
      const magnitude =
        exponent === 0 ? fraction * 2 ** -24 : exponent === 31 ? (fraction ? NaN : Infinity) : (1 + fraction / 1024) * 2 ** (exponent - 15);
      const expected = half & 0x8000 ? -magnitude : magnitude;
      if (!Object.is(values[half], expected)) expect.fail(`0x${half.toString(16)} widened to ${values[half]}, expected ${expected}`);
    }
  });

  test('BF16 bit patterns widen exactly', async () => {
    const values = await readSingleTensor('BF16', [BFLOAT16_CASES.length], bytesOf(Uint16Array.from(BFLOAT16_CASES, ([half]) => half)));
    expect([...float32Bits(values)].map((bits) => bits.toString(16))).toEqual(BFLOAT16_CASES.map(([, bits]) => bits.toString(16)));
  });

  test('integer and double dtypes convert to float32', async () => {
    expect([...(await readSingleTensor('U8', [4], Uint8Array.of(0, 1, 128, 255)))]).toEqual([0, 1, 128, 255]);
    expect([...(await readSingleTensor('BOOL', [2], Uint8Array.of(1, 0)))]).toEqual([1, 0]);
    expect([...(await readSingleTensor('I8', [2], bytesOf(Int8Array.of(-128, 127))))]).toEqual([-128, 127]);
    expect([...(await readSingleTensor('I16', [2], bytesOf(Int16Array.of(-300, 300))))]).toEqual([-300, 300]);
    expect([...(await readSingleTensor('I32', [2, 1], bytesOf(Int32Array.of(-70000, 1 << 24))))]).toEqual([-70000, 1 << 24]);
    expect([...(await readSingleTensor('I64', [3], bytesOf(BigInt64Array.of(-3n, 0n, 1n << 40n))))]).toEqual([-3, 0, 2 ** 40]);
    expect([...(await readSingleTensor('F64', [2], bytesOf(Float64Array.of(0.5, -1e300))))]).toEqual([0.5, -Infinity]);
  });

  test('an F32 scalar and an empty tensor read back', async () => {
    expect([...(await readSingleTensor('F32', [], bytesOf(Float32Array.of(-1e9))))]).toEqual([-1e9]);
    expect(await readSingleTensor('F16', [0, 7], new Uint8Array(0))).toHaveLength(0);
  });

  test('in-place widening keeps every element when the source fills the tail of the result', async () => {
    const source = Uint16Array.from({ length: 1001 }, (_, i) => 0x3c00 + i);
    const values = await readAsFloat32('F16', source.length, async (target) => target.set(bytesOf(source)));
    expect([...values]).toEqual([...source].map((half) => 1 + (half - 0x3c00) / 1024));
  });
});

describe('rounding float32 to F16 / BF16 (for writing)', () => {
  const toHalf = (...values: number[]): number[] => [...float32ToFloat16Bits(Float32Array.from(values))];
  const toBFloat = (...values: number[]): number[] => [...float32ToBFloat16Bits(Float32Array.from(values))];

  test('F16 rounds to nearest even and handles overflow, subnormals, underflow and nan', () => {
    expect(toHalf(1, -2, 65504, 65519, 65520, 1e6, -Infinity)).toEqual([0x3c00, 0xc000, 0x7bff, 0x7bff, 0x7c00, 0x7c00, 0xfc00]);
    // 1 + 2^-11 is a tie between 1 and 1 + 2^-10: even wins; 1 + 3 * 2^-11 rounds up to the even 1 + 2^-9
    expect(toHalf(1 + 2 ** -11, 1 + 3 * 2 ** -11, 1 + 2 ** -11 + 2 ** -20)).toEqual([0x3c00, 0x3c02, 0x3c01]);
    expect(toHalf(2 ** -24, 1.5 * 2 ** -24, 2 ** -25, 2 ** -25 * 1.0001, 2 ** -26, -(2 ** -30))).toEqual([1, 2, 0, 1, 0, 0x8000]);
    expect(toHalf(1023 * 2 ** -24, 2 ** -14 - 2 ** -26)).toEqual([0x03ff, 0x0400]);
    const [nan] = toHalf(NaN);
    expect(nan & 0x7c00).toBe(0x7c00);
    expect(nan & 0x3ff).not.toBe(0);
  });

  test('F16 rounding agrees with a double-precision reference on many values', () => {
    const values = Float32Array.from({ length: 20000 }, (_, i) => Math.sinh((i - 10000) / 900) * (i % 7 === 0 ? 1e-6 : 1));
    const widened = (bits: number): number => {
      const exponent = (bits >> 10) & 0x1f;
      const magnitude = exponent === 0 ? (bits & 0x3ff) * 2 ** -24 : (1 + (bits & 0x3ff) / 1024) * 2 ** (exponent - 15);
      return bits & 0x8000 ? -magnitude : magnitude;
    };
    const halves = float32ToFloat16Bits(values);
    for (let i = 0; i < values.length; i++) {
      if (Math.abs(values[i]) >= 65504) continue;
      if (widened(halves[i]) !== roundToFloat16(values[i])) expect.fail(`${values[i]}: got 0x${halves[i].toString(16)}`);
    }
  });

  test('BF16 rounds to nearest even; nan stays nan', () => {
    expect(toBFloat(1, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1 + 2 ** -8 + 2 ** -20, 3.4e38, -Infinity)).toEqual([
      0x3f80, 0x3f80, 0x3f82, 0x3f81, 0x7f80, 0xff80,
    ]);
    const [nan] = toBFloat(NaN);
    expect(nan & 0x7f80).toBe(0x7f80);
    expect(nan & 0x7f).not.toBe(0);
  });

  test('F16 round trip through a file: write rounds, read widens back to the same values', async () => {
    const bits = Uint16Array.from(FLOAT16_CASES.filter(([half]) => (half & 0x7c00) !== 0x7c00 || (half & 0x3ff) === 0), ([half]) => half);
    const widened = await readSingleTensor('F16', [bits.length], bytesOf(bits));
    expect([...float32ToFloat16Bits(widened)]).toEqual([...bits]);
  });
});
