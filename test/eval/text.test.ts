// String rules against Python's own behaviour: test/fixtures/eval/python_oracle.json was written by
// make_python_oracle.py (next to it) with CPython 3.11's str and re.
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { countWhitespaceSeparatedPieces, pythonCapitalize, pythonStrip } from '../../src/eval/python-text.js';
import { hellaswagPreprocess } from '../../src/eval/tasks/hellaswag.js';
import { mathqaChoices } from '../../src/eval/tasks/mathqa.js';
import { splitWikitextDocuments, wikitextDetokenize } from '../../src/eval/tasks/wikitext.js';
import { evalFixture, readEvalJson } from './helpers.js';

const oracle = readEvalJson('python_oracle.json');
const sha256 = (text: string) => createHash('sha256').update(text, 'utf8').digest('hex');

describe('Python string semantics', () => {
  it.each(oracle.python_strip as [string, string][])('strip %j', (input, expected) => {
    expect(pythonStrip(input)).toBe(expected);
  });

  it.each(oracle.python_capitalize as [string, string][])('capitalize %j', (input, expected) => {
    expect(pythonCapitalize(input)).toBe(expected);
  });

  it.each(oracle.python_split_whitespace_count as [string, number][])('len(re.split(r"\\s+", %j))', (input, expected) => {
    expect(countWhitespaceSeparatedPieces(input)).toBe(expected);
  });
});

describe('task string rules', () => {
  it.each(oracle.hellaswag_preprocess as [string, string][])('HellaSwag preprocess %j', (input, expected) => {
    expect(hellaswagPreprocess(input)).toBe(expected);
  });

  it.each(oracle.mathqa_choices as [string, string[]][])('MathQA choices of %j', (options, expected) => {
    expect(mathqaChoices(options)).toEqual(expected);
  });

  it.each(oracle.wikitext_detokenize as [string, string][])('WikiText detokenizer on %j', (input, expected) => {
    expect(wikitextDetokenize(input)).toBe(expected);
  });
});

describe('WikiText documents (first three articles of wiki.test.raw)', () => {
  const raw = readFileSync(evalFixture('wikitext', 'wiki.test.raw'), 'utf8');
  const documents = splitWikitextDocuments(raw);
  const expected: { sha256: string; starts: string; ends: string; words: number; bytes: number; detokenized_sha256: string }[] =
    oracle.wikitext_fixture_documents;

  it('splits at top-level titles, dropping the leading blank line and keeping section headings inside', () => {
    expect(documents.map((d) => d.text.slice(0, 40))).toEqual(expected.map((d) => d.starts));
    expect(documents.map((d) => d.text.slice(-40))).toEqual(expected.map((d) => d.ends));
    expect(documents.map((d) => sha256(d.text))).toEqual(expected.map((d) => d.sha256));
    // The last document runs to the end of the file, so the file's line structure is kept.
    expect(documents[documents.length - 1]!.endLine).toBe(raw.split('\n').length);
  });

  it('counts words (re.split on whitespace, empty ends included) and UTF-8 bytes of the original text', () => {
    expect(documents.map((d) => countWhitespaceSeparatedPieces(d.text))).toEqual(expected.map((d) => d.words));
    expect(documents.map((d) => Buffer.byteLength(d.text, 'utf8'))).toEqual(expected.map((d) => d.bytes));
    expect(expected[0]!.words).toBe(1093);
  });

  it('detokenizes every document like the harness', () => {
    expect(wikitextDetokenize(documents[0]!.text)).toBe(oracle.wikitext_fixture_document0_detokenized);
    expect(documents.map((d) => sha256(wikitextDetokenize(d.text)))).toEqual(expected.map((d) => d.detokenized_sha256));
    expect(wikitextDetokenize(documents[0]!.text).startsWith(' = Robert Boulter =\n\nRobert Boulter is an English film, television')).toBe(true);
  });
});
