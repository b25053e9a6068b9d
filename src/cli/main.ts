#!/usr/bin/env node
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { cacheCommand } from './cache.js';
import { demoCommand } from './demo.js';
import { downloadCommand } from './download.js';
import { evalCommand } from './eval.js';
import { generateCommand } from './generate.js';
import { serveCommand } from './serve.js';
import { trainCommand } from './train.js';

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command('gpt-neo')
  .description("EleutherAI's GPT-Neo models on ONNX Runtime: generate, evaluate, serve and fine-tune; download and manage models.")
  .version(version)
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
Environment:
  HF_ENDPOINT, HF_TOKEN, HF_HOME, HF_HUB_CACHE, HF_HUB_OFFLINE   as in huggingface_hub
  GPT_NEO_CACHE        where converted models are kept (default: $HF_HOME/gpt-neo)
  GPT_NEO_CACHE_MAX_SIZE  after a conversion, remove least recently used conversions beyond this (e.g. 20GB)

Examples:
  gpt-neo generate "EleutherAI has"
  gpt-neo generate --model EleutherAI/gpt-neo-125M --max-new-tokens 40 --do-sample --seed 1 "Once upon a time"
  gpt-neo download EleutherAI/gpt-neo-1.3B
  gpt-neo eval --model EleutherAI/gpt-neo-1.3B --tasks lambada,piqa --dtype q8 --output results.json
  gpt-neo demo --model EleutherAI/gpt-neo-125M --port 8080
  gpt-neo serve --model EleutherAI/gpt-neo-1.3B --dtype q8 --port 8000
  gpt-neo train --model EleutherAI/gpt-neo-125M --train-file my.txt --output-dir ./my-neo --max-steps 1000
  gpt-neo cache ls; gpt-neo cache prune --older-than 30d --max-size 20GB`,
  );
program.addCommand(generateCommand());
program.addCommand(downloadCommand());
program.addCommand(evalCommand());
program.addCommand(cacheCommand());
program.addCommand(serveCommand());
program.addCommand(trainCommand());
program.addCommand(demoCommand());

try {
  await program.parseAsync();
} catch (error) {
  // One clear line for the user; the stack only when asked for.
  process.stderr.write(`gpt-neo: ${error instanceof Error ? error.message : String(error)}\n`);
  if (process.env.GPT_NEO_DEBUG && error instanceof Error) process.stderr.write(`${error.stack}\n`);
  process.exitCode = 1;
}
