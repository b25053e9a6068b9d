#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { demoCommand } from './demo.js';
import { downloadCommand } from './download.js';
import { evalCommand } from './eval.js';
import { generateCommand } from './generate.js';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('gpt-neo')
  .description("EleutherAI's GPT-Neo models on ONNX Runtime: generate text, download and evaluate models.")
  .version(version)
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Environment:
  HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE   as in huggingface_hub
  GPT_NEO_CACHE        where converted models are kept (default: $HF_HOME/gpt-neo)

Examples:
  gpt-neo generate "EleutherAI has"
  gpt-neo generate --model EleutherAI/gpt-neo-125M --max-new-tokens 40 --do-sample --seed 1 "Once upon a time"
  gpt-neo download EleutherAI/gpt-neo-1.3B
  gpt-neo demo --model EleutherAI/gpt-neo-125M --port 8080
  gpt-neo eval --model EleutherAI/gpt-neo-1.3B --tasks lambada,piqa --dtype q8 --output results.json`,
  );
program.addCommand(generateCommand());
program.addCommand(downloadCommand());
program.addCommand(evalCommand());
program.addCommand(demoCommand());

try {
  await program.parseAsync();
} catch (error) {
  // One clear line for the user; the stack only when asked for.
  process.stderr.write(`gpt-neo: ${error instanceof Error ? error.message : String(error)}\n`);
  if (process.env.GPT_NEO_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  process.exitCode = 1;
}
