import path from 'node:path';
import { describe, expect, test } from 'vitest';
import { float32ToBFloat16Bits, float32ToFloat16Bits } from '../../src/weights/dtype.js';
import { CheckpointError, openCheckpoint } from '../../src/weights/index.js';
import {
  bytesOf,
  PickleWriter,
  stateDictPickle,
  temporaryFolder,
  torchZipBytes,
  writeBytes,
  zipBytes,
  type PickledTensor,
} from './helpers.js';

const SIX = Float32Array.of(0, 1, 2, 3, 4, 5);

/** Writes `bytes` as a folder's pytorch_model.bin and opens it. */
async function openBin(bytes: Uint8Array): Promise<Awaited<ReturnType<typeof openCheckpoint>>> {
  const folder = await temporaryFolder();
  await writeBytes(path.join(folder, 'pytorch_model.bin'), bytes);
  return openCheckpoint(folder);
}

async function openBinError(bytes: Uint8Array): Promise<Error> {
  const error = await openBin(bytes).then(
    async (checkpoint) => {
      await checkpoint.close();
      throw new Error('expected the checkpoint to be refused');
    },
    (caught: unknown) => caught,
  );
  expect(error).toBeInstanceOf(CheckpointError);
  expect((error as Error).message).toContain('pytorch_model.bin: ');
  return error as Error;
}

const storagesFor = (...tensors: PickledTensor[]): Record<string, Uint8Array> =>
  Object.fromEntries(tensors.map((tensor) => [tensor.key, new Uint8Array(tensor.storageElements * 4)]));

describe('pytorch_model.bin (torch zip + restricted unpickler)', () => {
  for (const protocol of [2, 4]) {
    test(`protocol ${protocol}: views, storage sharing, parameters, half/bfloat16/long storages`, async () => {
      const tensors: PickledTensor[] = [
        { name: 'matrix', storageClass: 'FloatStorage', key: '0', storageElements: 6, shape: [2, 3], parameter: true },
        { name: 'transposed', storageClass: 'FloatStorage', key: '0', storageElements: 6, shape: [3, 2], stride: [1, 3] },
        { name: 'tail', storageClass: 'FloatStorage', key: '0', storageElements: 6, offset: 2, shape: [4] },
        { name: 'column', storageClass: 'FloatStorage', key: '0', storageElements: 6, offset: 1, shape: [2, 1], stride: [3, 7] },
        { name: 'half', storageClass: 'HalfStorage', key: 'h', storageElements: 3, shape: [3] },
        { name: 'brain', storageClass: 'BFloat16Storage', key: 'b', storageElements: 2, shape: [1, 2] },
        { name: 'long', storageClass: 'LongStorage', key: 'l', storageElements: 2, shape: [2] },
        { name: 'mask', storageClass: 'ByteStorage', key: 'm', storageElements: 4, shape: [1, 1, 2, 2] },
        { name: 'scalar', storageClass: 'FloatStorage', key: 's', storageElements: 1, shape: [] },
        { name: 'big.offset', storageClass: 'FloatStorage', key: 'z', storageElements: 100_000, offset: 99_999, shape: [1] },
      ];
      const big = new Float32Array(100_000);
      big[99_999] = 7;
      const storages = {
        0: bytesOf(SIX),
        h: bytesOf(float32ToFloat16Bits(Float32Array.of(0.5, -2, 2 ** -24))),
        b: bytesOf(float32ToBFloat16Bits(Float32Array.of(3, -0.25))),
        l: bytesOf(BigInt64Array.of(-7n, 1n << 33n)),
        m: Uint8Array.of(1, 0, 1, 1),
        s: bytesOf(Float32Array.of(-1e9)),
        z: bytesOf(big),
      };
      const checkpoint = await openBin(torchZipBytes(stateDictPickle(tensors, protocol), storages, { prefix: 'some_model_name' }));
      try {
        expect([...checkpoint.tensors.keys()]).toEqual(tensors.map((tensor) => tensor.name));
        expect(checkpoint.tensors.get('transposed')).toEqual({ name: 'transposed', dtype: 'F32', shape: [3, 2] });
        expect(checkpoint.tensors.get('brain')).toEqual({ name: 'brain', dtype: 'BF16', shape: [1, 2] });
        const read = async (name: string): Promise<number[]> => [...(await checkpoint.readFloat32(name))];
        expect(await read('matrix')).toEqual([0, 1, 2, 3, 4, 5]);
        expect(await read('transposed')).toEqual([0, 3, 1, 4, 2, 5]);
        expect(await read('tail')).toEqual([2, 3, 4, 5]);
        expect(await read('column')).toEqual([1, 4]);
        expect(await read('half')).toEqual([0.5, -2, 2 ** -24]);
        expect(await read('brain')).toEqual([3, -0.25]);
        expect(await read('long')).toEqual([-7, 2 ** 33]);
        expect(await read('mask')).toEqual([1, 0, 1, 1]);
        expect(await read('scalar')).toEqual([-1e9]);
        expect(await read('big.offset')).toEqual([7]);
      } finally {
        await checkpoint.close();
      }
    });
  }

  test('ZIP64 archives (what torch writes for files over 4 GB) are read', async () => {
    const tensor: PickledTensor = { name: 'w', storageClass: 'FloatStorage', key: '0', storageElements: 6, shape: [6] };
    const checkpoint = await openBin(torchZipBytes(stateDictPickle([tensor]), { 0: bytesOf(SIX) }, { zip64: true }));
    try {
      expect([...(await checkpoint.readFloat32('w'))]).toEqual([...SIX]);
    } finally {
      await checkpoint.close();
    }
  });

  describe('hostile or broken files are refused', () => {
    test("GLOBAL naming os.system (protocol 2) is refused by name, before anything runs", async () => {
      // \x80\x02 c os\nsystem\n X'echo pwned' \x85 R .
      const pickle = new PickleWriter(2).op(0x63, ...new TextEncoder().encode('os\nsystem\n')).str('echo pwned').op(0x85, 0x52).finish();
      const error = await openBinError(torchZipBytes(pickle, {}));
      expect(error.message).toMatch(/pytorch_model\.bin: refusing to load global 'os\.system' \(only state_dict tensors are allowed\)/);
    });

    test('STACK_GLOBAL naming builtins.eval (protocol 4) is refused by name', async () => {
      const pickle = new PickleWriter(4).str('builtins').str('eval').op(0x93).str('1+1').op(0x85, 0x52).finish();
      const error = await openBinError(torchZipBytes(pickle, {}));
      expect(error.message).toContain("refusing to load global 'builtins.eval'");
    });

    test('a global hidden inside a valid-looking state_dict is refused', async () => {
      const pickle = new PickleWriter(2)
        .global('collections', 'OrderedDict').op(0x29, 0x52)
        .str('w').global('torch.storage', '_load_from_bytes').str('payload').op(0x85, 0x52).op(0x73)
        .finish();
      const error = await openBinError(torchZipBytes(pickle, {}));
      expect(error.message).toContain("refusing to load global 'torch.storage._load_from_bytes'");
    });

    test('a missing storage entry is named', async () => {
      const tensor: PickledTensor = { name: 'w', storageClass: 'FloatStorage', key: '7', storageElements: 6, shape: [6] };
      const error = await openBinError(torchZipBytes(stateDictPickle([tensor]), {}));
      expect(error.message).toContain("tensor 'w': storage entry 'archive/data/7' is missing");
    });

    test('a view reaching past its storage, and a storage of the wrong size, are refused', async () => {
      const outside: PickledTensor = { name: 'w', storageClass: 'FloatStorage', key: '0', storageElements: 6, offset: 3, shape: [2, 2] };
      expect((await openBinError(torchZipBytes(stateDictPickle([outside]), storagesFor(outside)))).message).toContain(
        "tensor 'w': view (offset 3, shape [2,2], stride [2,1]) reaches element 7 of a storage of 6",
      );
      const lying: PickledTensor = { name: 'w', storageClass: 'FloatStorage', key: '0', storageElements: 6, shape: [6] };
      expect((await openBinError(torchZipBytes(stateDictPickle([lying]), { 0: new Uint8Array(20) }))).message).toContain(
        "storage 'archive/data/0' holds 20 bytes, the pickle says 6 F32 elements",
      );
    });

    test('a compressed storage entry is refused', async () => {
      const tensor: PickledTensor = { name: 'w', storageClass: 'FloatStorage', key: '0', storageElements: 6, shape: [6] };
      const bytes = zipBytes([
        { name: 'archive/data.pkl', data: stateDictPickle([tensor]) },
        { name: 'archive/data/0', data: bytesOf(SIX), deflate: true },
      ]);
      expect((await openBinError(bytes)).message).toContain("zip entry 'archive/data/0' is compressed");
    });

    test('a big-endian checkpoint is refused', async () => {
      const bytes = zipBytes([
        { name: 'archive/data.pkl', data: stateDictPickle([]) },
        { name: 'archive/byteorder', data: new TextEncoder().encode('big') },
      ]);
      expect((await openBinError(bytes)).message).toContain('big-endian');
    });

    test('not a zip (legacy torch.save), a zip without data.pkl, a corrupt zip', async () => {
      expect((await openBinError(Uint8Array.of(0x80, 0x02, 0x8a, 0x0a))).message).toContain('not a zip-format torch checkpoint');
      expect((await openBinError(zipBytes([{ name: 'other/file.txt', data: Uint8Array.of(1) }]))).message).toContain('no data.pkl');
      const truncated = torchZipBytes(stateDictPickle([]), {}).subarray(0, 200);
      expect((await openBinError(truncated)).message).toContain('cannot read the zip directory');
    });

    test('broken pickles: no STOP, unknown opcode, a storage that is not a persistent id, not a dict', async () => {
      const withoutStop = stateDictPickle([]).subarray(0, -1);
      expect((await openBinError(torchZipBytes(withoutStop, {}))).message).toContain('pickle ends unexpectedly');
      const unknownOpcode = new PickleWriter(2).op(0x69).finish(); // INST: imports and calls
      expect((await openBinError(torchZipBytes(unknownOpcode, {}))).message).toContain('unsupported pickle opcode 0x69 at byte 2');
      const persistentId = new PickleWriter(2).str('not a storage').op(0x51).finish();
      expect((await openBinError(torchZipBytes(persistentId, {}))).message).toContain('unsupported persistent id "not a storage"');
      const list = new PickleWriter(2).op(0x5d).finish();
      expect((await openBinError(torchZipBytes(list, {}))).message).toContain('not a state_dict');
      const underflow = new PickleWriter(2).op(0x28, 0x52).finish();
      expect((await openBinError(torchZipBytes(underflow, {}))).message).toContain('pickle stack underflow');
      const missingMemo = new PickleWriter(2).memoGet(9).finish();
      expect((await openBinError(torchZipBytes(missingMemo, {}))).message).toContain('memo entry 9');
      const notATensor = new PickleWriter(2).op(0x7d).str('w').int(3).op(0x73).finish();
      expect((await openBinError(torchZipBytes(notATensor, {}))).message).toContain("state_dict entry 'w' is not a tensor");
    });
  });
});
