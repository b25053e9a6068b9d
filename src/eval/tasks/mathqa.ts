import path from 'node:path';
import { findDataFile, invalidRecord, stringField, type RecordLocation } from '../data.js';
import { readJsonFileQuestions, sharedContextQuestion } from './multiple-choice.js';
import type { MultipleChoiceQuestion, MultipleChoiceTask } from './task.js';

const CONTENTS = 'a JSON array of {"Problem": string, "options": string, "correct": "a".."e"} (MathQA test set)';

const LETTERS = ['a', 'b', 'c', 'd', 'e'];

/**
 * Python `re.findall(r"[abcd] \) .*?, |e \) .*?$", options)` with Python's semantics spelled out: `.` is
 * anything but a newline and `$` also matches before a final newline. Each match loses its "x ) " prefix and
 * trailing spaces and commas. List-shaped options keep their quote junk (`8 : 5']`), as in the harness.
 */
export function mathqaChoices(options: string): string[] {
  return Array.from(options.matchAll(/[abcd] \) [^\n]*?, |e \) [^\n]*?(?=\n?$)/g), ([match]) =>
    match.slice(4).replace(/[ ,]+$/, ''),
  );
}

export function mathqaQuestion(record: Record<string, unknown>, at: RecordLocation): MultipleChoiceQuestion {
  const correct = stringField(record, 'correct', at);
  const gold = LETTERS.indexOf(correct);
  if (gold < 0) invalidRecord(at, `field "correct" must be one of a-e, got ${JSON.stringify(correct)}`);
  const problem = stringField(record, 'Problem', at);
  const choices = mathqaChoices(stringField(record, 'options', at));
  return sharedContextQuestion(`Question: ${problem}\nAnswer:`, choices, gold);
}

export const mathqa: MultipleChoiceTask = {
  kind: 'multiple_choice',
  version: 0,
  async load({ dataDir, limit }) {
    const file = await findDataFile(path.join(dataDir, 'mathqa'), ['test.json'], CONTENTS);
    return { questions: await readJsonFileQuestions(file, CONTENTS, '[', limit, mathqaQuestion), files: [file] };
  },
};
