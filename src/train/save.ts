import { copyFile, mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type LoraConfig, writeAdapter } from '../lora/index.js';
import { writeSafetensors } from '../weights/index.js';
import type { TensorToWrite } from '../weights/safetensors-writer.js';

const TOKENIZER_FILES = ['vocab.json', 'merges.txt', 'tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'added_tokens.json'];

/** What a trained model is saved from: the folder it was trained from and its trained tensors. */
export interface TrainedModel {
  source: string;
  tensors: TensorToWrite[];
  /** With LoRA, the tensors are the adapter's. */
  lora?: LoraConfig;
  base_model_name_or_path: string;
}

/**
 * A Hugging Face model folder: config.json, model.safetensors (float32, the tied head not duplicated) and the
 * tokenizer files; with LoRA, PEFT's adapter_config.json and adapter_model.safetensors instead of the weights.
 */
export async function savePretrained(outDir: string, model: TrainedModel): Promise<void> {
  await mkdir(outDir, { recursive: true });
  if (model.lora) {
    await writeAdapter(outDir, model.lora, model.base_model_name_or_path, model.tensors);
  } else {
    const config = JSON.parse(await readFile(path.join(model.source, 'config.json'), 'utf8')) as Record<string, unknown>;
    config.architectures = ['GPTNeoForCausalLM'];
    config.torch_dtype = 'float32';
    await writeFile(path.join(outDir, 'config.json'), `${JSON.stringify(config, null, 2)}\n`);
    await writeSafetensors(path.join(outDir, 'model.safetensors'), model.tensors, { format: 'pt' });
  }
  for (const file of TOKENIZER_FILES) {
    await copyFile(path.join(model.source, file), path.join(outDir, file)).catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'ENOENT') throw error;
    });
  }
}
