import {
  expectObject,
  invalidRecord,
  parseTopLevelJsonEntries,
  readJsonLines,
  readTextFile,
  type RecordLocation,
} from '../data.js';
import type { MultipleChoiceQuestion } from './task.js';

type ToQuestion = (record: Record<string, unknown>, at: RecordLocation) => MultipleChoiceQuestion;

/** The usual multiple-choice question: one shared context, each choice scored as `" " + choice`. */
export function sharedContextQuestion(
  context: string,
  choices: readonly string[],
  gold: number,
): MultipleChoiceQuestion {
  return { requests: choices.map((choice) => ({ context, continuation: ` ${choice}` })), gold };
}

/** Questions from the first `limit` records of a JSON Lines file; reading stops there. */
export async function readJsonLinesQuestions(
  file: string,
  contents: string,
  limit: number | undefined,
  toQuestion: ToQuestion,
): Promise<MultipleChoiceQuestion[]> {
  const questions: MultipleChoiceQuestion[] = [];
  for await (const { record, at } of readJsonLines(file, contents)) {
    if (questions.length === limit) break;
    questions.push(toQuestion(record, at));
  }
  return questions;
}

/**
 * Questions from the first `limit` members of a whole-file JSON array (`container` '[') or object ('{'), in the
 * order they are written.
 */
export async function readJsonFileQuestions(
  file: string,
  contents: string,
  container: '[' | '{',
  limit: number | undefined,
  toQuestion: ToQuestion,
): Promise<MultipleChoiceQuestion[]> {
  const text = await readTextFile(file, contents);
  if (!text.trimStart().startsWith(container)) invalidRecord({ file, line: 1 }, `expected ${contents}`);
  const entries = parseTopLevelJsonEntries(text, file, contents);
  return entries.slice(0, limit ?? entries.length).map(({ value, line }) => {
    const at = { file, line };
    return toQuestion(expectObject(value, at, contents), at);
  });
}
