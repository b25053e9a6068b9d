import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { EvalDataError, parseTopLevelJsonEntries, readLines } from '../../src/eval/data.js';
import { hellaswag } from '../../src/eval/tasks/hellaswag.js';
import { lambada } from '../../src/eval/tasks/lambada.js';
import { mathqa } from '../../src/eval/tasks/mathqa.js';
import { pile } from '../../src/eval/tasks/pile.js';
import { piqa } from '../../src/eval/tasks/piqa.js';
import { pubmedqa } from '../../src/eval/tasks/pubmedqa.js';
import type { TaskDataOptions } from '../../src/eval/tasks/task.js';
import { winogrande } from '../../src/eval/tasks/winogrande.js';
import { EVAL_FIXTURES, evalFixture } from './helpers.js';

const scratch = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-eval-data-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A data folder with the given files (path relative to the data folder → content). */
function dataDir(files: Record<string, string | Buffer>): string {
  const dir = mkdtempSync(path.join(scratch, 'data-'));
  for (const [name, content] of Object.entries(files)) {
    mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    writeFileSync(path.join(dir, name), content);
  }
  return dir;
}

const options = (dir: string, extra: Partial<TaskDataOptions> = {}): TaskDataOptions => ({ dataDir: dir, pileSplit: 'test', ...extra });

async function dataError(promise: Promise<unknown>): Promise<EvalDataError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(EvalDataError);
  return error as EvalDataError;
}

describe('data errors name the file, the line and what was expected', () => {
  it('missing file', async () => {
    const dir = dataDir({});
    const error = await dataError(lambada.load(options(dir)));
    expect(error.file).toBe(path.join(dir, 'lambada', 'lambada_test.jsonl'));
    expect(error.line).toBeUndefined();
    expect(error.message).toMatch(/lambada_test\.jsonl: file not found; expected a JSON object \{"text": string\} per line/);
  });

  it('lists every file name a task accepts when none is there', async () => {
    const error = await dataError(hellaswag.load(options(dataDir({ 'hellaswag/other.jsonl': '' }))));
    expect(error.message).toMatch(/looked for hellaswag_val\.jsonl, hellaswag_val_first10\.jsonl/);
  });

  it('malformed JSON line', async () => {
    const dir = dataDir({ 'lambada/lambada_test.jsonl': '{"text": "a b"}\n{"text": "c d"}\n{"text": "e f"\n{"text": "g h"}\n' });
    const error = await dataError(lambada.load(options(dir)));
    expect(error.line).toBe(3);
    expect(error.message).toMatch(/lambada_test\.jsonl:3: invalid JSON, expected a JSON object \{"text": string\} per line/);
  });

  it('a line that is JSON but not a record of the task', async () => {
    const good = readFileSync(evalFixture('winogrande', 'dev.jsonl'), 'utf8').split('\n')[0];
    const dir = dataDir({ 'winogrande/dev.jsonl': `${good}\n{"sentence": "A _ b.", "option1": "x", "answer": "1"}\n` });
    const error = await dataError(winogrande.load(options(dir)));
    expect(error.message).toMatch(/dev\.jsonl:2: field "option2" must be a string, got nothing/);

    const noBlank = dataDir({ 'winogrande/dev.jsonl': '{"sentence": "No blank.", "option1": "x", "option2": "y", "answer": "2"}\n' });
    expect((await dataError(winogrande.load(options(noBlank)))).message).toMatch(/dev\.jsonl:1: field "sentence" must contain the blank "_"/);

    const array = dataDir({ 'lambada/lambada_test.jsonl': '["a b"]\n' });
    expect((await dataError(lambada.load(options(array)))).message).toMatch(/lambada_test\.jsonl:1: expected a JSON object/);
  });

  it('a record in a whole-file JSON array, named by the line it starts on', async () => {
    const records = [
      { Problem: 'p1', options: 'a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5', correct: 'a' },
      { Problem: 'p2', options: 'a ) 1 , b ) 2 , c ) 3 , d ) 4 , e ) 5', correct: 'f' },
    ];
    const dir = dataDir({ 'mathqa/test.json': JSON.stringify(records, null, 4) });
    const error = await dataError(mathqa.load(options(dir)));
    expect(error.line).toBe(7);
    expect(error.message).toMatch(/test\.json:7: field "correct" must be one of a-e, got "f"/);

    const truncated = dataDir({ 'mathqa/test.json': JSON.stringify(records, null, 4).slice(0, 120) });
    expect((await dataError(mathqa.load(options(truncated)))).message).toMatch(/test\.json:\d+: .*expected a JSON array of/);
  });

  it('PIQA labels must match the questions line for line', async () => {
    const lines = readFileSync(evalFixture('piqa', 'valid.jsonl'), 'utf8').split('\n').slice(0, 3).join('\n');
    const short = dataDir({ 'piqa/valid.jsonl': `${lines}\n`, 'piqa/valid-labels.lst': '0\n1\n' });
    expect((await dataError(piqa.load(options(short)))).message).toMatch(/valid\.jsonl:3: no label for this line/);
    const bad = dataDir({ 'piqa/valid.jsonl': `${lines}\n`, 'piqa/valid-labels.lst': '0\n1\nyes\n' });
    expect((await dataError(piqa.load(options(bad)))).message).toMatch(/valid-labels\.lst:3: expected a label 0 or 1, got "yes"/);
  });
});

describe('JSON object order', () => {
  it('keeps integer-like keys in file order, unlike JSON.parse', () => {
    const text = '{\n "21645374": {"a": [1, "}"]},\n "16418930": "x",\n "9488747": null\n}';
    expect(Object.keys(JSON.parse(text))).toEqual(['9488747', '16418930', '21645374']);
    const entries = parseTopLevelJsonEntries(text, 'f.json', 'an object');
    expect(entries.map((e) => [e.key, e.line])).toEqual([
      ['21645374', 2],
      ['16418930', 3],
      ['9488747', 4],
    ]);
    expect(entries[0]!.value).toEqual({ a: [1, '}'] });
  });

  it('PubMedQA documents come in the file order of their PubMed ids', async () => {
    const { questions } = await pubmedqa.load(options(EVAL_FIXTURES));
    const keysInFile = [...readFileSync(evalFixture('pubmedqa', 'ori_pqal.json'), 'utf8').matchAll(/^ {4}"(\d+)": \{/gm)].map((m) => m[1]);
    expect(keysInFile.slice(0, 3)).toEqual(['21645374', '16418930', '9488747']);
    expect(questions).toHaveLength(keysInFile.length);
    expect(questions[0]!.requests[0]!.context).toMatch(/^Abstract: Programmed cell death \(PCD\)/);
  });
});

describe('Pile files', () => {
  const valSample = JSON.parse(readFileSync(evalFixture('pile', 'val_sample.jsonl'), 'utf8'));
  const testSample = JSON.parse(readFileSync(evalFixture('pile', 'test_sample.jsonl'), 'utf8'));

  it('reads lines longer than a read chunk, without an empty line after the final newline', async () => {
    const long = 'x'.repeat(300_000);
    const dir = dataDir({ 'lines.txt': `a\n${long}\n\nb${long}c\nlast\n` });
    const lines: { text: string; line: number }[] = [];
    for await (const line of readLines(path.join(dir, 'lines.txt'))) lines.push(line);
    expect(lines.map((l) => [l.line, l.text.length])).toEqual([
      [1, 1],
      [2, 300_000],
      [3, 0],
      [4, 300_002],
      [5, 4],
    ]);
    expect(lines[3]!.text).toBe(`b${long}c`);
  });

  it('streams a zstd-compressed JSON Lines file (two zstd frames) line by line', async () => {
    const lines: { text: string; line: number }[] = [];
    for await (const line of readLines(evalFixture('pile', 'val.jsonl.zst'))) lines.push(line);
    expect(lines.map((l) => l.line)).toEqual([1, 2]);
    expect(lines.map((l) => JSON.parse(l.text).text)).toEqual([valSample.text, testSample.text]);

    const { documents, files } = await pile.load(options(EVAL_FIXTURES, { pileSplit: 'val' }));
    expect(files).toEqual([evalFixture('pile', 'val.jsonl.zst')]);
    expect(documents.map((d) => d.text)).toEqual([valSample.text, testSample.text]);
  });

  it('filters by meta.pile_set_name and stops at the limit', async () => {
    const wikipedia = await pile.load(options(EVAL_FIXTURES, { pileSplit: 'val', pileSetName: 'Wikipedia (en)' }));
    expect(wikipedia.documents.map((d) => d.text)).toEqual([testSample.text]);
    const first = await pile.load(options(EVAL_FIXTURES, { pileSplit: 'val', limit: 1 }));
    expect(first.documents.map((d) => d.text)).toEqual([valSample.text]);
    const error = await dataError(pile.load(options(EVAL_FIXTURES, { pileSplit: 'val', pileSetName: 'ArXiv' })));
    expect(error.message).toMatch(/val\.jsonl\.zst: no document has meta\.pile_set_name "ArXiv"/);
  });

  it('falls back from test.jsonl.zst to test.jsonl to the shared sample file', async () => {
    const { files, documents } = await pile.load(options(EVAL_FIXTURES));
    expect(files).toEqual([evalFixture('pile', 'test_sample.jsonl')]);
    expect(documents.map((d) => d.text)).toEqual([testSample.text]);
    const plain = dataDir({ 'pile/test.jsonl': '{"text": "x y", "meta": {"pile_set_name": "ArXiv"}}\n' });
    expect((await pile.load(options(plain))).documents).toEqual([{ text: 'x y', target: 'x y' }]);
  });

  it('reports a corrupt or truncated zstd file', async () => {
    const compressed = readFileSync(evalFixture('pile', 'val.jsonl.zst'));
    const garbage = dataDir({ 'pile/test.jsonl.zst': Buffer.from('this is not zstd at all, just text\n') });
    expect((await dataError(pile.load(options(garbage)))).message).toMatch(/test\.jsonl\.zst: not a valid zstd stream/);
    const truncated = dataDir({ 'pile/test.jsonl.zst': compressed.subarray(0, 1000) });
    expect((await dataError(pile.load(options(truncated)))).message).toMatch(/test\.jsonl\.zst: (truncated|not a valid) zstd stream/);
  });
});

describe('HellaSwag file choice', () => {
  it('prefers the full validation file and falls back to the shared first-10 sample', async () => {
    const sample = await hellaswag.load(options(EVAL_FIXTURES));
    expect(sample.files).toEqual([evalFixture('hellaswag', 'hellaswag_val_first10.jsonl')]);
    expect(sample.questions).toHaveLength(10);
    const firstLine = readFileSync(evalFixture('hellaswag', 'hellaswag_val_first10.jsonl'), 'utf8').split('\n')[0];
    const full = await hellaswag.load(options(dataDir({ 'hellaswag/hellaswag_val.jsonl': `${firstLine}\n` })));
    expect(full.files[0]).toMatch(/hellaswag_val\.jsonl$/);
    expect(full.questions).toHaveLength(1);
  });

  it('accepts Hugging Face string labels and rejects labels outside 0-3', async () => {
    const record = JSON.parse(readFileSync(evalFixture('hellaswag', 'hellaswag_val_first10.jsonl'), 'utf8').split('\n')[0]!);
    const asString = dataDir({ 'hellaswag/hellaswag_val.jsonl': `${JSON.stringify({ ...record, label: '2' })}\n` });
    expect((await hellaswag.load(options(asString))).questions[0]!.gold).toBe(2);
    const outOfRange = dataDir({ 'hellaswag/hellaswag_val.jsonl': `${JSON.stringify({ ...record, label: 4 })}\n` });
    expect((await dataError(hellaswag.load(options(outOfRange)))).message).toMatch(
      /hellaswag_val\.jsonl:1: field "label" must be one of 0, 1, 2, 3, got 4/,
    );
  });
});
