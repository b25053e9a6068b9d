import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { CheckpointError, openCheckpoint, writeSafetensors, type Checkpoint } from '../../src/weights/index.js';
import { bytesOf, fixture, float32Bits, stateDictPickle, temporaryFolder, torchZipBytes, writeBytes } from './helpers.js';

const SHARDS = ['model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors'];

/** Splits tiny-random over two safetensors shards (alternating tensors) with an index.json, in a fresh folder. */
async function shardTinyRandom(): Promise<{ folder: string; weightMap: Record<string, string> }> {
  const folder = await temporaryFolder();
  const source = await openCheckpoint(fixture('tiny-random'));
  const weightMap: Record<string, string> = {};
  try {
    const names = [...source.tensors.keys()];
    for (const [shardIndex, shard] of SHARDS.entries()) {
      const mine = names.filter((_, i) => i % 2 === shardIndex);
      for (const name of mine) weightMap[name] = shard;
      await writeSafetensors(
        path.join(folder, shard),
        mine.map((name) => {
          // everything is written as F32, the U8 causal mask included: its 0/1 values survive exactly
          return { name, dtype: 'F32' as const, shape: source.tensors.get(name)!.shape, data: () => source.readFloat32(name) };
        }),
      );
    }
  } finally {
    await source.close();
  }
  await writeFile(path.join(folder, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 0 }, weight_map: weightMap }));
  return { folder, weightMap };
}

async function expectSameTensors(actual: Checkpoint, expected: Checkpoint): Promise<void> {
  expect([...actual.tensors.keys()].sort()).toEqual([...expected.tensors.keys()].sort());
  for (const name of expected.tensors.keys()) {
    expect([...float32Bits(await actual.readFloat32(name))], name).toEqual([...float32Bits(await expected.readFloat32(name))]);
  }
}

describe('sharded checkpoints', () => {
  test('a safetensors index over two shards gives the same tensors as the single file', async () => {
    const { folder } = await shardTinyRandom();
    const sharded = await openCheckpoint(folder);
    const single = await openCheckpoint(fixture('tiny-random'));
    try {
      expect(sharded.files).toEqual(SHARDS.map((shard) => path.join(folder, shard)));
      await expectSameTensors(sharded, single);
    } finally {
      await sharded.close();
      await single.close();
    }
  });

  test('a missing shard is named', async () => {
    const { folder } = await shardTinyRandom();
    await rm(path.join(folder, SHARDS[1]));
    const opening = openCheckpoint(folder);
    await expect(opening).rejects.toThrow(CheckpointError);
    await expect(opening).rejects.toThrow(`shard '${SHARDS[1]}' is missing`);
  });

  test('an index that puts a tensor in the wrong shard is refused, naming tensor and shard', async () => {
    const { folder, weightMap } = await shardTinyRandom();
    weightMap['transformer.wte.weight'] = weightMap['transformer.wte.weight'] === SHARDS[0] ? SHARDS[1] : SHARDS[0];
    await writeFile(path.join(folder, 'model.safetensors.index.json'), JSON.stringify({ weight_map: weightMap }));
    await expect(openCheckpoint(folder)).rejects.toThrow(/tensor 'transformer.wte.weight' is not in its shard 'model-0000\d-of-00002.safetensors'/);
  });

  test('a tensor stored in two shards is refused', async () => {
    const folder = await temporaryFolder();
    const tensor = { name: 'twice', dtype: 'F32' as const, shape: [1], data: () => Float32Array.of(1) };
    await writeSafetensors(path.join(folder, SHARDS[0]), [tensor]);
    await writeSafetensors(path.join(folder, SHARDS[1]), [tensor, { ...tensor, name: 'also' }]);
    await writeFile(path.join(folder, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { twice: SHARDS[0], also: SHARDS[1] } }));
    await expect(openCheckpoint(folder)).rejects.toThrow(/tensor 'twice' appears in both/);
  });

  test('a malformed index or a shard outside the folder is refused', async () => {
    const folder = await temporaryFolder();
    const index = path.join(folder, 'model.safetensors.index.json');
    await writeFile(index, '{"weight_map": ');
    await expect(openCheckpoint(folder)).rejects.toThrow(/model.safetensors.index.json: malformed index/);
    await writeFile(index, JSON.stringify({ metadata: {} }));
    await expect(openCheckpoint(folder)).rejects.toThrow(/no "weight_map" object/);
    await writeFile(index, JSON.stringify({ weight_map: { w: '../elsewhere.safetensors' } }));
    await expect(openCheckpoint(folder)).rejects.toThrow(/shard name '..\/elsewhere.safetensors' points outside the model folder/);
  });

  test('pytorch_model.bin.index.json over torch zip shards', async () => {
    const folder = await temporaryFolder();
    const shardOf = { first: 'pytorch_model-00001-of-00002.bin', second: 'pytorch_model-00002-of-00002.bin' };
    for (const [name, shard] of Object.entries(shardOf)) {
      const values = Float32Array.of(name.length, -name.length);
      const pickle = stateDictPickle([{ name, storageClass: 'FloatStorage', key: '0', storageElements: 2, shape: [2] }]);
      await writeBytes(path.join(folder, shard), torchZipBytes(pickle, { 0: bytesOf(values) }));
    }
    await writeFile(path.join(folder, 'pytorch_model.bin.index.json'), JSON.stringify({ weight_map: shardOf }));
    const checkpoint = await openCheckpoint(folder);
    try {
      expect(checkpoint.files).toEqual(Object.values(shardOf).map((shard) => path.join(folder, shard)));
      expect([...(await checkpoint.readFloat32('first'))]).toEqual([5, -5]);
      expect([...(await checkpoint.readFloat32('second'))]).toEqual([6, -6]);
    } finally {
      await checkpoint.close();
    }
  });
});
