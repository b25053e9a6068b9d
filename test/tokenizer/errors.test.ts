import { copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AutoTokenizer, GPT2Tokenizer, TokenizerError } from '../../src/tokenizer/index.js';
import { BYTE_TO_CHAR } from '../../src/tokenizer/byte-level.js';
import { GPT2_VOCAB_DIR } from './fixtures.js';

let workDir: string;
let folderCount = 0;

const byteVocab = (): Record<string, number> => Object.fromEntries(BYTE_TO_CHAR.map((char, byte) => [char, byte]));

/** A fresh folder holding the given files. */
async function folderWith(files: Record<string, string>): Promise<string> {
  const folder = join(workDir, `case-${folderCount++}`);
  await mkdir(folder);
  for (const [name, content] of Object.entries(files)) await writeFile(join(folder, name), content);
  return folder;
}

async function loadError(folder: string): Promise<TokenizerError> {
  const error = await AutoTokenizer.from_pretrained(folder).then(
    () => null,
    (thrown: unknown) => thrown,
  );
  expect(error).toBeInstanceOf(TokenizerError);
  return error as TokenizerError;
}

function thrownBy(action: () => unknown): TokenizerError {
  try {
    action();
  } catch (error) {
    expect(error).toBeInstanceOf(TokenizerError);
    return error as TokenizerError;
  }
  throw new Error('expected a TokenizerError');
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'gpt-neo-tokenizer-errors-'));
});

afterAll(async () => {
  await rm(workDir, { recursive: true, force: true });
});

describe('loading errors name the file', () => {
  it('missing folder', async () => {
    const missing = join(workDir, 'no-such-folder');
    expect((await loadError(missing)).message).toContain(missing);
  });

  it('folder without any tokenizer file', async () => {
    const folder = await folderWith({ 'config.json': '{}' });
    const { message } = await loadError(folder);
    expect(message).toContain('tokenizer.json');
    expect(message).toContain(join(folder, 'vocab.json'));
    expect(message).toContain(join(folder, 'merges.txt'));
  });

  it('vocab.json without merges.txt', async () => {
    const folder = await folderWith({ 'vocab.json': '{}' });
    const { message } = await loadError(folder);
    expect(message).toContain(join(folder, 'merges.txt'));
    expect(message).not.toContain(join(folder, 'vocab.json'));
  });

  it.each(['vocab.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.json'])(
    'malformed %s',
    async (file) => {
      const folder = await folderWith({ 'vocab.json': '{"a": 0}', 'merges.txt': '#version: 0.2\n', [file]: '{"a": ' });
      const { message } = await loadError(folder);
      expect(message).toContain(join(folder, file));
      expect(message).toContain('malformed JSON');
    },
  );

  it('merges.txt line that is not two tokens', async () => {
    const folder = await folderWith({
      'vocab.json': JSON.stringify({ ...byteVocab(), ab: 256 }),
      'merges.txt': '#version: 0.2\na b\na b c\n',
    });
    const { message } = await loadError(folder);
    expect(message).toContain(join(folder, 'merges.txt'));
    expect(message).toContain('merge 2 ("a b c") is not two tokens');
  });

  it('merge whose token is not in vocab.json (HF tokenizers refuses it too)', async () => {
    const folder = await folderWith({
      'vocab.json': JSON.stringify(byteVocab()),
      'merges.txt': '#version: 0.2\na b\n',
    });
    const { message } = await loadError(folder);
    expect(message).toContain(join(folder, 'merges.txt'));
    expect(message).toContain('merge 1 ("a b") needs "ab", which is not in the vocabulary');
  });

  it('tokenizer.json merge whose token is not in model.vocab', async () => {
    const folder = await folderWith({
      'tokenizer.json': JSON.stringify({
        pre_tokenizer: { type: 'ByteLevel' },
        model: { type: 'BPE', vocab: { a: 0, ab: 1 }, merges: [['a', 'b']] },
      }),
    });
    const { message } = await loadError(folder);
    expect(message).toContain(join(folder, 'tokenizer.json'));
    expect(message).toContain('needs "b"');
  });

  it('tokenizer.json of another model type or pre-tokenizer', async () => {
    const wordPiece = await folderWith({
      'tokenizer.json': JSON.stringify({ model: { type: 'WordPiece', vocab: {} } }),
    });
    expect((await loadError(wordPiece)).message).toMatch(/tokenizer\.json: model type "WordPiece" is not supported/);
    const metaspace = await folderWith({
      'tokenizer.json': JSON.stringify({ pre_tokenizer: { type: 'Metaspace' }, model: { type: 'BPE', vocab: {}, merges: [] } }),
    });
    expect((await loadError(metaspace)).message).toMatch(/tokenizer\.json: only the ByteLevel pre_tokenizer/);
  });

  it('special token of the wrong type or missing from the vocabulary', async () => {
    const badType = await folderWith({
      'vocab.json': JSON.stringify(byteVocab()),
      'merges.txt': '',
      'special_tokens_map.json': '{"eos_token": 7}',
    });
    expect((await loadError(badType)).message).toContain(`${join(badType, 'special_tokens_map.json')}: eos_token is 7`);

    const unknown = await folderWith({
      'vocab.json': JSON.stringify(byteVocab()),
      'merges.txt': '',
      'tokenizer_config.json': '{"pad_token": "<pad>"}',
    });
    expect((await loadError(unknown)).message).toContain('pad_token "<pad>" is not in the vocabulary');
  });

  it('vocab id that is not an integer', () => {
    const { message } = thrownBy(() => GPT2Tokenizer.fromFiles({ vocab: { a: 1.5 }, merges: [] }));
    expect(message).toBe('vocab entry "a" has id 1.5, not a non-negative integer');
  });
});

describe('id errors', () => {
  let tokenizer: GPT2Tokenizer;
  beforeAll(async () => {
    const folder = await folderWith({});
    for (const file of ['vocab.json', 'merges.txt']) await copyFile(join(GPT2_VOCAB_DIR, file), join(folder, file));
    tokenizer = await AutoTokenizer.from_pretrained(folder);
  });

  it.each([50257, -1, 1.5, 1e9])('decode rejects id %s, naming it and the vocab size', (id) => {
    for (const action of [
      () => tokenizer.decode([15496, id]),
      () => tokenizer.decodeBytes([id]),
      () => tokenizer.convert_ids_to_tokens([id]),
    ]) {
      expect(thrownBy(action).message).toBe(`token id ${id} is not in the vocabulary (vocab size 50257)`);
    }
  });

  it('encoding a byte the vocabulary lacks', () => {
    const vocab = byteVocab();
    delete vocab[BYTE_TO_CHAR[0x7a]!];
    const tokenizer = GPT2Tokenizer.fromFiles({ vocab, merges: [] });
    expect(thrownBy(() => tokenizer.encode('xyz')).message).toBe('byte 0x7a ("z") is not in the vocabulary');
  });
});
