// End to end: evaluate() of every task on the small data slices with the trained tiny GPT-Neo, checked
// against plain model.forward() computations of the same numbers.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  defaultEvalDataDir,
  EvalDataError,
  evaluate,
  type EvalProgress,
  type EvalResults,
  formatResultsTable,
  TASK_NAMES,
} from '../../src/eval/index.js';
import { countWhitespaceSeparatedPieces } from '../../src/eval/python-text.js';
import { encodeLoglikelihoodRequest, END_OF_TEXT, packTokenRecords, rollingWindows } from '../../src/eval/requests.js';
import { lambada } from '../../src/eval/tasks/lambada.js';
import { pubmedqa } from '../../src/eval/tasks/pubmedqa.js';
import { splitWikitextDocuments, wikitextDetokenize } from '../../src/eval/tasks/wikitext.js';
import { GPTNeoForCausalLM } from '../../src/modeling/index.js';
import { AutoTokenizer, type GPT2Tokenizer } from '../../src/tokenizer/index.js';
import { fixture, logSumExp } from '../helpers/fixtures.js';
import { EVAL_FIXTURES, evalFixture, referenceScore } from './helpers.js';

const LIMIT = 20;
/** The perplexity tasks run on one document each (one WikiText article, one Pile document) to stay fast. */
const PERPLEXITY_LIMIT = 1;
const TOKEN_BATCH = 2;
const PERPLEXITY_TASKS = ['pile', 'wikitext'];

describe('evaluate() on tiny-trained', () => {
  let model: GPTNeoForCausalLM;
  let tokenizer: GPT2Tokenizer;
  let results: EvalResults;
  let perplexityResults: EvalResults;
  const progress: EvalProgress[] = [];

  beforeAll(async () => {
    model = await GPTNeoForCausalLM.from_pretrained(fixture('tiny-trained'));
    tokenizer = await AutoTokenizer.from_pretrained(fixture('tiny-trained'));
    const common = {
      model,
      tokenizer,
      dataDir: EVAL_FIXTURES,
      batchSize: 8,
      modelName: 'tiny-trained',
      pileSplit: 'val',
      tokenBatchSize: TOKEN_BATCH,
      onProgress: (p: EvalProgress) => progress.push(p),
    } as const;
    results = await evaluate({ ...common, tasks: TASK_NAMES.filter((t) => !PERPLEXITY_TASKS.includes(t)), limit: LIMIT });
    perplexityResults = await evaluate({ ...common, tasks: PERPLEXITY_TASKS, limit: PERPLEXITY_LIMIT });
    const table = formatResultsTable({
      ...results,
      results: { ...perplexityResults.results, ...results.results },
      versions: { ...perplexityResults.versions, ...results.versions },
    });
    console.log(`evaluate() of all tasks:\n${table}`);
  });
  afterAll(() => model.dispose());

  it('reports every task in the harness layout', () => {
    expect(Object.keys(results.results).sort()).toEqual(['hellaswag', 'lambada', 'mathqa', 'piqa', 'pubmedqa', 'winogrande']);
    expect(Object.keys(perplexityResults.results).sort()).toEqual(['pile', 'wikitext']);
    expect({ ...results.versions, ...perplexityResults.versions }).toEqual({
      pile: 1,
      wikitext: 1,
      lambada: 0,
      winogrande: 0,
      hellaswag: 0,
      mathqa: 0,
      pubmedqa: 0,
      piqa: 0,
    });
    for (const name of ['winogrande', 'hellaswag', 'mathqa', 'pubmedqa', 'piqa'] as const) {
      const { acc, acc_stderr } = results.results[name]!;
      expect(acc).toBeGreaterThanOrEqual(0);
      expect(acc).toBeLessThanOrEqual(1);
      expect(Number.isFinite(acc_stderr)).toBe(true);
    }
    for (const name of ['pile', 'wikitext'] as const) {
      const metrics = perplexityResults.results[name]!;
      expect(Object.keys(metrics).sort()).toEqual(['bits_per_byte', 'byte_perplexity', 'token_bits_per_byte', 'token_perplexity', 'word_perplexity']);
      for (const value of Object.values(metrics)) expect(Number.isFinite(value) && value > 0).toBe(true);
    }
    expect(results.config).toMatchObject({
      model: 'tiny-trained',
      dtype: 'fp32',
      num_fewshot: 0,
      batch_size: 8,
      limit: LIMIT,
      max_length: 256,
      data_dir: EVAL_FIXTURES,
      token_level: { record_length: 257, batch_size: TOKEN_BATCH, z_loss: 1e-4, tokens_per_byte: 0.29335, normalization: 'NFKC' },
      pile: { split: 'val', set_name: null },
    });
    expect(results.config.tasks.lambada).toEqual({ files: [evalFixture('lambada', 'lambada_test.jsonl')], documents: 20, requests: 20 });
    expect(results.config.tasks.hellaswag!.documents).toBe(10);
    expect(results.config.tasks.mathqa!.requests).toBe(100);
    expect(perplexityResults.config.tasks.wikitext).toMatchObject({ documents: 1, files: [evalFixture('wikitext', 'wiki.test.raw')] });
    expect(perplexityResults.config.tasks.pile).toMatchObject({ documents: 1, files: [evalFixture('pile', 'val.jsonl.zst')] });
    expect(JSON.parse(JSON.stringify(results))).toEqual(results);
  });

  it('reports progress per task and phase, ending at the total', () => {
    const last = new Map<string, EvalProgress>();
    for (const p of progress) last.set(`${p.task} ${p.phase}`, p);
    expect([...last.keys()].sort()).toEqual(
      [
        ...['lambada', 'winogrande', 'hellaswag', 'mathqa', 'pubmedqa', 'piqa'].map((t) => `${t} loglikelihood`),
        ...PERPLEXITY_TASKS.flatMap((t) => [`${t} rolling`, `${t} token_records`]),
      ].sort(),
    );
    for (const p of last.values()) expect(p.done).toBe(p.total);
  });

  it('LAMBADA perplexity and accuracy equal per-document model.forward() scores', async () => {
    const { requests } = await lambada.load({ dataDir: EVAL_FIXTURES, limit: LIMIT, pileSplit: 'val' });
    const scores = await Promise.all(requests.map((r) => referenceScore(model, encodeLoglikelihoodRequest(tokenizer, r, 256))));
    const meanLogLikelihood = scores.reduce((sum, s) => sum + s.logLikelihood, 0) / scores.length;
    expect(Math.log(results.results.lambada!.ppl)).toBeCloseTo(-meanLogLikelihood, 5);
    expect(results.results.lambada!.acc).toBe(scores.filter((s) => s.isGreedy).length / scores.length);
  });

  it('PubMedQA (contexts longer than the 256-token window) equals left-truncated model.forward() scores', async () => {
    const { questions } = await pubmedqa.load({ dataDir: EVAL_FIXTURES, limit: LIMIT, pileSplit: 'val' });
    let correct = 0;
    let truncated = 0;
    for (const question of questions) {
      const encoded = question.requests.map((r) => encodeLoglikelihoodRequest(tokenizer, r, 256));
      if (tokenizer.encode(question.requests[0]!.context).length > encoded[0]!.contextIds.length) truncated++;
      const lls = await Promise.all(encoded.map(async (r) => (await referenceScore(model, r)).logLikelihood));
      if (lls.indexOf(Math.max(...lls)) === question.gold) correct++;
    }
    expect(truncated).toBeGreaterThanOrEqual(3);
    expect(results.results.pubmedqa!.acc).toBe(correct / questions.length);
  });

  it('WikiText word/byte perplexity equal rolling model.forward() scores of the detokenized article', async () => {
    const documents = splitWikitextDocuments(readFileSync(evalFixture('wikitext', 'wiki.test.raw'), 'utf8')).slice(0, PERPLEXITY_LIMIT);
    let logLikelihood = 0;
    for (const document of documents) {
      for (const window of rollingWindows(tokenizer.encode(wikitextDetokenize(document.text)), 256)) {
        logLikelihood += (await referenceScore(model, window)).logLikelihood;
      }
    }
    const words = documents.reduce((sum, d) => sum + countWhitespaceSeparatedPieces(d.text), 0);
    const bytes = documents.reduce((sum, d) => sum + Buffer.byteLength(d.text), 0);
    const metrics = perplexityResults.results.wikitext!;
    expect(Math.log(metrics.word_perplexity)).toBeCloseTo(-logLikelihood / words, 5);
    expect(Math.log(metrics.byte_perplexity)).toBeCloseTo(-logLikelihood / bytes, 5);
    expect(metrics.bits_per_byte).toBeCloseTo(-logLikelihood / bytes / Math.LN2, 5);
  });

  it('Pile token perplexity and BPB equal per-token model.forward() losses (+ z-loss) of the packed records', async () => {
    // val.jsonl.zst holds the two sample documents; the limit keeps the first.
    const texts = [JSON.parse(readFileSync(evalFixture('pile', 'val_sample.jsonl'), 'utf8')).text as string];
    const records = packTokenRecords(texts.map((t) => [...tokenizer.encode(t.normalize('NFKC')), END_OF_TEXT]), 257);
    const batchLosses: number[] = [];
    for (let start = 0; start + TOKEN_BATCH <= records.length; start += TOKEN_BATCH) {
      let total = 0;
      for (const record of records.slice(start, start + TOKEN_BATCH)) {
        const { logits } = await model.forward({ input_ids: [record.slice(0, 256)] });
        for (let t = 0; t < 256; t++) {
          const row = logits.data.subarray(t * 50257, (t + 1) * 50257);
          const lse = logSumExp(row);
          total += lse - row[record[t + 1]!]! + 1e-4 * lse * lse;
        }
      }
      batchLosses.push(total / (TOKEN_BATCH * 256));
    }
    expect(batchLosses.length).toBe(perplexityResults.config.tasks.pile!.token_batches);
    expect(batchLosses.length).toBeGreaterThanOrEqual(2);
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(perplexityResults.results.pile!.token_perplexity).toBeCloseTo(mean(batchLosses.map(Math.exp)), 3);
    expect(perplexityResults.results.pile!.token_bits_per_byte).toBeCloseTo((mean(batchLosses) * 0.29335) / Math.LN2, 5);
  });
});

describe('evaluate() arguments', () => {
  const model = { config: { max_position_embeddings: 64, vocab_size: 50257 }, createSession: () => { throw new Error('unused'); } };
  const tokenizer = { encode: () => [1] };

  it('rejects unknown tasks and bad numbers before reading anything', async () => {
    await expect(evaluate({ model, tokenizer, tasks: ['lambada', 'squad'] })).rejects.toThrow(/unknown task squad; tasks are pile, wikitext/);
    await expect(evaluate({ model, tokenizer, tasks: ['lambada'], limit: 0 })).rejects.toThrow(/limit must be a positive integer/);
    await expect(evaluate({ model, tokenizer, tasks: ['lambada'], batchSize: 1.5 })).rejects.toThrow(/batchSize must be a positive integer/);
  });

  it('reads data from the default folder ($GPT_NEO_CACHE/eval) and names a missing file', async () => {
    expect(defaultEvalDataDir()).toBe(path.join(process.env.GPT_NEO_CACHE!, 'eval'));
    const error = await evaluate({ model, tokenizer, tasks: ['winogrande'] }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(EvalDataError);
    expect((error as EvalDataError).file).toBe(path.join(process.env.GPT_NEO_CACHE!, 'eval', 'winogrande', 'dev.jsonl'));
  });
});
