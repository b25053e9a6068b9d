import path from 'node:path';
import {
  findDataFile,
  integerLabelField,
  invalidRecord,
  stringArrayField,
  stringField,
  type RecordLocation,
} from '../data.js';
import { pythonCapitalize, pythonStrip } from '../python-text.js';
import { readJsonLinesQuestions, sharedContextQuestion } from './multiple-choice.js';
import type { MultipleChoiceQuestion, MultipleChoiceTask } from './task.js';

const CONTENTS =
  'a JSON object {"activity_label": string, "ctx_a": string, "ctx_b": string, "endings": [4 strings], "label": 0-3} per line (HellaSwag validation)';

/**
 * The harness's HellaSwag `preprocess`, steps in this order: strip, " [title]" → ". ", delete every
 * bracketed span (lazily, never across a newline), then one pass of "  " → " ". Stripping first means a
 * leading "[step]" leaves a leading space behind; that is the original behaviour.
 */
export function hellaswagPreprocess(text: string): string {
  return pythonStrip(text).replaceAll(' [title]', '. ').replace(/\[[^\n]*?\]/g, '').replaceAll('  ', ' ');
}

export function hellaswagQuestion(record: Record<string, unknown>, at: RecordLocation): MultipleChoiceQuestion {
  const endings = stringArrayField(record, 'endings', at);
  if (endings.length !== 4) invalidRecord(at, `field "endings" must hold 4 endings, got ${endings.length}`);
  const activity = stringField(record, 'activity_label', at);
  const ctxA = stringField(record, 'ctx_a', at);
  const ctxB = pythonCapitalize(stringField(record, 'ctx_b', at));
  const gold = integerLabelField(record, 'label', [0, 1, 2, 3], at);
  return sharedContextQuestion(hellaswagPreprocess(`${activity}: ${ctxA} ${ctxB}`), endings.map(hellaswagPreprocess), gold);
}

export const hellaswag: MultipleChoiceTask = {
  kind: 'multiple_choice',
  version: 0,
  async load({ dataDir, limit }) {
    // The full validation file is supplied by the user; the shared data folder only has its first 10 lines.
    const file = await findDataFile(
      path.join(dataDir, 'hellaswag'),
      ['hellaswag_val.jsonl', 'hellaswag_val_first10.jsonl'],
      CONTENTS,
    );
    return { questions: await readJsonLinesQuestions(file, CONTENTS, limit, hellaswagQuestion), files: [file] };
  },
};
