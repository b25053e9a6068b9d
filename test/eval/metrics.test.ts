import { describe, expect, it } from 'vitest';
import {
  accuracy,
  argmax,
  lambadaMetrics,
  meanStandardError,
  multipleChoiceAccuracy,
  rollingPerplexityMetrics,
  sampleStandardDeviation,
  tokenLevelMetrics,
} from '../../src/eval/metrics.js';
import { formatResultsTable, type EvalResults } from '../../src/eval/results.js';

describe('harness aggregation', () => {
  it('standard error of a mean uses the sample standard deviation (ddof = 1)', () => {
    // mean 0.75; squared deviations 1/16, 9/16, 1/16, 1/16 → sum 3/4; / (n-1) = 1/4 → sd 0.5; / sqrt(4) → 0.25.
    expect(sampleStandardDeviation([1, 0, 1, 1])).toBeCloseTo(0.5, 12);
    expect(meanStandardError([1, 0, 1, 1])).toBeCloseTo(0.25, 12);
    expect(accuracy([true, false, true, true])).toEqual({ acc: 0.75, acc_stderr: expect.closeTo(0.25, 12) });
    expect(accuracy([true]).acc_stderr).toBeNaN();
  });

  it('predicts the choice with the highest log-likelihood, the lowest index on ties', () => {
    expect(argmax([-3, -1, -1, -2])).toBe(1);
    const questions = [
      { choiceLogLikelihoods: [-5, -2, -9], gold: 1 }, // right
      { choiceLogLikelihoods: [-4, -4], gold: 1 }, // tie → index 0 → wrong
      { choiceLogLikelihoods: [-1, -3, -2, -8], gold: 2 }, // wrong
      { choiceLogLikelihoods: [-7, -7, -6], gold: 2 }, // right
    ];
    const { acc, acc_stderr } = multipleChoiceAccuracy(questions);
    expect(acc).toBe(0.5);
    // outcomes 1 0 0 1: sd = sqrt(1/3), stderr = sqrt(1/3)/2.
    expect(acc_stderr).toBeCloseTo(Math.sqrt(1 / 3) / 2, 12);
  });

  it('LAMBADA: perplexity per document (word), greedy accuracy, delta-method perplexity stderr', () => {
    const metrics = lambadaMetrics([
      { logLikelihood: -1, isGreedy: true },
      { logLikelihood: -2, isGreedy: false },
      { logLikelihood: -3, isGreedy: true },
    ]);
    // ppl = exp(2) = 7.3890561; sd(ll) = 1 → stderr(mean) = 1/sqrt(3) = 0.5773503; ppl_stderr = 4.2660735.
    expect(metrics.ppl).toBeCloseTo(7.3890561, 6);
    expect(metrics.ppl_stderr).toBeCloseTo(4.2660735, 6);
    expect(metrics.acc).toBeCloseTo(2 / 3, 12);
    expect(metrics.acc_stderr).toBeCloseTo(1 / 3, 12);
  });

  it('rolling perplexities are weighted by words and bytes; bits_per_byte is log2 of byte perplexity', () => {
    const metrics = rollingPerplexityMetrics([
      { logLikelihood: -10, words: 5, bytes: 20 },
      { logLikelihood: -20, words: 10, bytes: 40 },
    ]);
    expect(metrics.word_perplexity).toBeCloseTo(Math.exp(2), 12); // 30 nats / 15 words
    expect(metrics.byte_perplexity).toBeCloseTo(Math.exp(0.5), 12); // 30 nats / 60 bytes
    expect(metrics.bits_per_byte).toBeCloseTo(0.7213475, 6); // 0.5 / ln 2
    expect(2 ** metrics.bits_per_byte).toBeCloseTo(metrics.byte_perplexity, 12);
  });
});

describe('GPT-Neo token-level aggregation', () => {
  it('averages exp(batch mean loss) over complete batches and drops the incomplete last one', () => {
    const metrics = tokenLevelMetrics(
      [
        { loss: 4, tokenCount: 2 },
        { loss: 2, tokenCount: 2 }, // batch 1: 6 / 4 = 1.5
        { loss: 9, tokenCount: 3 },
        { loss: 3, tokenCount: 3 }, // batch 2: 12 / 6 = 2
        { loss: 100, tokenCount: 1 }, // incomplete: dropped
      ],
      2,
    );
    expect(metrics.batches).toBe(2);
    expect(metrics.token_perplexity).toBeCloseTo((Math.exp(1.5) + Math.exp(2)) / 2, 12); // 5.9353727, not exp(1.75) = 5.7546
    expect(metrics.token_bits_per_byte).toBeCloseTo((1.75 * 0.29335) / Math.LN2, 12); // 0.7406328
  });

  it("converts the card's Pile BPB back to the loss it implies (eval-tasks.md consistency check)", () => {
    const loss = (0.7527 * Math.LN2) / 0.29335; // 1.7785 nats
    expect(loss).toBeCloseTo(1.7785, 4);
    expect(tokenLevelMetrics([{ loss: loss * 2048, tokenCount: 2048 }], 1).token_bits_per_byte).toBeCloseTo(0.7527, 10);
  });

  it('is undefined (NaN, null in JSON) without one complete batch', () => {
    const metrics = tokenLevelMetrics([{ loss: 1, tokenCount: 1 }], 8);
    expect(metrics.batches).toBe(0);
    expect(JSON.parse(JSON.stringify(metrics))).toEqual({ token_perplexity: null, token_bits_per_byte: null, batches: 0 });
  });
});

describe('results table', () => {
  it("prints the card's numbers the way the card does", () => {
    const results = {
      results: {
        lambada: { ppl: 7.498, ppl_stderr: 0.2069, acc: 0.5723, acc_stderr: 0.006892 },
        pile: { token_bits_per_byte: 0.7527, token_perplexity: 6.159, word_perplexity: 15.2, byte_perplexity: 1.6, bits_per_byte: 0.678 },
        piqa: { acc: 0.7111, acc_stderr: Number.NaN },
      },
      versions: { lambada: 0, pile: 1, piqa: 0 },
    } as unknown as EvalResults;
    const lines = formatResultsTable(results).split('\n');
    expect(lines[0]).toMatch(/^\| Task +\| Version \| Metric +\| +Value \| ± Stderr \| Card column +\| Convention +\|$/);
    const cells = lines.slice(2).map((line) => line.split('|').slice(1, -1).map((cell) => cell.trim()));
    expect(cells).toEqual([
      ['pile', '1', 'token_bits_per_byte', '0.7527', '', 'Pile BPB', 'GPT-Neo token level'],
      ['', '', 'token_perplexity', '6.159', '', 'Pile PPL', 'GPT-Neo token level'],
      ['', '', 'word_perplexity', '15.20', '', '', 'harness rolling windows'],
      ['', '', 'byte_perplexity', '1.600', '', '', 'harness rolling windows'],
      ['', '', 'bits_per_byte', '0.6780', '', '', 'harness rolling windows'],
      ['lambada', '0', 'ppl', '7.498', '± 0.2069', 'Lambada PPL', 'harness 2021, zero-shot'],
      ['', '', 'acc', '57.23%', '± 0.69%', 'Lambada Acc', 'harness 2021, zero-shot'],
      ['piqa', '0', 'acc', '71.11%', '± n/a', 'PIQA', 'harness 2021, zero-shot'],
    ]);
  });
});
