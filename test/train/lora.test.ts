import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GPTNeoForCausalLM, Trainer } from '../../src/index.js';
import { openCheckpoint, writeSafetensors } from '../../src/weights/index.js';
import { openSafetensors } from '../../src/weights/safetensors.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { readTrainReference, TINY_RANDOM } from './helpers.js';

const { batch } = readTrainReference();
const R = 4;
const ALPHA = 8;
const HIDDEN = 32;
const LAYERS = 4;
const name = (layer: number, module: string, matrix: 'A' | 'B') =>
  `base_model.model.transformer.h.${layer}.attn.attention.${module}.lora_${matrix}.weight`;

/** The merged weights written by hand: W + (alpha / r) B A for every adapted module, in float64. */
async function mergeByHand(adapterDir: string, outDir: string): Promise<void> {
  const adapter = await openSafetensors(path.join(adapterDir, 'adapter_model.safetensors'));
  const base = await openCheckpoint(TINY_RANDOM);
  try {
    const tensors = [];
    for (const [tensorName, info] of base.tensors) {
      if (info.dtype !== 'F32' || tensorName.endsWith('masked_bias')) continue;
      const value = await base.readFloat32(tensorName);
      const module = /^(.*)\.weight$/.exec(tensorName)?.[1];
      const a = `base_model.model.${module}.lora_A.weight`;
      if (adapter.tensors.has(a)) {
        const A = await adapter.readFloat32(a);
        const B = await adapter.readFloat32(`base_model.model.${module}.lora_B.weight`);
        for (let o = 0; o < HIDDEN; o++) {
          for (let i = 0; i < HIDDEN; i++) {
            let sum = 0;
            for (let k = 0; k < R; k++) sum += B[o * R + k]! * A[k * HIDDEN + i]!;
            value[o * HIDDEN + i] = value[o * HIDDEN + i]! + (ALPHA / R) * sum;
          }
        }
      }
      tensors.push({ name: tensorName, dtype: 'F32' as const, shape: info.shape, data: () => value });
    }
    await writeSafetensors(path.join(outDir, 'model.safetensors'), tensors);
    copyFileSync(path.join(TINY_RANDOM, 'config.json'), path.join(outDir, 'config.json'));
  } finally {
    await adapter.close();
    await base.close();
  }
}

describe('LoRA in PEFT format', () => {
  const adapterDir = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-lora-'));
  let trainer: Trainer;
  let initial: Map<string, Float32Array>;
  beforeAll(async () => {
    trainer = await Trainer.from_pretrained(TINY_RANDOM, {
      learning_rate: 1e-2,
      lr_scheduler_type: 'constant',
      lora: { r: R, alpha: ALPHA },
      seed: 7,
      threads: 2,
    });
    initial = new Map([...trainer.parameters()].map(([key, value]) => [key, value.slice()]));
    for (let step = 0; step < 3; step++) await trainer.step(batch);
    await trainer.save_pretrained(adapterDir);
  });
  afterAll(async () => trainer.dispose());

  it("trains only lora_A [r, in] (Kaiming uniform, bound 1/sqrt(in)) and lora_B [out, r] (zeros) of PEFT's default targets", () => {
    const expected = [];
    for (let layer = 0; layer < LAYERS; layer++) for (const module of ['q_proj', 'v_proj']) expected.push(name(layer, module, 'A'), name(layer, module, 'B'));
    expect([...initial.keys()].sort()).toEqual(expected.sort());
    const a = initial.get(name(0, 'q_proj', 'A'))!;
    expect(a.length).toBe(R * HIDDEN);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / Math.sqrt(HIDDEN));
    expect(Math.max(...a.map(Math.abs))).toBeGreaterThan(0.8 / Math.sqrt(HIDDEN));
    expect(initial.get(name(0, 'q_proj', 'B'))!.every((x) => x === 0)).toBe(true);
    // The base is frozen: lora_B moved away from zero, and lora_A got a gradient through it after the first step.
    expect(trainer.parameters().get(name(0, 'q_proj', 'B'))!.some((x) => x !== 0)).toBe(true);
    expect(maxAbsDiff(trainer.parameters().get(name(0, 'q_proj', 'A'))!, a)).toBeGreaterThan(0);
  });

  it('writes adapter_config.json and adapter_model.safetensors with the names and shapes PEFT loads', async () => {
    const config = JSON.parse(readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', task_type: 'CAUSAL_LM', r: R, lora_alpha: ALPHA, target_modules: ['q_proj', 'v_proj'], base_model_name_or_path: TINY_RANDOM });
    const weights = await openSafetensors(path.join(adapterDir, 'adapter_model.safetensors'));
    try {
      expect(weights.tensors.size).toBe(LAYERS * 4);
      expect(weights.tensors.get(name(0, 'q_proj', 'A'))).toMatchObject({ dtype: 'F32', shape: [R, HIDDEN] });
      expect(weights.tensors.get(name(3, 'v_proj', 'B'))).toMatchObject({ dtype: 'F32', shape: [HIDDEN, R] });
    } finally {
      await weights.close();
    }
  });

  it('from_pretrained(base, { adapter }) equals the weights merged by hand, and the training graph computes the same loss', async () => {
    const mergedDir = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-merged-'));
    await mergeByHand(adapterDir, mergedDir);
    const withAdapter = await GPTNeoForCausalLM.from_pretrained(TINY_RANDOM, { adapter: adapterDir, threads: 2 });
    const merged = await GPTNeoForCausalLM.from_pretrained(mergedDir, { threads: 2 });
    const base = await GPTNeoForCausalLM.from_pretrained(TINY_RANDOM, { threads: 2 });
    try {
      const adapted = await withAdapter.forward(batch);
      const byHand = await merged.forward(batch);
      const plain = await base.forward(batch);
      expect(maxAbsDiff(adapted.logits.data, byHand.logits.data)).toBeLessThan(1e-5);
      expect(maxAbsDiff(adapted.logits.data, plain.logits.data)).toBeGreaterThan(1e-3);
      expect(Math.abs(adapted.loss! - (await trainer.evaluate(batch)))).toBeLessThan(1e-4);
    } finally {
      await Promise.all([withAdapter.dispose(), merged.dispose(), base.dispose()]);
    }
  });

  it('lora_dropout masks the adapter input with draws fixed by (seed, step): same seed, same step', async () => {
    const options = { learning_rate: 1e-2, lr_scheduler_type: 'constant' as const, lora: { r: R, alpha: ALPHA, dropout: 0.5 }, seed: 7, threads: 1 };
    const [first, second] = await Promise.all([Trainer.from_pretrained(TINY_RANDOM, options), Trainer.from_pretrained(TINY_RANDOM, options)]);
    try {
      // lora_B starts at zero, so step 1 gives lora_B a gradient through the dropped-out input only.
      await first.step(batch);
      await second.step(batch);
      const gradient = first.gradients().get(name(0, 'q_proj', 'B'))!;
      expect(second.gradients().get(name(0, 'q_proj', 'B'))).toEqual(gradient);
      const undropped = await Trainer.from_pretrained(TINY_RANDOM, { ...options, lora: { r: R, alpha: ALPHA } });
      try {
        await undropped.step(batch);
        expect(maxAbsDiff(undropped.gradients().get(name(0, 'q_proj', 'B'))!, gradient)).toBeGreaterThan(1e-4);
      } finally {
        await undropped.dispose();
      }
    } finally {
      await Promise.all([first.dispose(), second.dispose()]);
    }
    expect(JSON.parse(readFileSync(path.join(adapterDir, 'adapter_config.json'), 'utf8')).lora_dropout).toBe(0);
  });

  it('refuses a target module that names no layer', async () => {
    await expect(Trainer.from_pretrained(TINY_RANDOM, { lr_scheduler_type: 'constant', lora: { r: 2, alpha: 4, target_modules: ['q_proj', 'query_key_value'] } })).rejects.toThrow(
      /'query_key_value' name no linear layer/,
    );
  });
});

describe('LoRA targets that differ between blocks', () => {
  it("adapt only the blocks they name, with gradients equal to finite differences of the loss", async () => {
    // Block 2 has a q_proj adapter besides every block's c_fc one: two block layouts, two block graphs.
    const lora = { r: 2, alpha: 4, target_modules: ['h.2.attn.attention.q_proj', 'c_fc'] };
    const trainer = await Trainer.from_pretrained(TINY_RANDOM, { learning_rate: 0, lr_scheduler_type: 'constant', max_grad_norm: null, lora, threads: 1 });
    try {
      const names = [...trainer.parameters().keys()];
      expect(names.filter((n) => n.includes('q_proj'))).toEqual([name(2, 'q_proj', 'A'), name(2, 'q_proj', 'B')]);
      expect(names.filter((n) => n.includes('c_fc'))).toHaveLength(2 * LAYERS);
      await trainer.step(batch); // learning rate 0: the gradients of the parameters as they are
      // lora_B only: with lora_B at zero, lora_A's gradient is exactly zero.
      const checked = [name(2, 'q_proj', 'B'), 'base_model.model.transformer.h.3.mlp.c_fc.lora_B.weight', 'base_model.model.transformer.h.0.mlp.c_fc.lora_B.weight'];
      for (const tensor of checked) {
        const gradient = trainer.gradients().get(tensor)!;
        const i = gradient.reduce((best, g, j) => (Math.abs(g) > Math.abs(gradient[best]!) ? j : best), 0);
        const values = trainer.parameters().get(tensor)!;
        const saved = values[i]!;
        const h = 1e-2;
        values[i] = saved + h;
        const up = await trainer.evaluate(batch);
        values[i] = saved - h;
        const down = await trainer.evaluate(batch);
        values[i] = saved;
        expect(Math.abs(gradient[i]!), tensor).toBeGreaterThan(1e-3);
        expect(Math.abs((up - down) / (2 * h) - gradient[i]!), tensor).toBeLessThan(1e-4 + 0.02 * Math.abs(gradient[i]!));
      }
    } finally {
      await trainer.dispose();
    }
  });
});
