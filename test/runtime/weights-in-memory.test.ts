// Weights in process memory (fp32's block weights reordered by ONNX Runtime for its convolutions, the float32 head
// in 2 MiB pages fed as a graph input) against fp32's Gemm over the memory-mapped file.
import { copyFileSync, mkdtempSync, readFileSync, truncateSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import koffi from 'koffi';
import onnxProto from 'onnx-proto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/model/config.js';
import { type OnnxModel, prepareOnnxModel } from '../../src/convert/convert.js';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { loadWeightsIntoMemory } from '../../src/runtime/weights-in-memory.js';
import { fixture, maxAbsDiff, readReference } from '../helpers/fixtures.js';
import { vmFlagsAt } from '../helpers/memory.js';

const { onnx } = onnxProto;

describe('fp32 weights in memory', () => {
  let conversion: OnnxModel;
  beforeAll(async () => {
    conversion = await prepareOnnxModel(fixture('tiny-random'), await loadConfig(fixture('tiny-random')), 'fp32', 'causal-lm', undefined, 'conv');
  });
  afterAll(async () => {
    await conversion.release();
  });

  it('decodes as the memory-mapped weights do, prompt and cached steps', async () => {
    const ids: number[][] = readReference('tiny-random').forward.at(-1).input_ids;
    const decode = async (weightsInMemory: boolean) => {
      const model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-random'), { weightsInMemory });
      const session = model.createSession(ids.length);
      const steps = [await session.forward({ input_ids: ids })];
      for (const token of [5, 17, 999]) steps.push(await session.forward({ input_ids: ids.map(() => [token]) }));
      await model.dispose();
      return steps.map((step) => Array.from(step.data));
    };
    const [inMemory, mapped] = [await decode(true), await decode(false)];
    expect(inMemory).toHaveLength(mapped.length);
    // Convolution and Gemm kernels sum in different orders: equal to float32 rounding, far inside the 1e-4 parity bound.
    inMemory.forEach((step, i) => expect(maxAbsDiff(step, mapped[i]!)).toBeLessThan(1e-5));
  });

  it('feeds the float32 head from memory holding the bytes of the weights file, and leaves the other weights external', async () => {
    const weights = await loadWeightsIntoMemory(conversion.modelPath);
    try {
      const original = onnx.ModelProto.decode(readFileSync(conversion.modelPath)).graph!;
      const rewritten = onnx.ModelProto.decode(weights.model).graph!;
      const isExternal = (t: { dataLocation?: number | null }) => t.dataLocation === onnx.TensorProto.DataLocation.EXTERNAL;
      const external = original.initializer!.filter((t) => isExternal(t) && original.input!.some((i) => i.name === t.name));
      expect(external.map((t) => t.name)).toEqual(['transformer.wte.weight']);
      expect(Object.keys(weights.feeds)).toEqual(['transformer.wte.weight']);
      const left = original.initializer!.filter((t) => isExternal(t) && t.name !== 'transformer.wte.weight').map((t) => t.name);
      expect(left.length).toBeGreaterThan(10);
      expect(rewritten.initializer!.filter(isExternal).map((t) => t.name)).toEqual(left);
      const file = readFileSync(path.join(path.dirname(conversion.modelPath), 'weights.bin'));
      for (const tensor of external) {
        const input = rewritten.input!.find((i) => i.name === tensor.name)!;
        expect(input.type!.tensorType!.shape!.dim!.map((d) => Number(d.dimValue))).toEqual(tensor.dims!.map(Number));
        const at = new Map(tensor.externalData!.map((e) => [e.key, Number(e.value)]));
        const fed = weights.feeds[tensor.name!]!;
        const data = fed.data as Float32Array;
        expect(fed.dims).toEqual(tensor.dims!.map(Number));
        const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
        expect(Buffer.from(bytes).equals(file.subarray(at.get('offset'), at.get('offset')! + at.get('length')!))).toBe(true);
      }
      expect(weights.bytes % (2 * 2 ** 20)).toBe(0);
      if (process.platform === 'linux') expect(vmFlagsAt(koffi.address(weights.feeds[external[0]!.name!]!.data))).toContain('hg');
    } finally {
      weights.release();
    }
  });

  it('names a weights file that is cut short', async () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-weights-'));
    copyFileSync(conversion.modelPath, path.join(folder, 'model.onnx'));
    const cut = path.join(folder, 'weights.bin');
    copyFileSync(path.join(path.dirname(conversion.modelPath), 'weights.bin'), cut);
    truncateSync(cut, 1000);
    await expect(loadWeightsIntoMemory(path.join(folder, 'model.onnx'))).rejects.toThrow(`${cut} ends at 1000 bytes, but the model's weights need`);
  });

  it('rejects a GPT_NEO_WEIGHTS_IN_MEMORY that is not 0 or 1', async () => {
    process.env.GPT_NEO_WEIGHTS_IN_MEMORY = 'yes';
    try {
      await expect(GPTNeoForCausalLM.from_pretrained(fixture('tiny-random'))).rejects.toThrow("GPT_NEO_WEIGHTS_IN_MEMORY must be 0 or 1, got 'yes'");
    } finally {
      delete process.env.GPT_NEO_WEIGHTS_IN_MEMORY;
    }
  });
});
