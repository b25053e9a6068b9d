// GPT-Neo checkpoints of published shapes with random weights, written on the spot: the benchmarks measure on
// them, and tests check what depends only on the shape (the 1.3B's size, long inputs) without a download.
import { existsSync } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { writeSafetensors } from '../../src/weights/index.js';

/** config.json of EleutherAI/gpt-neo-1.3B, as published. */
export const GPT_NEO_1_3B_CONFIG = {
  activation_function: 'gelu_new',
  architectures: ['GPTNeoForCausalLM'],
  attention_dropout: 0,
  attention_layers: Array.from({ length: 24 }, (_, i) => (i % 2 === 0 ? 'global' : 'local')),
  attention_types: [[['global', 'local'], 12]],
  bos_token_id: 50256,
  embed_dropout: 0,
  eos_token_id: 50256,
  gradient_checkpointing: false,
  hidden_size: 2048,
  initializer_range: 0.02,
  intermediate_size: null,
  layer_norm_epsilon: 1e-5,
  max_position_embeddings: 2048,
  model_type: 'gpt_neo',
  num_heads: 16,
  num_layers: 24,
  resid_dropout: 0,
  task_specific_params: { 'text-generation': { do_sample: true, max_length: 50, temperature: 0.9 } },
  tokenizer_class: 'GPT2Tokenizer',
  torch_dtype: 'float32',
  use_cache: true,
  vocab_size: 50257,
  window_size: 256,
};

/** Uniform noise with the standard deviation of HF's N(0, 0.02) init; each tensor differs (ONNX Runtime merges equal ones). */
export function noise(count: number, seed: number): Float32Array {
  const out = new Float32Array(count);
  const amplitude = 0.02 * Math.sqrt(3);
  let state = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < count; i++) {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    out[i] = ((state >>> 0) / 4294967296 - 0.5) * 2 * amplitude;
  }
  return out;
}

/**
 * Writes a random-weight checkpoint of the exact GPT-Neo 1.3B shape (5.3 GB of float32) into `folder`,
 * unless it is already there. Only for benchmarks: it is never committed.
 */
export async function ensureRandomCheckpoint(folder: string): Promise<string> {
  if (!existsSync(path.join(folder, 'model.safetensors'))) await writeRandomCheckpoint(folder, GPT_NEO_1_3B_CONFIG);
  return folder;
}

/** Every tensor of a GPT-Neo checkpoint in the shape `config` gives, with how the random checkpoint fills it. */
export function gptNeoTensors(config: typeof GPT_NEO_1_3B_CONFIG): Array<{ name: string; shape: number[]; fill: 'noise' | 'ones' | 'zeros' }> {
  const { hidden_size: C, vocab_size: V, max_position_embeddings: P, num_layers } = config;
  const I = 4 * C; // intermediate_size: null
  const tensors: Array<{ name: string; shape: number[]; fill: 'noise' | 'ones' | 'zeros' }> = [
    { name: 'transformer.wte.weight', shape: [V, C], fill: 'noise' },
    { name: 'transformer.wpe.weight', shape: [P, C], fill: 'noise' },
  ];
  for (let i = 0; i < num_layers; i++) {
    const h = `transformer.h.${i}`;
    tensors.push(
      { name: `${h}.ln_1.weight`, shape: [C], fill: 'ones' },
      { name: `${h}.ln_1.bias`, shape: [C], fill: 'zeros' },
      { name: `${h}.attn.attention.q_proj.weight`, shape: [C, C], fill: 'noise' },
      { name: `${h}.attn.attention.k_proj.weight`, shape: [C, C], fill: 'noise' },
      { name: `${h}.attn.attention.v_proj.weight`, shape: [C, C], fill: 'noise' },
      { name: `${h}.attn.attention.out_proj.weight`, shape: [C, C], fill: 'noise' },
      { name: `${h}.attn.attention.out_proj.bias`, shape: [C], fill: 'zeros' },
      { name: `${h}.ln_2.weight`, shape: [C], fill: 'ones' },
      { name: `${h}.ln_2.bias`, shape: [C], fill: 'zeros' },
      { name: `${h}.mlp.c_fc.weight`, shape: [I, C], fill: 'noise' },
      { name: `${h}.mlp.c_fc.bias`, shape: [I], fill: 'noise' },
      { name: `${h}.mlp.c_proj.weight`, shape: [C, I], fill: 'noise' },
      { name: `${h}.mlp.c_proj.bias`, shape: [C], fill: 'noise' },
    );
  }
  tensors.push({ name: 'transformer.ln_f.weight', shape: [C], fill: 'ones' }, { name: 'transformer.ln_f.bias', shape: [C], fill: 'zeros' });
  return tensors;
}

/** A GPT-Neo checkpoint (config.json + model.safetensors) with random weights in the shape `config` gives. */
export async function writeRandomCheckpoint(folder: string, config: typeof GPT_NEO_1_3B_CONFIG): Promise<void> {
  await mkdir(folder, { recursive: true });
  const tensors = gptNeoTensors(config);
  const staging = path.join(folder, 'model.safetensors.partial');
  await writeSafetensors(
    staging,
    tensors.map((t, seed) => ({
      name: t.name,
      dtype: 'F32' as const,
      shape: t.shape,
      data: () => {
        const count = t.shape.reduce((a, b) => a * b, 1);
        return t.fill === 'noise' ? noise(count, seed + 1) : new Float32Array(count).fill(t.fill === 'ones' ? 1 : 0);
      },
    })),
  );
  await writeFile(path.join(folder, 'config.json'), JSON.stringify(config, null, 2));
  await rename(staging, path.join(folder, 'model.safetensors'));
}
