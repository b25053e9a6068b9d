import path from 'node:path';
import { findDataFile, invalidRecord, stringArrayField, stringField, type RecordLocation } from '../data.js';
import { readJsonFileQuestions, sharedContextQuestion } from './multiple-choice.js';
import type { MultipleChoiceQuestion, MultipleChoiceTask } from './task.js';

const CONTENTS =
  'a JSON object {"<pmid>": {"QUESTION": string, "CONTEXTS": [strings], "final_decision": "yes" | "no" | "maybe"}, ...} (PubMedQA ori_pqal.json)';

const DECISIONS = ['yes', 'no', 'maybe'];

/** Abstract = the CONTEXTS paragraphs in order, one per line; section labels and the long answer are unused. */
export function pubmedqaQuestion(record: Record<string, unknown>, at: RecordLocation): MultipleChoiceQuestion {
  const abstract = stringArrayField(record, 'CONTEXTS', at).join('\n');
  const question = stringField(record, 'QUESTION', at);
  const decision = stringField(record, 'final_decision', at);
  const gold = DECISIONS.indexOf(decision);
  if (gold < 0) invalidRecord(at, `field "final_decision" must be yes, no or maybe, got ${JSON.stringify(decision)}`);
  return sharedContextQuestion(`Abstract: ${abstract}\nQuestion: ${question}\nAnswer:`, DECISIONS, gold);
}

export const pubmedqa: MultipleChoiceTask = {
  kind: 'multiple_choice',
  version: 0,
  async load({ dataDir, limit }) {
    const file = await findDataFile(path.join(dataDir, 'pubmedqa'), ['ori_pqal.json'], CONTENTS);
    // Documents in the file's key order, which Hugging Face's loader keeps.
    return { questions: await readJsonFileQuestions(file, CONTENTS, '{', limit, pubmedqaQuestion), files: [file] };
  },
};
