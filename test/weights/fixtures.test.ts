import { copyFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { CheckpointError, openCheckpoint, type Checkpoint } from '../../src/weights/index.js';
import { openSafetensors } from '../../src/weights/safetensors.js';
import { openTorchZip } from '../../src/weights/torch-zip.js';
import { fixture, float32Bits, roundToBFloat16, roundToFloat16, temporaryFolder } from './helpers.js';

async function withCheckpoint<T>(folder: string, use: (checkpoint: Checkpoint) => Promise<T>): Promise<T> {
  const checkpoint = await openCheckpoint(folder);
  try {
    return await use(checkpoint);
  } finally {
    await checkpoint.close();
  }
}

describe('released-style checkpoints', () => {
  test('tiny-random: model.safetensors and pytorch_model.bin hold bit-identical float32 tensors', async () => {
    const safetensors = await openSafetensors(fixture('tiny-random/model.safetensors'));
    const torchZip = await openTorchZip(fixture('tiny-random/pytorch_model.bin'));
    try {
      expect([...torchZip.tensors.keys()].sort()).toEqual([...safetensors.tensors.keys()].sort());
      expect(safetensors.tensors.size).toBe(62);
      for (const [name, info] of safetensors.tensors) {
        expect(torchZip.tensors.get(name), name).toEqual(info);
        const fromSafetensors = await safetensors.readFloat32(name);
        const fromTorch = await torchZip.readFloat32(name);
        expect(fromTorch.length, name).toBe(fromSafetensors.length);
        expect(Buffer.compare(Buffer.from(float32Bits(fromTorch).buffer), Buffer.from(float32Bits(fromSafetensors).buffer)), name).toBe(0);
      }
    } finally {
      await safetensors.close();
      await torchZip.close();
    }
  });

  test('buffers are returned like any tensor: masked_bias scalar and the U8 causal mask of global layers', async () => {
    await withCheckpoint(fixture('tiny-random'), async (checkpoint) => {
      expect(checkpoint.tensors.get('transformer.h.1.attn.attention.masked_bias')).toEqual({
        name: 'transformer.h.1.attn.attention.masked_bias',
        dtype: 'F32',
        shape: [],
      });
      expect([...(await checkpoint.readFloat32('transformer.h.1.attn.attention.masked_bias'))]).toEqual([-1e9]);
      expect(checkpoint.tensors.get('transformer.h.0.attn.attention.bias')).toMatchObject({ dtype: 'U8', shape: [1, 1, 128, 128] });
      expect(checkpoint.tensors.has('transformer.h.1.attn.attention.bias')).toBe(false);
      const mask = await checkpoint.readFloat32('transformer.h.0.attn.attention.bias');
      for (const [row, column] of [[0, 0], [5, 3], [127, 127], [3, 5], [0, 127]]) {
        expect(mask[row * 128 + column], `${row},${column}`).toBe(column <= row ? 1 : 0);
      }
    });
  });

  test('prefers model.safetensors over pytorch_model.bin, and falls back to the .bin alone', async () => {
    await withCheckpoint(fixture('tiny-random'), async (checkpoint) => {
      expect(checkpoint.files).toEqual([path.join(fixture('tiny-random'), 'model.safetensors')]);
    });
    const folder = await temporaryFolder();
    await copyFile(fixture('tiny-random/pytorch_model.bin'), path.join(folder, 'pytorch_model.bin'));
    await withCheckpoint(folder, async (checkpoint) => {
      expect(checkpoint.files).toEqual([path.join(folder, 'pytorch_model.bin')]);
      expect(checkpoint.tensors.size).toBe(62);
    });
  });

  for (const [folder, dtype, round] of [
    ['tiny-random-fp16', 'F16', roundToFloat16],
    ['tiny-random-bf16', 'BF16', roundToBFloat16],
  ] as const) {
    test(`${folder} widens to exactly the ${dtype}-rounded values of tiny-random's float32 weights`, async () => {
      const reference = await openCheckpoint(fixture('tiny-random'));
      try {
        await withCheckpoint(fixture(folder), async (checkpoint) => {
          let compared = 0;
          for (const [name, info] of checkpoint.tensors) {
            if (info.dtype !== dtype || !reference.tensors.has(name)) continue;
            const exact = await reference.readFloat32(name);
            const widened = await checkpoint.readFloat32(name);
            expect(widened.length).toBe(exact.length);
            const halfStep = dtype === 'F16' ? 2 ** -11 : 2 ** -8;
            for (let i = 0; i < exact.length; i++) {
              const withinHalfStep = Math.abs(widened[i] - exact[i]) <= Math.abs(exact[i]) * halfStep + 2 ** -25;
              if (!withinHalfStep || widened[i] !== round(exact[i])) {
                expect.fail(`${name}[${i}]: ${exact[i]} widened to ${widened[i]}, expected ${round(exact[i])}`);
              }
            }
            compared++;
          }
          expect(compared).toBeGreaterThanOrEqual(50);
        });
      } finally {
        await reference.close();
      }
    });
  }

  test('tiny-trained (F16, vocab 50257) opens and reads', async () => {
    await withCheckpoint(fixture('tiny-trained'), async (checkpoint) => {
      expect(checkpoint.tensors.get('transformer.wte.weight')).toMatchObject({ dtype: 'F16', shape: [50257, 128] });
      const embedding = await checkpoint.readFloat32('transformer.wte.weight');
      expect(embedding.length).toBe(50257 * 128);
      expect(embedding.every(Number.isFinite)).toBe(true);
    });
  });

  test('a folder without weights is an error naming the folder and the files looked for', async () => {
    const folder = await temporaryFolder();
    const error = await openCheckpoint(folder).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(CheckpointError);
    const message = (error as Error).message;
    expect(message).toContain(folder);
    for (const file of ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json']) {
      expect(message).toContain(file);
    }
  });

  test('reading an unknown tensor, or after close, is a CheckpointError', async () => {
    const checkpoint = await openCheckpoint(fixture('tiny-random'));
    await expect(checkpoint.readFloat32('lm_head.weight')).rejects.toThrow(/no tensor 'lm_head.weight'/);
    await checkpoint.close();
    await expect(checkpoint.readFloat32('transformer.wte.weight')).rejects.toThrow(CheckpointError);
  });
});
