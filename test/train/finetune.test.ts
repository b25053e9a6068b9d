import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import { AutoTokenizer, GPTNeoForCausalLM, train } from '../../src/index.js';
import { openSafetensors } from '../../src/weights/safetensors.js';
import { fixture } from '../helpers/fixtures.js';
import { TRAIN_TEXT, VALIDATION_TEXT } from './helpers.js';

const BASE = fixture('tiny-gpt2vocab');

/** Mean loss of a model folder on the validation text in 64-token blocks, computed by the inference model. */
async function validationLoss(folder: string): Promise<number> {
  const tokenizer = await AutoTokenizer.from_pretrained(folder);
  const ids = [...tokenizer.encode(readFileSync(VALIDATION_TEXT, 'utf8')), 50256];
  const blocks = Array.from({ length: Math.floor(ids.length / 64) }, (_, i) => ids.slice(i * 64, (i + 1) * 64));
  const model = await GPTNeoForCausalLM.from_pretrained(folder, { threads: 2 });
  try {
    return (await model.forward({ input_ids: blocks, labels: blocks })).loss!;
  } finally {
    await model.dispose();
  }
}

describe('a tiny full fine-tune (tiny-gpt2vocab on a novel excerpt)', () => {
  const outputDir = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-finetune-'));
  let result: Awaited<ReturnType<typeof train>>;
  beforeAll(async () => {
    result = await train({
      model: BASE,
      train_file: TRAIN_TEXT,
      validation_file: VALIDATION_TEXT,
      output_dir: outputDir,
      max_steps: 16,
      block_size: 64,
      batch_size: 4,
      learning_rate: 3e-3,
      logging_steps: 8,
      save_steps: 100,
      threads: 2,
    });
  });

  it('lowers the validation loss, as the inference model measures it on the folder it writes', async () => {
    const before = await validationLoss(BASE);
    const after = await validationLoss(outputDir);
    expect(after).toBeLessThan(before - 0.5);
    // The run's own last validation loss is the same quantity: the same blocks, weighted by batch size as HF does.
    expect(result.eval_loss).toBeCloseTo(after, 3);
  });

  it('writes a Hugging Face folder: config with the architecture, float32 weights without a duplicated head, tokenizer files', async () => {
    const config = JSON.parse(readFileSync(path.join(outputDir, 'config.json'), 'utf8'));
    expect(config.architectures).toEqual(['GPTNeoForCausalLM']);
    expect(config.torch_dtype).toBe('float32');
    expect(config.model_type).toBe('gpt_neo');
    const weights = await openSafetensors(path.join(outputDir, 'model.safetensors'));
    try {
      expect(weights.tensors.has('lm_head.weight')).toBe(false);
      expect(weights.tensors.get('transformer.wte.weight')).toMatchObject({ dtype: 'F32', shape: [50257, 16] });
      expect(weights.tensors.size).toBe(2 + 2 * 13 + 2); // wte, wpe, 13 per block, ln_f
    } finally {
      await weights.close();
    }
    expect(readdirSync(outputDir)).toEqual(expect.arrayContaining(['vocab.json', 'merges.txt', 'tokenizer_config.json', 'special_tokens_map.json']));
  });
});
