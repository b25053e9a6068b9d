// `npm run bench:structured`: what structured outputs cost. Without a model: the mask's cost per decoding step on
// GPT-2's real 50,257-token vocabulary (cold, when each automaton configuration meets the vocabulary the first
// time, and warm, from the cache), and the compile time of a 20-property schema with nesting and $ref. With
// --decode: constrained against unconstrained decode tokens/s of the 1.3B shape.
import os from 'node:os';
import path from 'node:path';
import { Command, Option } from 'commander';
import { AutoTokenizer, compileConstraint, type ConstraintSpec, GPTNeoForCausalLM, tokenizerVocabulary, WEIGHT_FORMATS, type WeightFormat } from '../src/index.js';
import { ensureRandomCheckpoint } from '../test/helpers/random-checkpoint.js';
import { CHECKOUT } from './checkout.js';

const program = new Command('bench:structured')
  .description('Cost of constrained decoding: mask per step and schema compile time; with --decode, tokens/s of the 1.3B shape')
  .option('--steps <n>', 'decoding steps simulated per constraint', '200')
  .option('--decode', 'also decode the 1.3B-shaped random checkpoint with and without a schema')
  .option('--folder <dir>', 'where the random checkpoint lives', path.join(os.homedir(), '.cache', 'gpt-neo-bench'))
  .addOption(new Option('--dtype <format>', 'weight format of --decode').choices(WEIGHT_FORMATS).default('q8'))
  .option('--threads <n>', 'compute threads of --decode', '2')
  .option('--decode-tokens <n>', 'tokens per --decode measurement', '64')
  .parse();
const options = program.opts<{ steps: string; decode?: boolean; folder: string; dtype: WeightFormat; threads: string; decodeTokens: string }>();

const tokenizer = await AutoTokenizer.from_pretrained(path.join(CHECKOUT, 'test', 'fixtures', 'gpt-neo', 'tiny-gpt2vocab'));
const EOS = tokenizer.eos_token_id ?? 50256;

/** A schema of 20 properties: strings, bounded integers, nested objects by $ref, arrays of them, enums. */
export function twentyPropertySchema(): Record<string, unknown> {
  const kinds = [
    { type: 'string', maxLength: 40 },
    { type: 'integer', minimum: 0, maximum: 1000 },
    { $ref: '#/$defs/address' },
    { type: 'array', items: { $ref: '#/$defs/address' }, maxItems: 5 },
    { enum: ['red', 'green', 'blue'] },
  ];
  const properties = Object.fromEntries(Array.from({ length: 20 }, (_, i) => [`field_${i}`, kinds[i % kinds.length]]));
  return {
    type: 'object', properties, required: Object.keys(properties), additionalProperties: false,
    $defs: {
      address: {
        type: 'object',
        properties: { street: { type: 'string', maxLength: 60 }, zip: { type: 'string', pattern: '^[0-9]{5}$' }, when: { type: 'string', format: 'date-time' }, next: { anyOf: [{ $ref: '#/$defs/address' }, { type: 'null' }] } },
        required: ['street', 'zip'],
      },
    },
  };
}

const constraints: Record<string, ConstraintSpec> = {
  'json_object': { json_object: true },
  'person schema': { json_schema: { type: 'object', properties: { name: { type: 'string' }, age: { type: 'integer' } }, required: ['name', 'age'], additionalProperties: false } },
  '20-property schema': { json_schema: twentyPropertySchema() },
  'regex': { regex: '[A-Z][a-z]+( [A-Z][a-z]+)*, \\d{1,3} years' },
};

function compileTime(): { cold: number; cached: number } {
  const vocabulary = tokenizerVocabulary(tokenizer, tokenizer.vocab_size);
  let started = performance.now();
  compileConstraint({ json_schema: twentyPropertySchema() }, vocabulary);
  const cold = performance.now() - started;
  started = performance.now();
  compileConstraint({ json_schema: twentyPropertySchema() }, vocabulary);
  return { cold, cached: performance.now() - started };
}

/** A deterministic walk through the constraint, each step masking 50,257 scores and taking a random allowed token. */
function maskCost(spec: ConstraintSpec, steps: number, seed: number): { meanMs: number; maxMs: number; steps: number } {
  const vocabulary = tokenizerVocabulary(tokenizer, tokenizer.vocab_size);
  const state = compileConstraint(spec, vocabulary).start([EOS]);
  const scores = new Float64Array(vocabulary.size);
  let random = seed;
  const times: number[] = [];
  for (let step = 0; step < steps; step++) {
    scores.fill(0);
    const started = performance.now();
    state.mask(scores, steps - step);
    times.push(performance.now() - started);
    const allowed = scores.reduce<number[]>((ids, score, id) => (score === 0 ? (ids.push(id), ids) : ids), []);
    random = (random * 1103515245 + 12345) % 2 ** 31;
    const token = allowed[random % allowed.length]!;
    if (token === EOS) break;
    state.advance(token);
  }
  return { meanMs: times.reduce((a, b) => a + b, 0) / times.length, maxMs: Math.max(...times), steps: times.length };
}

let started = performance.now();
tokenizerVocabulary(tokenizer, tokenizer.vocab_size);
console.log(`Vocabulary trie of ${tokenizer.vocab_size} tokens: ${(performance.now() - started).toFixed(0)} ms (once per tokenizer)`);
const compile = compileTime();
console.log(`20-property schema with nesting and $ref: compiled in ${compile.cold.toFixed(0)} ms, ${compile.cached.toFixed(2)} ms from the cache\n`);
console.log('| constraint | steps | cold mean ms/step | cold max | warm mean ms/step | warm max |');
console.log('|---|---|---|---|---|---|');
for (const [name, spec] of Object.entries(constraints)) {
  const cold = maskCost(spec, Number(options.steps), 7);
  const warm = maskCost(spec, Number(options.steps), 7);
  console.log(`| ${name} | ${cold.steps} | ${cold.meanMs.toFixed(2)} | ${cold.maxMs.toFixed(1)} | ${warm.meanMs.toFixed(3)} | ${warm.maxMs.toFixed(2)} |`);
}

if (options.decode) {
  const folder = await ensureRandomCheckpoint(path.join(options.folder, 'gpt-neo-1.3B-random'));
  const model = await GPTNeoForCausalLM.from_pretrained(folder, { dtype: options.dtype, threads: Number(options.threads) });
  const vocabulary = tokenizerVocabulary(tokenizer, model.config.vocab_size);
  const input_ids = [tokenizer.encode('Extract the person: Winston Smith, 39, lives in London.\nJSON:')];
  const tokensPerSecond = async (extra: Record<string, unknown>) => {
    const startedAt = performance.now();
    const [sequence] = await model.generate({ input_ids, max_new_tokens: Number(options.decodeTokens), min_new_tokens: Number(options.decodeTokens), do_sample: true, seed: 1, vocabulary, ...extra });
    return (sequence!.length - input_ids[0]!.length) / ((performance.now() - startedAt) / 1000);
  };
  await tokensPerSecond({});
  const free = await tokensPerSecond({});
  const constrained = await tokensPerSecond({ constraint: { json_object: true } });
  console.log(`\n${options.dtype}, ${options.threads} threads: unconstrained ${free.toFixed(1)} tokens/s, json_object ${constrained.toFixed(1)} tokens/s (${(constrained / free).toFixed(2)}x)`);
  await model.dispose();
}
