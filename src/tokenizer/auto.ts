import { readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TokenizerError } from './errors.js';
import { GPT2Tokenizer, type AddedToken, type SpecialTokenSpec, type TokenizerConfig } from './gpt2-tokenizer.js';

export class AutoTokenizer {
  /**
   * Loads the tokenizer of a model folder. Like HF's AutoTokenizer (fast by default), tokenizer.json is used
   * when present and vocab.json + merges.txt (what the EleutherAI repos ship) otherwise; both give the same
   * ids for GPT-2 files. tokenizer_config.json and special_tokens_map.json are optional, and the latter wins
   * where both name a special token, as in transformers.
   */
  static async from_pretrained(folder: string): Promise<GPT2Tokenizer> {
    const folderInfo = await stat(folder).catch(() => null);
    if (!folderInfo?.isDirectory()) throw new TokenizerError(`tokenizer folder ${folder} does not exist`);

    const config: TokenizerConfig = {
      ...(await readOptionalConfig(join(folder, 'tokenizer_config.json'))),
      ...(await readOptionalConfig(join(folder, 'special_tokens_map.json'))),
    };

    const tokenizerJsonPath = join(folder, 'tokenizer.json');
    if (await fileExists(tokenizerJsonPath)) return loadTokenizerJson(tokenizerJsonPath, config);

    const vocabPath = join(folder, 'vocab.json');
    const mergesPath = join(folder, 'merges.txt');
    const missing = [];
    if (!(await fileExists(vocabPath))) missing.push(vocabPath);
    if (!(await fileExists(mergesPath))) missing.push(mergesPath);
    if (missing.length > 0) {
      throw new TokenizerError(
        `no tokenizer in ${folder}: tokenizer.json is absent and so is ${missing.join(' and ')}`,
      );
    }
    const vocab = await readJson(vocabPath);
    if (!isPlainObject(vocab)) throw new TokenizerError(`${vocabPath}: expected a JSON object of token -> id`);
    const merges = (await readText(mergesPath)).split(/\r?\n/);
    return withFileContext(`${vocabPath} + ${mergesPath}`, () =>
      GPT2Tokenizer.fromFiles({ vocab: vocab as Record<string, number>, merges, config }),
    );
  }
}

async function loadTokenizerJson(path: string, config: TokenizerConfig): Promise<GPT2Tokenizer> {
  const json = await readJson(path);
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

async function fileExists(path: string): Promise<boolean> {
  const info = await stat(path).catch(() => null);
  return info?.isFile() ?? false;
}

async function readText(path: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    throw new TokenizerError(`cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

async function readJson(path: string): Promise<unknown> {
  const text = await readText(path);
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new TokenizerError(`${path}: malformed JSON (${(error as Error).message})`, { cause: error });
  }
}

/** The keys of TokenizerConfig that the file sets, checked, so that a bad value is reported with its file. */
async function readOptionalConfig(path: string): Promise<TokenizerConfig> {
  if (!(await fileExists(path))) return {};
  const json = await readJson(path);
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
