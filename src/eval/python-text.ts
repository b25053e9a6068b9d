// The 2021 harness built its requests with Python string methods and `re`; these helpers reproduce the
// Python 3 semantics where JavaScript's built-ins differ (whitespace set, capitalize, `$`).

/**
 * The characters Python's str.isspace() accepts, which is also what `\s` matches in a `re` str pattern.
 * JavaScript's \s and trim() differ: they add U+FEFF and lack U+001C..U+001F and U+0085.
 */
export const PYTHON_WHITESPACE =
  '\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';

const LEADING_WHITESPACE = new RegExp(`^[${PYTHON_WHITESPACE}]+`);
const TRAILING_WHITESPACE = new RegExp(`[${PYTHON_WHITESPACE}]+$`);
const WHITESPACE_RUN = new RegExp(`[${PYTHON_WHITESPACE}]+`, 'g');

/** Python `s.strip()` with no argument. */
export function pythonStrip(text: string): string {
  return text.replace(LEADING_WHITESPACE, '').replace(TRAILING_WHITESPACE, '');
}

/** Python `len(re.split(r"\s+", text))`: pieces between whitespace runs, empty leading/trailing pieces included. */
export function countWhitespaceSeparatedPieces(text: string): number {
  let runs = 0;
  for (const _ of text.matchAll(WHITESPACE_RUN)) runs++;
  return runs + 1;
}

// Characters whose titlecase differs from their uppercase as a single character (Latin digraphs).
const DIGRAPH_TITLECASE: Record<string, string> = {
  '\u01c4': '\u01c5', '\u01c5': '\u01c5', '\u01c6': '\u01c5',
  '\u01c7': '\u01c8', '\u01c8': '\u01c8', '\u01c9': '\u01c8',
  '\u01ca': '\u01cb', '\u01cb': '\u01cb', '\u01cc': '\u01cb',
  '\u01f1': '\u01f2', '\u01f2': '\u01f2', '\u01f3': '\u01f2',
};

function titlecase(character: string): string {
  const digraph = DIGRAPH_TITLECASE[character];
  if (digraph) return digraph;
  // Characters that upper-case to several letters (ß → SS, ﬁ → FI) title-case to Upper+lower (Ss, Fi).
  const upper = character.toUpperCase();
  const [first = '', ...rest] = Array.from(upper);
  return first + rest.join('').toLowerCase();
}

/**
 * Python 3.8+ `str.capitalize()`: the first character title-cased, every other character lower-cased
 * ("then John WENT" → "Then john went"). Lower-casing sees the whole string, so a final sigma after the
 * first letter becomes ς as in Python.
 */
export function pythonCapitalize(text: string): string {
  if (text.length === 0) return text;
  const first = String.fromCodePoint(text.codePointAt(0)!);
  const lowerFirst = first.toLowerCase();
  const lowerRest = text.toLowerCase().slice(lowerFirst.length);
  return titlecase(first) + lowerRest;
}
