import { Command, InvalidArgumentError, Option } from 'commander';
import { resolveModelFolder } from '../hub/index.js';
import { SCHEDULER_TYPES, train, type TrainingArguments } from '../train/index.js';
import { hubOptions, hubOptionsFrom, integer, number } from './options.js';

function nonNegative(value: string): number {
  const parsed = number(value);
  if (parsed < 0) throw new InvalidArgumentError(`expected a number >= 0, got '${value}'`);
  return parsed;
}

/** TrainingArguments taken from the flag of the same name as they are. */
const PASSED_THROUGH = [
  'train_file', 'validation_file', 'output_dir', 'max_steps', 'num_train_epochs', 'block_size', 'batch_size',
  'gradient_accumulation_steps', 'learning_rate', 'weight_decay', 'adam_beta1', 'adam_beta2', 'adam_epsilon',
  'lr_scheduler_type', 'warmup_steps', 'seed', 'save_steps', 'eval_steps', 'logging_steps', 'threads',
] as const;

export function trainCommand(): Command {
  const command = new Command('train')
    .description('Fine-tune a GPT-Neo model on text (Hugging Face run_clm.py + Trainer; LoRA in PEFT format with --lora-r)')
    .requiredOption('-m, --model <id-or-folder>', 'Hugging Face model id or local folder to start from')
    .requiredOption('--train-file <file>', 'training text: .txt (one document) or .jsonl (a "text" field per line)')
    .option('--validation-file <file>', 'validation text, same formats: loss and perplexity at --eval-steps')
    .requiredOption('--output-dir <dir>', 'where checkpoints and the final model (or adapter) are written')
    .option('--max-steps <n>', 'optimizer steps (wins over --num-train-epochs)', integer)
    .option('--num-train-epochs <n>', 'passes over the training data (default 3)', number)
    .option('--block-size <n>', 'tokens per training block (default: min(1024, the model context))', integer)
    .option('--batch-size <n>', 'blocks per batch (default 8)', integer)
    .option('--gradient-accumulation-steps <n>', 'batches per optimizer step (default 1)', integer)
    .option('--learning-rate <lr>', 'peak learning rate (default 5e-5)', nonNegative)
    .option('--weight-decay <wd>', 'AdamW decoupled weight decay, not on biases and LayerNorm weights (default 0)', nonNegative)
    .option('--adam-beta1 <b>', 'default 0.9', nonNegative)
    .option('--adam-beta2 <b>', 'default 0.999', nonNegative)
    .option('--adam-epsilon <e>', 'default 1e-8', nonNegative)
    .option('--max-grad-norm <n>', 'clip the global gradient norm to this (0: no clipping; default 1.0)', nonNegative)
    .addOption(new Option('--lr-scheduler-type <type>', 'learning-rate schedule after warmup').choices(SCHEDULER_TYPES).default('linear'))
    .option('--warmup-steps <n>', 'linear warmup steps (default 0)', integer)
    .option('--seed <n>', 'seed of the data order and LoRA initialisation (default 42)', integer)
    .option('--save-steps <n>', 'write checkpoint-<step>/ every n steps (default 500)', integer)
    .option('--eval-steps <n>', 'validate every n steps (default: --logging-steps)', integer)
    .option('--logging-steps <n>', 'log the mean loss every n steps (default 500)', integer)
    .option('--lora-r <r>', 'train a LoRA adapter of this rank instead of every weight', integer)
    .option('--lora-alpha <a>', 'LoRA scaling numerator: updates are scaled by alpha / r (default 2 r)', number)
    .option('--lora-dropout <p>', 'dropout on the adapter input while training, in [0, 1) (default 0)', nonNegative)
    .option('--lora-target-modules <names>', 'comma-separated module names (default q_proj,v_proj, as PEFT for GPT-Neo)')
    .option('--resume', 'continue from the newest checkpoint in --output-dir')
    .option('--threads <n>', 'compute threads (default: number of cores)', integer);
  hubOptions(command);

  return command.action(async (flags: Record<string, unknown>) => {
    const loraRank = flags.loraR as number | undefined;
    if (loraRank === undefined && (flags.loraAlpha !== undefined || flags.loraTargetModules !== undefined || flags.loraDropout !== undefined)) {
      throw new InvalidArgumentError('--lora-alpha, --lora-dropout and --lora-target-modules need --lora-r');
    }
    const model = await resolveModelFolder(flags.model as string, hubOptionsFrom(flags));
    const maxGradNorm = flags.maxGradNorm as number | undefined;
    // Flags carry TrainingArguments' names in kebab case (commander hands them over in camel case).
    const fromFlags = Object.fromEntries(PASSED_THROUGH.map((key) => [key, flags[key.replace(/_([a-z0-9])/g, (_, c: string) => c.toUpperCase())]]));
    const result = await train({
      ...(fromFlags as Omit<TrainingArguments, 'model'>),
      model,
      base_model_name_or_path: flags.model as string,
      max_grad_norm: maxGradNorm === 0 ? null : maxGradNorm,
      resume: flags.resume === true,
      lora:
        loraRank === undefined
          ? undefined
          : {
              r: loraRank,
              alpha: (flags.loraAlpha as number | undefined) ?? 2 * loraRank,
              target_modules: (flags.loraTargetModules as string | undefined)?.split(',').map((name) => name.trim()),
              dropout: flags.loraDropout as number | undefined,
            },
    });
    process.stderr.write(`trained ${result.global_step} steps; model written to ${flags.outputDir as string}\n`);
  });
}
