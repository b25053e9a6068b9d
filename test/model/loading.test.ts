// Checkpoint formats and bad inputs, seen through the public model API.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { openCheckpoint, writeSafetensors } from '../../src/weights/index.js';
import { fixture, readReference } from '../helpers/fixtures.js';

const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-model-'));

/** A copy of tiny-random whose tensors pass through `edit` (return null to drop one). */
async function editedCheckpoint(edit: (name: string, shape: number[], data: Float32Array) => { shape: number[]; data: Float32Array } | null) {
  const folder = tmp();
  copyFileSync(fixture('tiny-random', 'config.json'), path.join(folder, 'config.json'));
  const source = await openCheckpoint(fixture('tiny-random'));
  const tensors = [];
  for (const info of source.tensors.values()) {
    if (info.dtype !== 'F32') continue;
    const edited = edit(info.name, info.shape, await source.readFloat32(info.name));
    if (edited) tensors.push({ name: info.name, dtype: 'F32' as const, shape: edited.shape, data: () => edited.data });
  }
  await source.close();
  await writeSafetensors(path.join(folder, 'model.safetensors'), tensors);
  return folder;
}

describe('checkpoint formats', () => {
  it('pytorch_model.bin gives exactly the logits of model.safetensors', async () => {
    const folder = tmp();
    copyFileSync(fixture('tiny-random', 'config.json'), path.join(folder, 'config.json'));
    copyFileSync(fixture('tiny-random', 'pytorch_model.bin'), path.join(folder, 'pytorch_model.bin'));
    const ids = readReference('tiny-random').forward.at(-1).input_ids;
    const fromBin = await GPTNeoForCausalLM.from_pretrained(folder);
    const fromSafetensors = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-random'));
    const a = await fromBin.forward({ input_ids: ids });
    const b = await fromSafetensors.forward({ input_ids: ids });
    expect(a.logits.data).toEqual(b.logits.data);
    await fromBin.dispose();
    await fromSafetensors.dispose();
  });

  it('with tie_word_embeddings: false the head is lm_head.weight, not wte', async () => {
    const folder = await editedCheckpoint((_n, shape, data) => ({ shape, data }));
    const config = JSON.parse(readFileSync(fixture('tiny-random', 'config.json'), 'utf8'));
    writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...config, tie_word_embeddings: false }));
    await expect(GPTNeoForCausalLM.from_pretrained(folder)).rejects.toThrow(
      "missing tensor 'lm_head.weight' (expected shape [1000, 32])",
    );
  });
});

describe('bad checkpoints are named', () => {
  it('a missing tensor', async () => {
    const folder = await editedCheckpoint((name, shape, data) => (name === 'transformer.h.2.mlp.c_fc.bias' ? null : { shape, data }));
    await expect(GPTNeoForCausalLM.from_pretrained(folder)).rejects.toThrow(
      "missing tensor 'transformer.h.2.mlp.c_fc.bias' (expected shape [128])",
    );
  });

  it('a mis-shaped tensor', async () => {
    const folder = await editedCheckpoint((name, shape, data) =>
      name === 'transformer.h.1.attn.attention.q_proj.weight' ? { shape: [16, 64], data } : { shape, data },
    );
    await expect(GPTNeoForCausalLM.from_pretrained(folder)).rejects.toThrow(
      "tensor 'transformer.h.1.attn.attention.q_proj.weight' has shape [16, 64], expected [32, 32]",
    );
  });

  it('an unknown activation function', async () => {
    const folder = tmp();
    const config = JSON.parse(readFileSync(fixture('tiny-random', 'config.json'), 'utf8'));
    writeFileSync(path.join(folder, 'config.json'), JSON.stringify({ ...config, activation_function: 'relu' }));
    await expect(GPTNeoForCausalLM.from_pretrained(folder)).rejects.toThrow('activation_function "relu" is not supported');
  });
});

describe('bad inputs are named', () => {
  let model: GPTNeoForCausalLM;
  beforeAll(async () => {
    model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-random'));
  });
  afterAll(() => model.dispose());

  it('token ids outside the vocabulary', async () => {
    await expect(model.forward({ input_ids: [[1, 2, 1000]] })).rejects.toThrow(
      'input_ids[0][2] = 1000 is outside the vocabulary (0..999)',
    );
    await expect(model.forward({ input_ids: [[-1]] })).rejects.toThrow('outside the vocabulary');
  });

  it('sequences longer than max_position_embeddings', async () => {
    await expect(model.forward({ input_ids: [new Array(129).fill(5)] })).rejects.toThrow(
      'sequence length 129 exceeds max_position_embeddings 128',
    );
    const session = model.createSession(1);
    await session.forward({ input_ids: [new Array(128).fill(5)] });
    await expect(session.forward({ input_ids: [[5]] })).rejects.toThrow('exceeds max_position_embeddings 128');
  });

  it('ragged batches and mismatched masks', async () => {
    await expect(model.forward({ input_ids: [[1, 2], [3]] })).rejects.toThrow('same length');
    await expect(model.forward({ input_ids: [[1, 2]], attention_mask: [[1]] })).rejects.toThrow('attention_mask');
  });
});
