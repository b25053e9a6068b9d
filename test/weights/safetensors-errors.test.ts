import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { CheckpointError, openCheckpoint } from '../../src/weights/index.js';
import { safetensorsBytes, temporaryFolder, writeBytes } from './helpers.js';

const f32 = (name: string, shape: number[], begin: number, end: number): Record<string, unknown> => ({
  [name]: { dtype: 'F32', shape, data_offsets: [begin, end] },
});

/** Writes the bytes as a model folder's model.safetensors and returns the error opening it gives. */
async function openError(bytes: Uint8Array): Promise<{ error: unknown; file: string }> {
  const folder = await temporaryFolder();
  const file = await writeBytes(path.join(folder, 'model.safetensors'), bytes);
  const error = await openCheckpoint(folder).then(
    (checkpoint) => checkpoint.close().then(() => undefined),
    (caught: unknown) => caught,
  );
  return { error, file };
}

async function expectRejected(bytes: Uint8Array, ...messageParts: Array<string | RegExp>): Promise<void> {
  const { error, file } = await openError(bytes);
  expect(error).toBeInstanceOf(CheckpointError);
  const message = (error as Error).message;
  expect(message).toContain(file);
  for (const part of messageParts) {
    if (typeof part === 'string') expect(message).toContain(part);
    else expect(message).toMatch(part);
  }
}

describe('malformed safetensors files are refused with a message naming the file, tensor and problem', () => {
  test('a well-formed file opens (the baseline the bad cases differ from)', async () => {
    const { error } = await openError(safetensorsBytes({ ...f32('a', [2], 0, 8), ...f32('b', [], 8, 12) }, new Uint8Array(12)));
    expect(error).toBeUndefined();
  });

  test('file shorter than the 8-byte length', async () => {
    await expectRejected(Uint8Array.of(1, 2, 3), 'too short');
  });

  test('header length past the end of the file', async () => {
    await expectRejected(safetensorsBytes(f32('a', [1], 0, 4), new Uint8Array(4), 5000n), 'header length 5000', 'past the end');
  });

  test('absurd header length', async () => {
    await expectRejected(safetensorsBytes('{}', new Uint8Array(0), 1n << 60n), `header length ${1n << 60n}`, 'absurd');
  });

  test('malformed JSON', async () => {
    await expectRejected(safetensorsBytes('{"a": {"dtype": "F32",', new Uint8Array(4)), 'malformed JSON header');
  });

  test('header that is not an object of tensors', async () => {
    await expectRejected(safetensorsBytes('[1, 2]', new Uint8Array(0)), 'malformed JSON header');
    await expectRejected(safetensorsBytes({ a: 'F32' }, new Uint8Array(0)), "tensor 'a'", 'not an object');
  });

  test('unknown dtype', async () => {
    const header = { w: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } };
    await expectRejected(safetensorsBytes(header, new Uint8Array(4)), "tensor 'w'", "unknown dtype 'F8_E4M3'");
  });

  test('shape that is not a list of non-negative integers', async () => {
    const header = { w: { dtype: 'F32', shape: [2, -1], data_offsets: [0, 8] } };
    await expectRejected(safetensorsBytes(header, new Uint8Array(8)), "tensor 'w'", 'shape [2,-1]');
  });

  test('data_offsets out of range of the data section', async () => {
    await expectRejected(safetensorsBytes(f32('w', [4], 0, 16), new Uint8Array(12)), "tensor 'w'", 'data_offsets [0, 16]', 'past the data section (12 bytes)');
  });

  test('data_offsets that end before they begin', async () => {
    await expectRejected(safetensorsBytes(f32('w', [1], 8, 4), new Uint8Array(8)), "tensor 'w'", 'data_offsets [8, 4]', 'end before they begin');
  });

  test('malformed data_offsets', async () => {
    const header = { w: { dtype: 'F32', shape: [1], data_offsets: [0] } };
    await expectRejected(safetensorsBytes(header, new Uint8Array(4)), "tensor 'w'", 'data_offsets [0]');
  });

  test('overlapping tensors', async () => {
    const header = { ...f32('first', [2], 0, 8), ...f32('second', [2], 4, 12) };
    await expectRejected(safetensorsBytes(header, new Uint8Array(12)), "'first' and 'second' overlap");
  });

  test('byte size that does not match shape and dtype', async () => {
    await expectRejected(safetensorsBytes(f32('w', [3, 2], 0, 20), new Uint8Array(24)), "tensor 'w'", 'byte size 20', 'shape [3, 2] of F32 (24 bytes)');
    const half = { h: { dtype: 'F16', shape: [3], data_offsets: [0, 4] } };
    await expectRejected(safetensorsBytes(half, new Uint8Array(4)), "tensor 'h'", 'byte size 4', '(6 bytes)');
  });
});
