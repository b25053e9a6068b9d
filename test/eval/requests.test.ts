// Document → request construction of every task against shared/data/eval/worked_examples.json (copied to
// test/fixtures/eval): exact strings and GPT-2 token ids.
import { beforeAll, describe, expect, it } from 'vitest';
import {
  encodeLoglikelihoodRequest,
  END_OF_TEXT,
  packTokenRecords,
  recordRequest,
  rollingWindows,
} from '../../src/eval/requests.js';
import { hellaswag } from '../../src/eval/tasks/hellaswag.js';
import { lambada } from '../../src/eval/tasks/lambada.js';
import { mathqa } from '../../src/eval/tasks/mathqa.js';
import { piqa } from '../../src/eval/tasks/piqa.js';
import { pubmedqa } from '../../src/eval/tasks/pubmedqa.js';
import type { TaskDataOptions } from '../../src/eval/tasks/task.js';
import { winogrande } from '../../src/eval/tasks/winogrande.js';
import { AutoTokenizer, type GPT2Tokenizer } from '../../src/tokenizer/index.js';
import { fixture } from '../helpers/fixtures.js';
import { EVAL_FIXTURES, readEvalJson } from './helpers.js';

interface WorkedRequest {
  context: string;
  continuation: string;
  context_ids: number[];
  continuation_ids: number[];
}
interface WorkedDocument {
  doc_index?: number;
  gold?: number | string;
  requests: WorkedRequest[];
}

const worked: Record<string, WorkedDocument[]> = readEvalJson('worked_examples.json');
const MULTIPLE_CHOICE = { piqa, winogrande, hellaswag, mathqa, pubmedqa };
const dataOptions = (limit?: number): TaskDataOptions => ({ dataDir: EVAL_FIXTURES, limit, pileSplit: 'test' });

let tokenizer: GPT2Tokenizer;
beforeAll(async () => {
  tokenizer = await AutoTokenizer.from_pretrained(fixture('tiny-gpt2vocab'));
});

function expectRequestsMatch(actual: { context: string; continuation: string }[], expected: WorkedRequest[]) {
  expect(actual.map((r) => [r.context, r.continuation])).toEqual(expected.map((r) => [r.context, r.continuation]));
  for (const [i, request] of actual.entries()) {
    const encoded = encodeLoglikelihoodRequest(tokenizer, request, 2048);
    expect(encoded.contextIds, `request ${i} context ids`).toEqual(expected[i]!.context_ids);
    expect(encoded.continuationIds, `request ${i} continuation ids`).toEqual(expected[i]!.continuation_ids);
  }
}

describe('worked examples', () => {
  it('lambada: context before the last space, continuation " " + last word', async () => {
    const { requests } = await lambada.load(dataOptions(3));
    expect(requests).toHaveLength(3);
    for (const example of worked.lambada!) expectRequestsMatch([requests[example.doc_index!]!], example.requests);
  });

  it.each(Object.entries(MULTIPLE_CHOICE))('%s: every choice, gold index', async (name, task) => {
    const examples = worked[name]!;
    const { questions } = await task.load(dataOptions(Math.max(...examples.map((e, i) => e.doc_index ?? i)) + 1));
    examples.forEach((example, i) => {
      const question = questions[example.doc_index ?? i]!;
      expectRequestsMatch(question.requests, example.requests);
      const gold = typeof example.gold === 'string' ? ['yes', 'no', 'maybe'].indexOf(example.gold) : example.gold;
      expect(question.gold).toBe(gold);
    });
  });
});

describe('loglikelihood encoding', () => {
  const encoder = { encode: (text: string) => Array.from(text, (c) => c.charCodeAt(0)) };

  it('encodes context and continuation separately and replaces an empty context by <|endoftext|>', () => {
    expect(encodeLoglikelihoodRequest(encoder, { context: '', continuation: ' a' }, 2048)).toEqual({
      contextIds: [END_OF_TEXT],
      continuationIds: [32, 97],
    });
    // GPT-2 merges " yes" into one token only when it is encoded on its own.
    expect(encodeLoglikelihoodRequest(tokenizer, { context: 'Answer:', continuation: ' yes' }, 2048).continuationIds).toEqual([3763]);
  });

  it('keeps the last maxLength tokens of context + continuation, cutting the context on the left', () => {
    const request = { context: 'abcdefgh', continuation: 'XYZ' };
    expect(encodeLoglikelihoodRequest(encoder, request, 11)).toEqual({
      contextIds: Array.from('abcdefgh', (c) => c.charCodeAt(0)),
      continuationIds: [88, 89, 90],
    });
    expect(encodeLoglikelihoodRequest(encoder, request, 5)).toEqual({ contextIds: [103, 104], continuationIds: [88, 89, 90] });
    expect(() => encodeLoglikelihoodRequest(encoder, request, 3)).toThrow(/no room for context/);
  });
});

describe('rolling windows', () => {
  it('reproduces the eval-tasks.md example (M = 3, t = a..h)', () => {
    const [a, b, c, d, e, f, g, h] = [1, 2, 3, 4, 5, 6, 7, 8];
    // Window i feeds context ++ continuation[:-1]: EOT a b | c d e | e f g, scoring a b c | d e f | g h.
    expect(rollingWindows([a, b, c, d, e, f, g, h], 3)).toEqual([
      { contextIds: [END_OF_TEXT], continuationIds: [a, b, c] },
      { contextIds: [c], continuationIds: [d, e, f] },
      { contextIds: [e, f], continuationIds: [g, h] },
    ]);
  });

  it('scores every token exactly once with at most M fed tokens, including one-token windows', () => {
    for (const [n, m] of [
      [1, 4],
      [4, 4],
      [5, 4],
      [9, 4],
      [23, 7],
    ] as const) {
      const tokens = Array.from({ length: n }, (_, i) => i + 100);
      const windows = rollingWindows(tokens, m);
      expect(windows.flatMap((w) => w.continuationIds)).toEqual(tokens);
      for (const w of windows) {
        expect(w.contextIds.length + w.continuationIds.length - 1).toBeLessThanOrEqual(m);
        if (w !== windows[0]) expect(w.contextIds.length + w.continuationIds.length - 1).toBe(m);
      }
    }
    expect(rollingWindows([], 4)).toEqual([]);
  });
});

describe('token-level record packing (create_tfrecords.py)', () => {
  const run = (start: number, length: number) => Array.from({ length }, (_, i) => start + i);

  it('cuts documents into records, carries tails of >= 100 tokens and drops shorter ones', () => {
    const records = packTokenRecords(
      [
        run(0, 250), // 2 records of 100 + tail of 50: dropped
        run(1000, 130), // 1 record + tail 30: dropped
        run(2000, 160), // 1 record + tail 60: dropped
        run(3000, 220), // 2 records + tail 20: dropped
      ],
      100,
    );
    expect(records).toEqual([run(0, 100), run(100, 100), run(1000, 100), run(2000, 100), run(3000, 100), run(3100, 100)]);
  });

  it('emits a filled carry-over buffer before the current document’s own records', () => {
    const length = 150;
    const records = packTokenRecords([run(0, 120), run(1000, 120), run(2000, 310)], length);
    // Tails 120 + 120 fill the buffer (150) at document 2; its remainder 90 plus document 3's tail 10 never fill it.
    expect(records).toEqual([
      [...run(0, 120), ...run(1000, 30)],
      run(2000, 150),
      run(2150, 150),
    ]);
  });

  it('scores all but the first token of a record, each from the token before it', () => {
    expect(recordRequest([5, 6, 7, 8])).toEqual({ contextIds: [5], continuationIds: [6, 7, 8] });
  });
});
