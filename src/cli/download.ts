import { Command } from 'commander';
import { resolveModelFolder } from '../hub/index.js';
import { hubOptions, hubOptionsFrom } from './options.js';

export function downloadCommand(): Command {
  const command = new Command('download')
    .description("Download a model's config, tokenizer and weights into the Hugging Face cache; prints the snapshot folder")
    .argument('<model>', 'Hugging Face model id, e.g. EleutherAI/gpt-neo-1.3B');
  hubOptions(command);
  return command.action(async (model: string, flags: Record<string, unknown>) => {
    process.stdout.write(`${await resolveModelFolder(model, hubOptionsFrom(flags))}\n`);
  });
}
