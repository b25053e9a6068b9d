import path from 'node:path';
import { findDataFile, invalidRecord, stringField, type RecordLocation } from '../data.js';
import { pythonStrip } from '../python-text.js';
import { readJsonLinesQuestions } from './multiple-choice.js';
import type { MultipleChoiceQuestion, MultipleChoiceTask } from './task.js';

const CONTENTS =
  'a JSON object {"sentence": string with one "_", "option1": string, "option2": string, "answer": "1" | "2"} per line (Winogrande)';

/**
 * Partial scoring (Trinh & Le 2018): each option fills the blank as the end of its own context, and the same
 * continuation — the text after the blank, stripped, with one leading space — is scored after each.
 */
export function winograndeQuestion(record: Record<string, unknown>, at: RecordLocation): MultipleChoiceQuestion {
  const sentence = stringField(record, 'sentence', at);
  const options = [stringField(record, 'option1', at), stringField(record, 'option2', at)];
  const answer = stringField(record, 'answer', at);
  if (answer !== '1' && answer !== '2') {
    invalidRecord(at, `field "answer" must be "1" or "2", got ${JSON.stringify(answer)}`);
  }
  const blank = sentence.indexOf('_');
  if (blank < 0) invalidRecord(at, 'field "sentence" must contain the blank "_"');
  const continuation = ` ${pythonStrip(sentence.slice(blank + 1))}`;
  return {
    requests: options.map((option) => ({ context: sentence.slice(0, blank) + option, continuation })),
    gold: answer === '1' ? 0 : 1,
  };
}

export const winogrande: MultipleChoiceTask = {
  kind: 'multiple_choice',
  version: 0,
  async load({ dataDir, limit }) {
    const file = await findDataFile(path.join(dataDir, 'winogrande'), ['dev.jsonl'], CONTENTS);
    return { questions: await readJsonLinesQuestions(file, CONTENTS, limit, winograndeQuestion), files: [file] };
  },
};
