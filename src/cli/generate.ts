import { Command, InvalidArgumentError, Option } from 'commander';
import type { ConstraintSpec } from '../constraints/index.js';
import type { GenerationConfig } from '../generation/index.js';
import { WEIGHT_FORMATS, type WeightFormat } from '../convert/index.js';
import { pipeline, type TextGenerationOptions } from '../pipeline/index.js';
import { hubOptions, hubOptionsFrom, integer, number, readStdin } from './options.js';

const DEFAULT_MODEL = 'EleutherAI/gpt-neo-1.3B';

/** Every generation option as a flag: [flag, GenerationConfig key, parser, description]. */
const GENERATION_FLAGS: Array<[string, keyof GenerationConfig, (value: string) => unknown, string]> = [
  ['--max-new-tokens <n>', 'max_new_tokens', integer, 'tokens to generate (wins over --max-length)'],
  ['--max-length <n>', 'max_length', integer, 'prompt + generated tokens at most (model default: 50 for the 1.3B)'],
  ['--min-length <n>', 'min_length', integer, 'no end-of-text before this total length'],
  ['--min-new-tokens <n>', 'min_new_tokens', integer, 'no end-of-text before this many new tokens'],
  ['--temperature <t>', 'temperature', number, 'sampling temperature (> 0)'],
  ['--top-k <k>', 'top_k', integer, 'sample from the k most likely tokens'],
  ['--top-p <p>', 'top_p', number, 'nucleus sampling: smallest set with probability >= p, in (0, 1]'],
  ['--typical-p <p>', 'typical_p', number, 'typical sampling mass, in (0, 1]'],
  ['--repetition-penalty <r>', 'repetition_penalty', number, 'penalise tokens already present (> 1 discourages)'],
  ['--no-repeat-ngram-size <n>', 'no_repeat_ngram_size', integer, 'never repeat an n-gram'],
  ['--bad-words-ids <json>', 'bad_words_ids', parseJson, 'token id sequences never to generate, e.g. [[123],[4,5]]'],
  ['--eos-token-id <id>', 'eos_token_id', integer, 'token that ends generation (default 50256)'],
  ['--pad-token-id <id>', 'pad_token_id', integer, 'token used to pad finished rows'],
  ['--num-return-sequences <n>', 'num_return_sequences', integer, 'continuations per prompt'],
  ['--num-beams <n>', 'num_beams', integer, 'beam search with n beams'],
  ['--length-penalty <x>', 'length_penalty', number, 'beam score = log-prob / length^x'],
  ['--seed <n>', 'seed', integer, 'seed for reproducible sampling'],
];

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    throw new InvalidArgumentError(`not valid JSON: ${value}`);
  }
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function parseEarlyStopping(value: string): boolean | 'never' {
  if (value === 'true' || value === 'false') return value === 'true';
  if (value === 'never') return 'never';
  throw new InvalidArgumentError("expected 'true', 'false' or 'never'");
}

export function generateCommand(): Command {
  const command = new Command('generate')
    .description('Continue a prompt with a GPT-Neo model, streaming the text to stdout')
    .argument('[prompt]', "the text to continue ('-' or nothing reads standard input)")
    .option('-m, --model <id-or-folder>', 'Hugging Face model id or local folder', DEFAULT_MODEL)
    .addOption(new Option('--dtype <format>', 'weight format').choices(WEIGHT_FORMATS).default('fp32'))
    .option('--threads <n>', 'compute threads (default: number of cores)', integer)
    .option('--do-sample', 'sample instead of greedy decoding (the 1.3B config samples by default)')
    .option('--greedy', 'force greedy decoding even if the model config samples')
    .option('--early-stopping <mode>', "beam search: 'true', 'false' or 'never'", parseEarlyStopping)
    .option('--stop <text>', 'a string that ends generation, left out of the output (repeatable)', collect, [])
    .option('--no-full-text', 'print only the continuation, not the prompt')
    .option('--json', 'print [{ "generated_text": ... }] as JSON instead of streaming text')
    .option('--json-schema <json>', 'structured output: JSON that this JSON Schema accepts (docs/structured-outputs.md)', parseJson)
    .option('--regex <pattern>', 'structured output: a whole match of this JavaScript regular expression')
    .option('--choice <text>', 'structured output: one of these strings (repeatable)', collect, []);
  for (const [flag, , parser, description] of GENERATION_FLAGS) command.option(flag, description, parser);
  hubOptions(command);

  return command.action(async (promptArgument: string | undefined, flags: Record<string, unknown>) => {
    const prompt = promptArgument === undefined || promptArgument === '-' ? await readStdin() : promptArgument;
    const options: TextGenerationOptions = { return_full_text: flags.fullText !== false };
    for (const [flag, key] of GENERATION_FLAGS) {
      const name = flag.slice(2).split(' ')[0]!.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
      if (flags[name] !== undefined) (options as Record<string, unknown>)[key] = flags[name];
    }
    if (flags.doSample) options.do_sample = true;
    if (flags.greedy) options.do_sample = false;
    if (flags.earlyStopping !== undefined) options.early_stopping = flags.earlyStopping as boolean | 'never';
    if ((flags.stop as string[]).length > 0) options.stop = flags.stop as string[];
    const constraints: ConstraintSpec[] = [];
    if (flags.jsonSchema !== undefined) constraints.push({ json_schema: flags.jsonSchema });
    if (flags.regex !== undefined) constraints.push({ regex: flags.regex as string });
    if ((flags.choice as string[]).length > 0) constraints.push({ choice: flags.choice as string[] });
    if (constraints.length > 1) command.error('error: --json-schema, --regex and --choice exclude each other');
    if (constraints.length === 1) options.constraint = constraints[0];

    const generator = await pipeline('text-generation', flags.model as string, {
      dtype: flags.dtype as WeightFormat,
      threads: flags.threads as number | undefined,
      ...hubOptionsFrom(flags),
    });
    try {
      const streams = !flags.json && (options.num_return_sequences ?? 1) === 1 && (options.num_beams ?? 1) === 1;
      if (streams) {
        // The prompt goes out with the first piece, so a rejected option prints nothing on stdout.
        let text = options.return_full_text ? prompt : '';
        for await (const piece of generator.stream(prompt, options)) {
          process.stdout.write(text + piece);
          text = '';
        }
        process.stdout.write(`${text}\n`);
        return;
      }
      const outputs = await generator(prompt, options);
      if (flags.json) process.stdout.write(`${JSON.stringify(outputs, null, 2)}\n`);
      else process.stdout.write(outputs.map((o) => o.generated_text).join('\n\n---\n\n') + '\n');
    } finally {
      await generator.dispose();
    }
  });
}
