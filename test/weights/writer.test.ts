import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { CheckpointError, openCheckpoint, writeSafetensors } from '../../src/weights/index.js';
import { float32Bits, roundToBFloat16, roundToFloat16, temporaryFolder } from './helpers.js';

const SPECIAL_VALUES = Float32Array.of(0, -0, 1, -1.5, 1e-40, -3e-45, 3.4028234663852886e38, Infinity, -Infinity, NaN, 0.1, 65504, 1e-6);

function parseHeader(bytes: Uint8Array): { length: number; json: Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }> } {
  const length = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  return { length, json: JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + length))) };
}

describe('writeSafetensors', () => {
  test('round trip: F32 bit-exact, F16 / BF16 rounded to nearest even, order and metadata kept', async () => {
    const folder = await temporaryFolder();
    const file = path.join(folder, 'model.safetensors');
    const ramp = Float32Array.from({ length: 300 }, (_, i) => Math.fround((i - 150) * 0.0123456));
    await writeSafetensors(
      file,
      [
        { name: 'z.special', dtype: 'F32', shape: [SPECIAL_VALUES.length], data: () => SPECIAL_VALUES },
        { name: 'half', dtype: 'F16', shape: [3, 100], data: async () => ramp },
        { name: '0', dtype: 'BF16', shape: [300], data: () => ramp },
        { name: 'scalar', dtype: 'F32', shape: [], data: () => Float32Array.of(-1e9) },
        { name: 'empty', dtype: 'F16', shape: [0, 4], data: () => new Float32Array(0) },
      ],
      { format: 'pt' },
    );

    const bytes = new Uint8Array(await readFile(file));
    const { length, json } = parseHeader(bytes);
    expect(length % 8).toBe(0);
    expect(Object.keys(json)).toContain('__metadata__');
    expect(json.__metadata__).toEqual({ format: 'pt' });
    expect(json['z.special'].data_offsets).toEqual([0, 52]);
    expect(json.half.data_offsets).toEqual([52, 652]);
    expect(json['0'].data_offsets).toEqual([652, 1252]);
    expect(bytes.length).toBe(8 + length + 1252 + 4);

    const checkpoint = await openCheckpoint(folder);
    try {
      expect(checkpoint.tensors.get('half')).toEqual({ name: 'half', dtype: 'F16', shape: [3, 100] });
      expect([...float32Bits(await checkpoint.readFloat32('z.special'))]).toEqual([...float32Bits(SPECIAL_VALUES)]);
      expect([...(await checkpoint.readFloat32('half'))]).toEqual([...ramp].map(roundToFloat16));
      expect([...(await checkpoint.readFloat32('0'))]).toEqual([...ramp].map(roundToBFloat16));
      expect([...(await checkpoint.readFloat32('scalar'))]).toEqual([-1e9]);
      expect(await checkpoint.readFloat32('empty')).toHaveLength(0);
    } finally {
      await checkpoint.close();
    }
  });

  test('asks for each tensor only when writing it, once, in order', async () => {
    const file = path.join(await temporaryFolder(), 'streamed.safetensors');
    const calls: string[] = [];
    const sizesSeen: number[] = [];
    const tensor = (name: string) => ({
      name,
      dtype: 'F32' as const,
      shape: [1000],
      data: async () => {
        calls.push(name);
        sizesSeen.push((await stat(file)).size);
        return new Float32Array(1000).fill(calls.length);
      },
    });
    await writeSafetensors(file, [tensor('a'), tensor('b'), tensor('c')]);
    expect(calls).toEqual(['a', 'b', 'c']);
    // header first, then one tensor more before each following request
    expect(sizesSeen[1] - sizesSeen[0]).toBe(4000);
    expect(sizesSeen[2] - sizesSeen[1]).toBe(4000);
  });

  test('data of the wrong length is an error and leaves no file behind', async () => {
    const file = path.join(await temporaryFolder(), 'bad.safetensors');
    const writing = writeSafetensors(file, [
      { name: 'ok', dtype: 'F32', shape: [2], data: () => new Float32Array(2) },
      { name: 'short', dtype: 'F16', shape: [2, 3], data: () => new Float32Array(5) },
    ]);
    await expect(writing).rejects.toThrow(CheckpointError);
    await expect(writing).rejects.toThrow(/tensor 'short': data has 5 values, shape \[2, 3\] needs 6/);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });

  test('duplicate names and unwritable dtypes are refused before anything is written', async () => {
    const file = path.join(await temporaryFolder(), 'bad.safetensors');
    const data = (): Float32Array => new Float32Array(1);
    await expect(
      writeSafetensors(file, [
        { name: 'x', dtype: 'F32', shape: [1], data },
        { name: 'x', dtype: 'F32', shape: [1], data },
      ]),
    ).rejects.toThrow(/tensor 'x': duplicate/);
    await expect(writeSafetensors(file, [{ name: 'x', dtype: 'U8' as 'F32', shape: [1], data }])).rejects.toThrow(/cannot write dtype 'U8'/);
    await expect(stat(file)).rejects.toThrow(/ENOENT/);
  });
});
