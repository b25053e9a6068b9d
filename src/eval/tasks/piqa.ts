import path from 'node:path';
import { findDataFile, invalidRecord, readLines, stringField, type RecordLocation } from '../data.js';
import { readJsonLinesQuestions, sharedContextQuestion } from './multiple-choice.js';
import type { MultipleChoiceQuestion, MultipleChoiceTask } from './task.js';

const CONTENTS = 'a JSON object {"goal": string, "sol1": string, "sol2": string} per line (PIQA)';
const LABELS_CONTENTS = 'one label 0 or 1 per line, aligned with valid.jsonl';

/** Solutions are scored exactly as written: trailing and doubled spaces are kept. */
export function piqaQuestion(
  record: Record<string, unknown>,
  gold: number,
  at: RecordLocation,
): MultipleChoiceQuestion {
  const goal = stringField(record, 'goal', at);
  const solutions = [stringField(record, 'sol1', at), stringField(record, 'sol2', at)];
  return sharedContextQuestion(`Question: ${goal}\nAnswer:`, solutions, gold);
}

async function readLabels(file: string): Promise<number[]> {
  const labels: number[] = [];
  for await (const { text, line } of readLines(file)) {
    const label = text.trim();
    if (label !== '0' && label !== '1') {
      invalidRecord({ file, line }, `expected a label 0 or 1, got ${JSON.stringify(text)}`);
    }
    labels.push(Number(label));
  }
  return labels;
}

export const piqa: MultipleChoiceTask = {
  kind: 'multiple_choice',
  version: 0,
  async load({ dataDir, limit }) {
    const folder = path.join(dataDir, 'piqa');
    const file = await findDataFile(folder, ['valid.jsonl'], CONTENTS);
    const labelsFile = await findDataFile(folder, ['valid-labels.lst'], LABELS_CONTENTS);
    const labels = await readLabels(labelsFile);
    const questions = await readJsonLinesQuestions(file, CONTENTS, limit, (record, at) => {
      const gold = labels[at.line! - 1];
      if (gold === undefined) {
        invalidRecord(at, `no label for this line: ${labelsFile} has only ${labels.length} lines`);
      }
      return piqaQuestion(record, gold, at);
    });
    if (limit === undefined && questions.length !== labels.length) {
      const problem = `${labels.length} labels for ${questions.length} questions in ${file}`;
      invalidRecord({ file: labelsFile, line: questions.length + 1 }, problem);
    }
    return { questions, files: [file, labelsFile] };
  },
};
