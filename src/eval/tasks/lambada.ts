import path from 'node:path';
import { findDataFile, invalidRecord, readJsonLines, stringField, type RecordLocation } from '../data.js';
import type { LoglikelihoodRequest } from '../requests.js';
import type { LambadaTask } from './task.js';

const CONTENTS = 'a JSON object {"text": string} per line (OpenAI LAMBADA test set)';

/**
 * The target word is everything after the last U+0020 space (Python `text.rsplit(' ', 1)`): other
 * whitespace does not split, so a target may contain newlines or start with a quote mark.
 */
export function lambadaRequest(text: string, at: RecordLocation): LoglikelihoodRequest {
  const split = text.lastIndexOf(' ');
  if (split < 0) invalidRecord(at, 'field "text" must contain a space before its last word');
  return { context: text.slice(0, split), continuation: text.slice(split) };
}

export const lambada: LambadaTask = {
  kind: 'lambada',
  version: 0,
  async load({ dataDir, limit }) {
    const file = await findDataFile(path.join(dataDir, 'lambada'), ['lambada_test.jsonl'], CONTENTS);
    const requests: LoglikelihoodRequest[] = [];
    for await (const { record, at } of readJsonLines(file, CONTENTS)) {
      if (requests.length === limit) break;
      requests.push(lambadaRequest(stringField(record, 'text', at), at));
    }
    return { requests, files: [file] };
  },
};
