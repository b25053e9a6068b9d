import path from 'node:path';
import { findDataFile, readTextFile } from '../data.js';
import { PYTHON_WHITESPACE, pythonStrip } from '../python-text.js';
import type { PerplexityDocument, PerplexityTask } from './task.js';

const CONTENTS = 'the raw WikiText-2 test file (wiki.test.raw, articles starting with " = Title = " lines)';

/**
 * The harness's article split: a line that, after "= = =" → "===", "= =" → "==" and stripping, reads
 * "= ... =" is a top-level title and starts a new document; what was collected before it is emitted if it
 * has any non-whitespace (this drops the file's leading blank line). The rest is emitted at the end
 * unconditionally. Returns each document with the index of the line after its last one.
 */
export function splitWikitextDocuments(text: string): { text: string; endLine: number }[] {
  const lines = text.split('\n');
  const documents: { text: string; endLine: number }[] = [];
  let start = 0;
  lines.forEach((line, index) => {
    const heading = pythonStrip(line.replaceAll('= = =', '===').replaceAll('= =', '=='));
    if (heading.startsWith('= ') && heading.endsWith(' =')) {
      const collected = lines.slice(start, index).join('\n');
      if (pythonStrip(collected) !== '') documents.push({ text: collected, endLine: index });
      start = index;
    }
  });
  documents.push({ text: lines.slice(start).join('\n'), endLine: lines.length });
  return documents;
}

type DetokenizerStep = (text: string) => string;

function literal(from: string, to: string): DetokenizerStep {
  return (text) => text.replaceAll(from, to);
}

/** Python re.sub(r"<open>\s*([^<close>]*?)\s*<close>", r"<open>\1<close>"): no whitespace just inside the pair. */
function tightenPair(open: string, close: string): DetokenizerStep {
  const whitespace = `[${PYTHON_WHITESPACE}]*`;
  const pattern = new RegExp(`\\${open}${whitespace}([^\\${close}]*?)${whitespace}\\${close}`, 'g');
  return (text) => text.replace(pattern, (_match, inner: string) => open + inner + close);
}

// The harness's wikitext_detokenizer, in its order. Literal replacements go left to right, non-overlapping.
const DETOKENIZER_STEPS: DetokenizerStep[] = [
  literal("s '", "s'"),
  // Meant as a regex over digits, it only matches the literal text "/' <digit>/"; kept as written.
  (text) => text.replace(/\/' [0-9]\//g, "/'[0-9]/"),
  literal(' @-@ ', '-'),
  literal(' @,@ ', ','),
  literal(' @.@ ', '.'),
  literal(' : ', ': '),
  literal(' ; ', '; '),
  literal(' . ', '. '),
  literal(' ! ', '! '),
  literal(' ? ', '? '),
  literal(' , ', ', '),
  tightenPair('(', ')'),
  tightenPair('[', ']'),
  tightenPair('{', '}'),
  // Quotes pair up left to right (1st with 2nd, ...) and may span lines; apostrophes pair up the same way.
  tightenPair('"', '"'),
  tightenPair("'", "'"),
  literal('= = = =', '===='),
  literal('= = =', '==='),
  literal('= =', '=='),
  literal(' \u00b0 ', '\u00b0'),
  literal(' \n', '\n'),
  literal('\n ', '\n'),
  literal(' N ', ' 1 '),
  literal(" 's", "'s"),
];

/** The harness's WikiText detokenizer (24 steps), applied to a whole document. */
export function wikitextDetokenize(text: string): string {
  return DETOKENIZER_STEPS.reduce((current, step) => step(current), text);
}

export const wikitext: PerplexityTask = {
  kind: 'perplexity',
  version: 1,
  async load({ dataDir, limit }) {
    const file = await findDataFile(path.join(dataDir, 'wikitext'), ['wiki.test.raw'], CONTENTS);
    const raw = await readTextFile(file, CONTENTS);
    const split = splitWikitextDocuments(raw);
    const kept = split.slice(0, limit ?? split.length);
    const documents: PerplexityDocument[] = kept.map(({ text }) => ({ text, target: wikitextDetokenize(text) }));
    // GPT-Neo's token-level run read the whole file as one document, not detokenized; with a limit, the part of
    // the file that holds the kept articles.
    const recordText = raw.split('\n').slice(0, kept[kept.length - 1]!.endLine).join('\n');
    return { documents, recordTexts: [recordText], files: [file] };
  },
};
