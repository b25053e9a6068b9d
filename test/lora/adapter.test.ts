// src/lora without a model: the config's defaults, which modules get an adapter, and an adapter written as PEFT
// saves it and merged back into a base checkpoint. Training one is test/train/lora.test.ts.
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  ADAPTER_WEIGHTS_FILE,
  adapterTarget,
  DEFAULT_TARGET_MODULES,
  initialLoraMatrix,
  loraConfig,
  loraConfigProblem,
  loraScaling,
  loraTensorName,
  withLoraAdapter,
  writeAdapter,
} from '../../src/lora/index.js';
import { CheckpointError, type Checkpoint } from '../../src/weights/index.js';
import { temporaryFolder } from '../weights/helpers.js';

const MODULE = 'transformer.h.0.attn.attention.q_proj';
const [OUT, IN, R] = [3, 4, 2];

/** A base checkpoint in memory holding one [OUT, IN] weight. */
function baseCheckpoint(weight: Float32Array): Checkpoint {
  return {
    tensors: new Map([[`${MODULE}.weight`, { name: `${MODULE}.weight`, dtype: 'F32', shape: [OUT, IN] }]]),
    files: [],
    readFloat32: async () => weight.slice(),
    close: async () => {},
  };
}

describe('LoRA config', () => {
  it("defaults as PEFT does for GPT-Neo: q_proj and v_proj, no dropout", () => {
    expect(loraConfig({ r: 8, alpha: 16 })).toEqual({ r: 8, alpha: 16, target_modules: ['q_proj', 'v_proj'], dropout: 0 });
    expect(DEFAULT_TARGET_MODULES).toEqual(['q_proj', 'v_proj']);
  });

  it('names what is wrong with a config', () => {
    expect(loraConfigProblem(loraConfig({ r: 8, alpha: 16 }))).toBeUndefined();
    expect(loraConfigProblem(loraConfig({ r: 0.5, alpha: 16 }))).toMatch(/r >= 1/);
    expect(loraConfigProblem(loraConfig({ r: 8, alpha: 16, target_modules: [] }))).toMatch(/target module/);
    expect(loraConfigProblem(loraConfig({ r: 8, alpha: 16, dropout: 1 }))).toMatch(/dropout must be in \[0, 1\)/);
  });
});

describe('LoRA layer', () => {
  it('adapts a module whose name is a target or ends with "." + target', () => {
    const config = loraConfig({ r: 2, alpha: 4, target_modules: ['q_proj', 'h.1.mlp.c_fc'] });
    expect(adapterTarget(MODULE, config)).toBe('q_proj');
    expect(adapterTarget('transformer.h.1.mlp.c_fc', config)).toBe('h.1.mlp.c_fc');
    expect(adapterTarget('transformer.h.11.mlp.c_fc', config)).toBeUndefined();
    expect(adapterTarget('transformer.h.0.attn.attention.k_proj', config)).toBeUndefined();
  });

  it('starts A Kaiming-uniform within 1/sqrt(in) and B at zero; scales by alpha / r (alpha / sqrt(r) with rsLoRA)', () => {
    let state = 0;
    const random = { next: () => (state = (state + 0.37) % 1) };
    const a = initialLoraMatrix('A', [R, 16], random);
    expect(Math.max(...a.map(Math.abs))).toBeLessThanOrEqual(1 / 4);
    expect(a.some((x) => x !== 0)).toBe(true);
    expect(initialLoraMatrix('B', [16, R], random).every((x) => x === 0)).toBe(true);
    expect(loraScaling(4, 8)).toBe(2);
    expect(loraScaling(4, 8, true)).toBe(4);
  });
});

describe('LoRA adapter files', () => {
  const weight = Float32Array.from({ length: OUT * IN }, (_, i) => i / 10);
  const a = Float32Array.from({ length: R * IN }, (_, i) => (i % 3) - 1);
  const b = Float32Array.from({ length: OUT * R }, (_, i) => i / 4);

  async function writeTestAdapter(): Promise<string> {
    const folder = await temporaryFolder();
    const config = loraConfig({ r: R, alpha: 6, target_modules: ['q_proj'] });
    await writeAdapter(folder, config, 'EleutherAI/gpt-neo-125M', [
      { name: loraTensorName(MODULE, 'A'), dtype: 'F32', shape: [R, IN], data: () => a },
      { name: loraTensorName(MODULE, 'B'), dtype: 'F32', shape: [OUT, R], data: () => b },
    ]);
    return folder;
  }

  it('merges W + (alpha / r) B A at read, and counts its files as weights', async () => {
    const folder = await writeTestAdapter();
    const config = JSON.parse(await readFile(path.join(folder, 'adapter_config.json'), 'utf8'));
    expect(config).toMatchObject({ peft_type: 'LORA', r: R, lora_alpha: 6, target_modules: ['q_proj'], base_model_name_or_path: 'EleutherAI/gpt-neo-125M' });
    const merged = await withLoraAdapter(baseCheckpoint(weight), folder);
    const expected = weight.map((w, at) => {
      const [o, i] = [Math.floor(at / IN), at % IN];
      let sum = 0;
      for (let k = 0; k < R; k++) sum += b[o * R + k]! * a[k * IN + i]!;
      return w + (6 / R) * sum;
    });
    expect(await merged.readFloat32(`${MODULE}.weight`)).toEqual(expected);
    expect(merged.files).toContain(path.join(folder, ADAPTER_WEIGHTS_FILE));
  });

  it('refuses adapters it cannot merge exactly (DoRA), naming the file', async () => {
    const folder = await writeTestAdapter();
    const configFile = path.join(folder, 'adapter_config.json');
    const config = JSON.parse(await readFile(configFile, 'utf8'));
    await writeFile(configFile, JSON.stringify({ ...config, use_dora: true }));
    const merging = withLoraAdapter(baseCheckpoint(weight), folder);
    await expect(merging).rejects.toThrow(CheckpointError);
    await expect(merging).rejects.toThrow(/adapter_config\.json: DoRA/);
  });
});
