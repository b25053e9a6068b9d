// pipeline('text-classification') end to end on the seqcls fixture. Its tokenizer files give each reference
// token id one letter (vocab.json: byte-level BPE without merges), so the texts below encode to exactly the
// reference rows, which the pipeline right-pads with pad_token_id as the reference batch is padded.
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pipeline, type TextClassificationPipeline } from '../../src/pipeline/index.js';
import { fixture, readReference } from '../helpers/fixtures.js';

const ref = readReference('heads/seqcls');
const TEXTS = ['abcdefghij', 'klgmnop', 'qrst'];
const LABELS = ['negative', 'neutral', 'positive'];

function softmax(logits: number[]): number[] {
  const exps = logits.map((x) => Math.exp(x - Math.max(...logits)));
  return exps.map((e) => e / exps.reduce((a, b) => a + b, 0));
}
/** The reference scores of text i, best first. */
const expected = (i: number) =>
  softmax(ref.logits[i])
    .map((score, id) => ({ label: LABELS[id]!, score }))
    .sort((a, b) => b.score - a.score);

function expectScores(actual: { label: string; score: number }[], wanted: { label: string; score: number }[]) {
  expect(actual.map((a) => a.label)).toEqual(wanted.map((w) => w.label));
  actual.forEach((a, k) => expect(Math.abs(a.score - wanted[k]!.score)).toBeLessThan(2e-5));
}

describe('pipeline("text-classification")', () => {
  let classifier: TextClassificationPipeline;
  beforeAll(async () => {
    classifier = await pipeline('text-classification', fixture('heads', 'seqcls'));
  });
  afterAll(() => classifier.dispose());

  it('the tokenizer fixture encodes the texts to the reference rows', () => {
    TEXTS.forEach((text, i) => expect(classifier.tokenizer.encode(text)).toEqual(ref.input_ids[i].slice(0, ref.pooled_token_index[i] + 1)));
  });

  it('labels a list of texts as the reference does, with softmax scores', async () => {
    const out = await classifier(TEXTS);
    expect(out.map((o) => o.label)).toEqual(ref.labels);
    out.forEach((o, i) => expectScores([o], expected(i).slice(0, 1)));
  });

  it('follows transformers for one text and top_k', async () => {
    expectScores(await classifier(TEXTS[0]!), expected(0).slice(0, 1));
    expectScores(await classifier(TEXTS[1]!, { top_k: 2 }), expected(1).slice(0, 2));
    const all = await classifier(TEXTS[2]!, { top_k: null });
    expectScores(all, expected(2));
    expect(all.reduce((sum, o) => sum + o.score, 0)).toBeCloseTo(1, 6);
    const perText = await classifier(TEXTS, { top_k: 3 });
    perText.forEach((labels, i) => expectScores(labels, expected(i)));
    const [sigmoid] = await classifier(TEXTS[0]!, { function_to_apply: 'sigmoid' });
    expect(sigmoid!.score).toBeCloseTo(1 / (1 + Math.exp(-Math.max(...ref.logits[0]))), 5);
  });

  it('gives each text alone what it gives in a padded batch', async () => {
    const batched = await classifier(TEXTS, { top_k: null });
    for (const [i, text] of TEXTS.entries()) expectScores(await classifier(text, { top_k: null }), batched[i]!);
  });

  it('without pad_token_id, runs the texts one at a time (as transformers does) with the same results', async () => {
    const folder = mkdtempSync(path.join(os.tmpdir(), 'gpt-neo-textcls-'));
    for (const name of ['model.safetensors', 'vocab.json', 'merges.txt']) copyFileSync(fixture('heads', 'seqcls', name), path.join(folder, name));
    const config = JSON.parse(readFileSync(fixture('heads', 'seqcls', 'config.json'), 'utf8'));
    delete config.pad_token_id;
    writeFileSync(path.join(folder, 'config.json'), JSON.stringify(config));
    const unpadded = await pipeline('sentiment-analysis', folder);
    const out = await unpadded(TEXTS, { top_k: null });
    out.forEach((labels, i) => expectScores(labels, expected(i)));
    await unpadded.dispose();
  });

  it('rejects bad options and tasks clearly', async () => {
    await expect(classifier(TEXTS[0]!, { top_k: 0 })).rejects.toThrow('top_k must be a positive integer or null');
    await expect(classifier('')).rejects.toThrow('text is empty');
    await expect(pipeline('summarization' as 'text-classification', fixture('heads', 'seqcls'))).rejects.toThrow(
      "pipeline task 'summarization' is not supported",
    );
  });
});
