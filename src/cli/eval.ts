import { writeFile } from 'node:fs/promises';
import { Command, InvalidArgumentError, Option } from 'commander';
import { defaultEvalDataDir, evaluate, formatResultsTable, TASK_NAMES } from '../eval/index.js';
import { resolveModelFolder } from '../hub/index.js';
import { GPTNeoForCausalLM } from '../modeling/index.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../convert/index.js';
import { AutoTokenizer } from '../tokenizer/index.js';
import { hubOptions, hubOptionsFrom, integer } from './options.js';

function taskList(value: string): string[] {
  const tasks = value.split(',').map((task) => task.trim()).filter(Boolean);
  const unknown = tasks.filter((task) => !(TASK_NAMES as readonly string[]).includes(task));
  if (unknown.length > 0) throw new InvalidArgumentError(`unknown task ${unknown.join(', ')} (choose from ${TASK_NAMES.join(', ')})`);
  return tasks;
}

export function evalCommand(): Command {
  const command = new Command('eval')
    .description("Score a model on the GPT-Neo model card's tasks, with the definitions the card used")
    .requiredOption('-m, --model <id-or-folder>', 'Hugging Face model id or local folder')
    .option('--tasks <list>', `comma separated, from ${TASK_NAMES.join(',')}`, taskList, [...TASK_NAMES])
    .option('--data-dir <dir>', 'folder with one sub-folder of data per task (see the README)', defaultEvalDataDir())
    .option('--limit <n>', 'score only the first n documents of each task', integer)
    .option('--batch-size <n>', 'sequences per forward pass', integer, 4)
    .addOption(new Option('--dtype <format>', 'weight format').choices(WEIGHT_FORMATS).default('fp32'))
    .option('--threads <n>', 'compute threads (default: number of cores)', integer)
    .addOption(new Option('--pile-split <split>', 'which Pile file to read (test.jsonl.zst or val.jsonl.zst)').choices(['test', 'val']).default('test'))
    .option('--pile-set <name>', "only Pile documents of this meta.pile_set_name (e.g. 'Pile-CC')")
    .option('--output <file>', "write lm-evaluation-harness's JSON layout to this file");
  hubOptions(command);
  return command.action(async (flags: Record<string, unknown>) => {
    const folder = await resolveModelFolder(flags.model as string, hubOptionsFrom(flags));
    const tokenizer = await AutoTokenizer.from_pretrained(folder);
    const model = await GPTNeoForCausalLM.from_pretrained(folder, {
      dtype: flags.dtype as WeightFormat,
      threads: flags.threads as number | undefined,
    });
    try {
      const results = await evaluate({
        model,
        tokenizer,
        tasks: flags.tasks as string[],
        dataDir: flags.dataDir as string,
        limit: flags.limit as number | undefined,
        batchSize: flags.batchSize as number,
        modelName: flags.model as string,
        pileSplit: flags.pileSplit as 'test' | 'val',
        pileSetName: flags.pileSet as string | undefined,
      });
      process.stdout.write(`${formatResultsTable(results)}\n`);
      if (flags.output) await writeFile(flags.output as string, `${JSON.stringify(results, null, 2)}\n`);
    } finally {
      await model.dispose();
    }
  });
}
