/**
 * JavaScript regular expressions as automata over code points, by refa (a maintained library of finite
 * automata built for JS RegExp syntax). A pattern constrains the whole text it applies to: `^` and `$` are
 * accepted and mean nothing more. Backreferences and lookaround cannot be a finite automaton and are refused.
 */
import { JS, NFA, type ReadonlyNFA } from 'refa';
import { ConstraintError, type CharAutomaton, type Range } from './grammar.js';

const REFUSED: Record<string, string> = {
  Backreference: 'backreferences',
  lookahead: 'lookahead assertions',
  lookbehind: 'lookbehind assertions',
  word: 'word-boundary assertions (\\b, \\B)',
};

/** The pattern as an NFA (refa's), refusing what no finite automaton can match. */
export function regexNfa(pattern: string, what = 'regex'): NFA {
  if (typeof pattern !== 'string') throw new ConstraintError(`${what} must be a string`);
  const parser = parse(pattern, what);
  refuseUnsupported(parser.ast.pattern, pattern, what);
  try {
    const { expression, maxCharacter } = parser.parse({ backreferences: 'throw', maxBackreferenceWords: 0, assertions: 'parse' });
    return NFA.fromRegex(expression, { maxCharacter }, { assertions: 'ignore' });
  } catch (error) {
    throw new ConstraintError(`${what} ${JSON.stringify(pattern)} cannot be compiled: ${(error as Error).message}`);
  }
}

function parse(pattern: string, what: string): JS.Parser {
  try {
    return JS.Parser.fromLiteral({ source: pattern, flags: 'u' });
  } catch {
    // Patterns written for non-Unicode mode (identity escapes such as \- outside a class) still parse without the flag.
    try {
      return JS.Parser.fromLiteral({ source: pattern, flags: '' });
    } catch (error) {
      throw new ConstraintError(`${what} ${JSON.stringify(pattern)} is not a valid JavaScript regular expression: ${(error as Error).message}`);
    }
  }
}

function refuseUnsupported(node: unknown, pattern: string, what: string): void {
  if (node === null || typeof node !== 'object') return;
  const element = node as { type?: string; kind?: string };
  const refused = REFUSED[element.type ?? ''] ?? (element.type === 'Assertion' ? REFUSED[element.kind ?? ''] : undefined);
  if (refused) throw new ConstraintError(`${what} ${JSON.stringify(pattern)} uses ${refused}, which constrained decoding does not support`);
  for (const [key, value] of Object.entries(node)) {
    if (key === 'parent' || key === 'resolved') continue;
    if (Array.isArray(value)) value.forEach((child) => refuseUnsupported(child, pattern, what));
    else if (value && typeof value === 'object' && 'type' in value) refuseUnsupported(value, pattern, what);
  }
}

/** Both patterns at once (a JSON string's pattern and its length limits). */
export function intersect(left: ReadonlyNFA, right: ReadonlyNFA): NFA {
  return NFA.fromIntersection(left, right);
}

/** The NFA as the grammar's code-point automaton, keeping only characters in `allowed` (e.g. those a JSON string writes unescaped). */
export function toCharAutomaton(nfa: ReadonlyNFA, allowed: readonly Range[] = [[0, 0x10ffff]]): CharAutomaton {
  const ids = new Map<unknown, number>();
  const id = (node: unknown) => {
    let value = ids.get(node);
    if (value === undefined) ids.set(node, (value = ids.size));
    return value;
  };
  id(nfa.initial);
  const edges: { from: number; to: number; ranges: Range[] }[] = [];
  for (const node of nfa.nodes()) {
    for (const [to, set] of node.out) {
      const ranges = intersectRanges(set.ranges.map((r): Range => [r.min, r.max]), allowed);
      if (ranges.length > 0) edges.push({ from: id(node), to: id(to), ranges });
    }
  }
  const finals = [...nfa.finals].map(id);
  return { stateCount: ids.size, initial: id(nfa.initial), finals, edges };
}

function intersectRanges(a: readonly Range[], b: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const [lo1, hi1] of a) {
    for (const [lo2, hi2] of b) {
      const lo = Math.max(lo1, lo2);
      const hi = Math.min(hi1, hi2);
      if (lo <= hi) out.push([lo, hi]);
    }
  }
  return out;
}
