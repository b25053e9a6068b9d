import os from 'node:os';
import path from 'node:path';

/** This package's own cache ($GPT_NEO_CACHE, else beside the Hugging Face cache): converted models, eval data. */
export function gptNeoCacheDir(...parts: string[]): string {
  const root =
    process.env.GPT_NEO_CACHE ??
    path.join(process.env.HF_HOME ?? path.join(os.homedir(), '.cache', 'huggingface'), 'gpt-neo');
  return path.join(root, ...parts);
}
