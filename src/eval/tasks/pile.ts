import path from 'node:path';
import { expectObject, findDataFile, invalidRecord, readJsonLines, stringField } from '../data.js';
import type { PerplexityDocument, PerplexityTask } from './task.js';

const CONTENTS = 'a JSON object {"text": string, "meta": {"pile_set_name": string}} per line (the Pile)';

export const pile: PerplexityTask = {
  kind: 'perplexity',
  version: 1,
  async load({ dataDir, limit, pileSplit, pileSetName }) {
    // The Pile's own files are zstd-compressed; plain and sample files (shared/data/eval/pile) also work.
    const file = await findDataFile(
      path.join(dataDir, 'pile'),
      [`${pileSplit}.jsonl.zst`, `${pileSplit}.jsonl`, `${pileSplit}_sample.jsonl`],
      CONTENTS,
    );
    const documents: PerplexityDocument[] = [];
    for await (const { record, at } of readJsonLines(file, CONTENTS)) {
      if (documents.length === limit) break;
      const text = stringField(record, 'text', at);
      if (pileSetName !== undefined) {
        const meta = expectObject(record.meta, at, `${CONTENTS}; field "meta" is missing`);
        if (stringField(meta, 'pile_set_name', at) !== pileSetName) continue;
      }
      documents.push({ text, target: text });
    }
    if (documents.length === 0 && pileSetName !== undefined) {
      invalidRecord({ file }, `no document has meta.pile_set_name ${JSON.stringify(pileSetName)}`);
    }
    return { documents, recordTexts: documents.map((d) => d.text), files: [file] };
  },
};
