import { stat } from 'node:fs/promises';
import type { ModelFiles } from '../util/model-files.js';
import { localModelFiles } from '../weights/index.js';
import { TokenizerError } from './errors.js';
import { GPT2Tokenizer, type AddedToken, type SpecialTokenSpec, type TokenizerConfig } from './gpt2-tokenizer.js';

export class AutoTokenizer {
  /**
   * Loads the tokenizer of a model folder. Like HF's AutoTokenizer (fast by default), tokenizer.json is used
   * when present and vocab.json + merges.txt (what the EleutherAI repos ship) otherwise; both give the same
   * ids for GPT-2 files. tokenizer_config.json and special_tokens_map.json are optional, and the latter wins
   * where both name a special token, as in transformers.
   */
  static async from_pretrained(folder: string | ModelFiles): Promise<GPT2Tokenizer> {
    if (typeof folder === 'string') {
      const folderInfo = await stat(folder).catch(() => null);
      if (!folderInfo?.isDirectory()) throw new TokenizerError(`tokenizer folder ${folder} does not exist`);
    }
    const files = typeof folder === 'string' ? localModelFiles(folder) : folder;

    const config: TokenizerConfig = {
      ...(await readOptionalConfig(files, 'tokenizer_config.json')),
      ...(await readOptionalConfig(files, 'special_tokens_map.json')),
    };

    if (await files.exists('tokenizer.json')) return loadTokenizerJson(files, 'tokenizer.json', config);

    const vocabPath = files.describe('vocab.json');
    const mergesPath = files.describe('merges.txt');
    const missing = [];
    if (!(await files.exists('vocab.json'))) missing.push(vocabPath);
    if (!(await files.exists('merges.txt'))) missing.push(mergesPath);
    if (missing.length > 0) {
      throw new TokenizerError(
        `no tokenizer in ${typeof folder === 'string' ? folder : files.location}: tokenizer.json is absent and so is ${missing.join(' and ')}`,
      );
    }
    const vocab = await readJson(files, 'vocab.json');
    if (!isPlainObject(vocab)) throw new TokenizerError(`${vocabPath}: expected a JSON object of token -> id`);
    const merges = (await readText(files, 'merges.txt')).split(/\r?\n/);
    return withFileContext(`${vocabPath} + ${mergesPath}`, () =>
      GPT2Tokenizer.fromFiles({ vocab: vocab as Record<string, number>, merges, config }),
    );
  }
}

async function loadTokenizerJson(files: ModelFiles, name: string, config: TokenizerConfig): Promise<GPT2Tokenizer> {
  const path = files.describe(name);
  const json = await readJson(files, name);
  const model = isPlainObject(json) ? json['model'] : undefined;
  if (!isPlainObject(json) || !isPlainObject(model)) throw new TokenizerError(`${path}: no "model" object`);
  if (model['type'] !== undefined && model['type'] !== 'BPE') {
    throw new TokenizerError(`${path}: model type ${JSON.stringify(model['type'])} is not supported, only BPE`);
  }
  if (json['normalizer'] !== undefined && json['normalizer'] !== null) {
    throw new TokenizerError(`${path}: a normalizer is not supported (GPT-2 byte-level BPE has none)`);
  }
  const preTokenizer = json['pre_tokenizer'];
  if (!isPlainObject(preTokenizer) || preTokenizer['type'] !== 'ByteLevel') {
    throw new TokenizerError(`${path}: only the ByteLevel pre_tokenizer of GPT-2 is supported`);
  }
  const vocab = model['vocab'];
  const merges = model['merges'];
  if (!isPlainObject(vocab)) throw new TokenizerError(`${path}: model.vocab is not an object of token -> id`);
  if (!Array.isArray(merges) || !merges.every(isMerge)) {
    throw new TokenizerError(`${path}: model.merges must be a list of "a b" strings or [a, b] pairs`);
  }
  const addedTokens = json['added_tokens'] ?? [];
  if (!Array.isArray(addedTokens) || !addedTokens.every(isAddedToken)) {
    throw new TokenizerError(`${path}: added_tokens must be a list of {id, content, special, lstrip?, rstrip?, single_word?}`);
  }
  // tokenizer_config.json decides add_prefix_space when it says so; otherwise the pre-tokenizer's setting holds.
  const addPrefixSpace = config.add_prefix_space ?? preTokenizer['add_prefix_space'];
  return withFileContext(path, () =>
    GPT2Tokenizer.fromFiles({
      vocab: vocab as Record<string, number>,
      merges,
      addedTokens,
      config: { ...config, add_prefix_space: addPrefixSpace === true },
    }),
  );
}

function isMerge(value: unknown): value is string | [string, string] {
  return (
    typeof value === 'string' ||
    (Array.isArray(value) && value.length === 2 && value.every((part) => typeof part === 'string'))
  );
}

function isAddedToken(value: unknown): value is AddedToken {
  return (
    isPlainObject(value) &&
    typeof value['id'] === 'number' &&
    typeof value['content'] === 'string' &&
    ['lstrip', 'rstrip', 'single_word'].every((flag) => value[flag] === undefined || typeof value[flag] === 'boolean')
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Prefixes errors from parsing file contents with the file they came from. */
function withFileContext<T>(source: string, build: () => T): T {
  try {
    return build();
  } catch (error) {
    if (error instanceof TokenizerError) throw new TokenizerError(`${source}: ${error.message}`, { cause: error });
    throw error;
  }
}

async function readText(files: ModelFiles, name: string): Promise<string> {
  try {
    return await files.readText(name);
  } catch (error) {
    throw new TokenizerError(`cannot read ${files.describe(name)}: ${(error as Error).message}`, { cause: error });
  }
}

async function readJson(files: ModelFiles, name: string): Promise<unknown> {
  const path = files.describe(name);
  const text = await readText(files, name);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TokenizerError(`${path}: malformed JSON (${(error as Error).message})`, { cause: error });
  }
}

/** The keys of TokenizerConfig that the file sets, checked, so that a bad value is reported with its file. */
async function readOptionalConfig(files: ModelFiles, name: string): Promise<TokenizerConfig> {
  if (!(await files.exists(name))) return {};
  const path = files.describe(name);
  const json = await readJson(files, name);
  if (!isPlainObject(json)) throw new TokenizerError(`${path}: expected a JSON object`);
  const invalid = (key: string, expected: string) =>
    new TokenizerError(`${path}: ${key} is ${JSON.stringify(json[key])}, expected ${expected}`);

  const config: TokenizerConfig = {};
  for (const key of ['bos_token', 'eos_token', 'unk_token', 'pad_token'] as const) {
    if (!(key in json)) continue;
    const value = json[key];
    if (value !== null && !isSpecialTokenSpec(value)) throw invalid(key, 'a string, {"content": ...} or null');
    config[key] = value;
  }
  if ('additional_special_tokens' in json) {
    const value = json['additional_special_tokens'];
    if (!Array.isArray(value) || !value.every(isSpecialTokenSpec)) {
      throw invalid('additional_special_tokens', 'a list of strings or {"content": ...}');
    }
    config.additional_special_tokens = value;
  }
  if ('added_tokens_decoder' in json) {
    const value = json['added_tokens_decoder'];
    if (!isPlainObject(value) || !Object.values(value).every(isSpecialTokenSpecObject)) {
      throw invalid('added_tokens_decoder', 'an object of id -> {"content": ...}');
    }
    config.added_tokens_decoder = value as TokenizerConfig['added_tokens_decoder'];
  }
  if ('add_prefix_space' in json) {
    const value = json['add_prefix_space'];
    if (typeof value !== 'boolean') throw invalid('add_prefix_space', 'true or false');
    config.add_prefix_space = value;
  }
  if ('model_max_length' in json) {
    const value = json['model_max_length'];
    if (typeof value !== 'number' || !(value > 0)) throw invalid('model_max_length', 'a positive number');
    config.model_max_length = value;
  }
  return config;
}

function isSpecialTokenSpec(value: unknown): value is SpecialTokenSpec {
  return typeof value === 'string' || isSpecialTokenSpecObject(value);
}

function isSpecialTokenSpecObject(value: unknown): value is { content: string } {
  return isPlainObject(value) && typeof value['content'] === 'string';
}
