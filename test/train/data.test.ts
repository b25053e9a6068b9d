import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { AutoTokenizer } from '../../src/index.js';
import { BlockDataset, readDocuments } from '../../src/train/data.js';
import { fixture } from '../helpers/fixtures.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-train-data-'));

describe('a .txt training file, as datasets\' text loader and run_clm read it', () => {
  it('is one example per line (universal newlines, line breaks kept), each tokenized on its own, EOS after the file', async () => {
    const file = path.join(scratch, 'lines.txt');
    writeFileSync(file, 'Hi\r\n\r\n\r\nyou\nend');
    expect(await readDocuments(file)).toEqual([['Hi\n', '\n', '\n', 'you\n', 'end']]);

    const tokenizer = await AutoTokenizer.from_pretrained(fixture('tiny-gpt2vocab'));
    const encode = (text: string) => tokenizer.encode(text);
    const data = BlockDataset.fromDocuments(file, await readDocuments(file), encode, 50256, 8);
    // GPT-2 ids: Hi 17250, "\n" 198, you 5832, end 437, <|endoftext|> 50256. Tokenizing the whole file at once
    // would give "\n\n" as one token (628): [17250, 628, 198, 5832, 198, 437].
    expect(data.batch([0]).input_ids).toEqual([[17250, 198, 198, 198, 5832, 198, 437, 50256]]);
    expect(encode('Hi\n\n\nyou\nend')).toEqual([17250, 628, 198, 5832, 198, 437]);
  });
});
