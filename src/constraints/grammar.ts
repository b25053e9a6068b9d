/**
 * A grammar over UTF-8 bytes: rules written as expressions (byte and character classes, sequences,
 * alternatives, bounded repetition, calls of other rules), each rule compiled to a DFA over bytes whose
 * edges may also call a rule. Calls are what make recursion ($ref) possible: the matcher keeps a stack
 * of return states (a recursive transition network), while everything between calls is a plain DFA, so
 * most steps are table lookups.
 */
import { InputError } from '../model/index.js';

/** A constraint that cannot be compiled (an unsupported keyword, a bad regex); an InputError, so the server answers 400. */
export class ConstraintError extends InputError {
  constructor(message: string) {
    super(message);
    this.name = 'ConstraintError';
  }
}

export type Range = readonly [number, number];

export type Expr =
  | { kind: 'bytes'; ranges: readonly Range[] }
  /** One Unicode scalar value in the ranges, as its UTF-8 bytes. */
  | { kind: 'chars'; ranges: readonly Range[] }
  | { kind: 'seq'; items: readonly Expr[] }
  | { kind: 'alt'; items: readonly Expr[] }
  | { kind: 'repeat'; item: Expr; min: number; max: number }
  | { kind: 'call'; rule: number }
  /** A finite automaton over code points (a compiled regular expression). */
  | { kind: 'automaton'; automaton: CharAutomaton };

export interface CharAutomaton {
  stateCount: number;
  initial: number;
  finals: readonly number[];
  edges: readonly { from: number; to: number; ranges: readonly Range[] }[];
}

export const empty: Expr = { kind: 'seq', items: [] };
export const seq = (...items: Expr[]): Expr => (items.length === 1 ? items[0]! : { kind: 'seq', items });
export const alt = (...items: Expr[]): Expr => (items.length === 1 ? items[0]! : { kind: 'alt', items });
export const repeat = (item: Expr, min: number, max: number): Expr => ({ kind: 'repeat', item, min, max });
export const optional = (item: Expr): Expr => repeat(item, 0, 1);
export const chars = (...ranges: Range[]): Expr => ({ kind: 'chars', ranges });
export const call = (rule: number): Expr => ({ kind: 'call', rule });

const encoder = new TextEncoder();
export function literal(text: string): Expr {
  return seq(...Array.from(encoder.encode(text), (byte): Expr => ({ kind: 'bytes', ranges: [[byte, byte]] })));
}

/** Repetitions past this are refused: each one is a copy of its item in the automaton. */
export const MAX_REPEAT = 4096;

/** A grammar's rules; rule 0 is the start. Rules are added before their expressions so they can call each other. */
export class Grammar {
  readonly rules: (Expr | null)[] = [];

  addRule(): number {
    this.rules.push(null);
    return this.rules.length - 1;
  }

  define(rule: number, expr: Expr): void {
    this.rules[rule] = expr;
  }
}

/** A DFA state: its byte transitions (-1: none), the rules it may call with the state after each call, and whether its rule may end here. */
export interface CompiledGrammar {
  /** byteNext[state * 256 + byte]. */
  byteNext: Int32Array;
  calls: (readonly (readonly [rule: number, next: number])[])[];
  accepting: Uint8Array;
  hasBytes: Uint8Array;
  ruleStart: Int32Array;
  /** Fewest bytes from a state to the end of its rule (calls counted at their rule's shortest length). */
  distance: Int32Array;
}

/** Thompson construction toward a given end node, so shared suffixes (optional properties) are built once. */
class NfaBuilder {
  readonly byteEdges: [number, number, number][][] = [];
  readonly epsilon: number[][] = [];
  readonly calls: [number, number][][] = [];
  private readonly built = new Map<Expr, Map<number, number>>();
  private readonly suffixNodes = new Map<string, number>();

  node(): number {
    this.byteEdges.push([]);
    this.epsilon.push([]);
    this.calls.push([]);
    return this.epsilon.length - 1;
  }

  /** Builds `expr` so that it ends in `end`, and returns its start node. */
  build(expr: Expr, end: number): number {
    let byEnd = this.built.get(expr);
    const known = byEnd?.get(end);
    if (known !== undefined) return known;
    const start = this.construct(expr, end);
    if (!byEnd) this.built.set(expr, (byEnd = new Map()));
    byEnd.set(end, start);
    return start;
  }

  private construct(expr: Expr, end: number): number {
    switch (expr.kind) {
      case 'bytes': {
        const start = this.node();
        for (const [lo, hi] of expr.ranges) this.byteEdges[start]!.push([lo, hi, end]);
        return start;
      }
      case 'chars':
        return this.charsTo(expr.ranges, end);
      case 'seq':
        return expr.items.reduceRight((next, item) => this.build(item, next), end);
      case 'alt': {
        const start = this.node();
        for (const item of expr.items) this.epsilon[start]!.push(this.build(item, end));
        return start;
      }
      case 'repeat':
        return this.repeatTo(expr.item, expr.min, expr.max, end);
      case 'call': {
        const start = this.node();
        this.calls[start]!.push([expr.rule, end]);
        return start;
      }
      case 'automaton':
        return this.automatonTo(expr.automaton, end);
    }
  }

  private repeatTo(item: Expr, min: number, max: number, end: number): number {
    if (max !== Infinity && (max > MAX_REPEAT || min > max)) {
      throw new ConstraintError(`a repetition of ${min} to ${max} is beyond the supported ${MAX_REPEAT}`);
    }
    if (min > MAX_REPEAT) throw new ConstraintError(`a repetition of at least ${min} is beyond the supported ${MAX_REPEAT}`);
    let next = end;
    if (max === Infinity) {
      const loop = this.node();
      this.epsilon[loop]!.push(this.build(item, loop), end);
      next = loop;
    } else {
      for (let i = min; i < max; i++) {
        const optionalStart = this.node();
        this.epsilon[optionalStart]!.push(this.build(item, next), end);
        next = optionalStart;
      }
    }
    for (let i = 0; i < min; i++) next = this.build(item, next);
    return next;
  }

  /** Sequences share their trailing byte ranges (a node per suffix and end), which keeps the DFA to a few states per character. */
  private charsTo(ranges: readonly Range[], end: number): number {
    const start = this.node();
    for (const [lo, hi] of ranges) {
      for (const sequence of utf8Sequences(lo, hi)) {
        let to = end;
        for (let i = sequence.length - 1; i >= 1; i--) {
          const key = `${end}:${sequence.slice(i).join(';')}`;
          let node = this.suffixNodes.get(key);
          if (node === undefined) {
            this.suffixNodes.set(key, (node = this.node()));
            this.byteEdges[node]!.push([sequence[i]![0], sequence[i]![1], to]);
          }
          to = node;
        }
        this.byteEdges[start]!.push([sequence[0]![0], sequence[0]![1], to]);
      }
    }
    return start;
  }

  private automatonTo(automaton: CharAutomaton, end: number): number {
    const nodes = Array.from({ length: automaton.stateCount }, () => this.node());
    for (const final of automaton.finals) this.epsilon[nodes[final]!]!.push(end);
    for (const { from, to, ranges } of automaton.edges) {
      this.epsilon[nodes[from]!]!.push(this.charsTo(ranges, nodes[to]!));
    }
    return nodes[automaton.initial]!;
  }
}

/** Splits code points lo..hi (surrogates excluded) into sequences of UTF-8 byte ranges (as Rust's regex-syntax does). */
export function utf8Sequences(lo: number, hi: number): Range[][] {
  const out: Range[][] = [];
  const pending: Range[] = [[lo, hi]];
  while (pending.length > 0) {
    let [a, b] = pending.pop()!;
    if (a > b) continue;
    if (a <= 0xdfff && b >= 0xd800) {
      pending.push([0xe000, b], [a, 0xd7ff]);
      continue;
    }
    const split = [0x7f, 0x7ff, 0xffff].find((max) => a <= max && b > max);
    if (split !== undefined) {
      pending.push([split + 1, b], [a, split]);
      continue;
    }
    const length = a <= 0x7f ? 1 : a <= 0x7ff ? 2 : a <= 0xffff ? 3 : 4;
    let divided = false;
    for (let i = 1; i < length && !divided; i++) {
      const mask = (1 << (6 * i)) - 1;
      if ((a & ~mask) === (b & ~mask)) continue;
      if ((a & mask) !== 0) {
        pending.push([(a | mask) + 1, b], [a, a | mask]);
        divided = true;
      } else if ((b & mask) !== mask) {
        pending.push([b & ~mask, b], [a, (b & ~mask) - 1]);
        divided = true;
      }
    }
    if (divided) continue;
    const first = encoder.encode(String.fromCodePoint(a));
    const last = encoder.encode(String.fromCodePoint(b));
    out.push(Array.from(first, (byte, i): Range => [byte, last[i]!]));
  }
  return out;
}

/** Subset construction of every rule's NFA into one table of DFA states, dead states removed. */
export function compileGrammar(grammar: Grammar, maxStates = 200_000): CompiledGrammar {
  const nfa = new NfaBuilder();
  const ends: number[] = [];
  const starts = grammar.rules.map((expr, rule) => {
    if (expr === null) throw new Error(`grammar rule ${rule} was never defined`);
    const end = nfa.node();
    ends.push(end);
    return nfa.build(expr, end);
  });
  const endSet = new Set(ends);
  const states = new Map<string, number>();
  const members: number[][] = [];
  const closure = (seeds: Iterable<number>): number[] => {
    const seen = new Set<number>();
    const todo = [...seeds];
    while (todo.length > 0) {
      const node = todo.pop()!;
      if (seen.has(node)) continue;
      seen.add(node);
      todo.push(...nfa.epsilon[node]!);
    }
    return [...seen].sort((x, y) => x - y);
  };
  const intern = (set: number[]): number => {
    const key = set.join(',');
    let id = states.get(key);
    if (id === undefined) {
      id = members.length;
      if (id >= maxStates) throw new ConstraintError(`the constraint needs more than ${maxStates} automaton states; simplify it`);
      states.set(key, id);
      members.push(set);
    }
    return id;
  };
  const ruleStart = Int32Array.from(starts, (start) => intern(closure([start])));
  const byteRows: Int32Array[] = [];
  const calls: [number, number][][] = [];
  const accepting: number[] = [];
  for (let state = 0; state < members.length; state++) {
    const set = members[state]!;
    accepting.push(set.some((node) => endSet.has(node)) ? 1 : 0);
    byteRows.push(byteTransitions(set, nfa, (targets) => intern(closure(targets))));
    const byRule = new Map<number, number[]>();
    for (const node of set) for (const [rule, to] of nfa.calls[node]!) byRule.set(rule, [...(byRule.get(rule) ?? []), to]);
    calls.push([...byRule].map(([rule, targets]) => [rule, intern(closure(targets))]));
  }
  return pruneDead(byteRows, calls, Uint8Array.from(accepting), ruleStart);
}

function byteTransitions(set: readonly number[], nfa: NfaBuilder, target: (nodes: number[]) => number): Int32Array {
  const row = new Int32Array(256).fill(-1);
  const edges = set.flatMap((node) => nfa.byteEdges[node]!);
  if (edges.length === 0) return row;
  const cuts = new Set<number>([0, 256]);
  for (const [lo, hi] of edges) cuts.add(lo).add(hi + 1);
  const bounds = [...cuts].sort((x, y) => x - y);
  for (let i = 0; i + 1 < bounds.length; i++) {
    const lo = bounds[i]!;
    const targets = edges.filter(([a, b]) => a <= lo && lo <= b).map(([, , to]) => to);
    if (targets.length === 0) continue;
    row.fill(target(targets), lo, bounds[i + 1]);
  }
  return row;
}

/** Drops transitions into states from which no end can be reached, so the matcher never walks into a dead end. */
function pruneDead(byteRows: Int32Array[], calls: [number, number][][], accepting: Uint8Array, ruleStart: Int32Array): CompiledGrammar {
  const count = byteRows.length;
  const live = liveStates(byteRows, calls, accepting, ruleStart);
  const ruleLive = (rule: number) => live[ruleStart[rule]!] === 1;
  const byteNext = new Int32Array(count * 256);
  const hasBytes = new Uint8Array(count);
  byteRows.forEach((row, state) => {
    for (let byte = 0; byte < 256; byte++) {
      const next = row[byte]! >= 0 && live[row[byte]!] ? row[byte]! : -1;
      byteNext[state * 256 + byte] = next;
      if (next >= 0) hasBytes[state] = 1;
    }
  });
  const liveCalls = calls.map((list) => list.filter(([rule, next]) => ruleLive(rule) && live[next] === 1));
  if (!live[ruleStart[0]!]) throw new ConstraintError('the constraint matches no output at all');
  const distance = distancesToEnd(byteNext, liveCalls, accepting, ruleStart);
  return { byteNext, calls: liveCalls, accepting, hasBytes, ruleStart, distance };
}

/**
 * States from which an end can be reached, found backwards from the accepting ones: a state is live when a byte
 * leads to a live state, or a call of a live rule returns to one.
 */
function liveStates(byteRows: Int32Array[], calls: [number, number][][], accepting: Uint8Array, ruleStart: Int32Array): Uint8Array {
  const count = byteRows.length;
  const bytePredecessors: number[][] = Array.from({ length: count }, () => []);
  byteRows.forEach((row, state) => {
    for (const next of new Set(row)) if (next >= 0) bytePredecessors[next]!.push(state);
  });
  const callers: [state: number, rule: number][][] = Array.from({ length: count }, () => []);
  const callsOfRule = new Map<number, [state: number, next: number][]>();
  calls.forEach((list, state) => {
    for (const [rule, next] of list) {
      callers[next]!.push([state, rule]);
      callsOfRule.set(rule, [...(callsOfRule.get(rule) ?? []), [state, next]]);
    }
  });
  const rulesStartingAt = new Map<number, number[]>();
  ruleStart.forEach((start, rule) => rulesStartingAt.set(start, [...(rulesStartingAt.get(start) ?? []), rule]));
  const live = new Uint8Array(count);
  const todo: number[] = [];
  const mark = (state: number) => {
    if (live[state]) return;
    live[state] = 1;
    todo.push(state);
  };
  accepting.forEach((isAccepting, state) => isAccepting && mark(state));
  while (todo.length > 0) {
    const state = todo.pop()!;
    bytePredecessors[state]!.forEach(mark);
    for (const [caller, rule] of callers[state]!) if (live[ruleStart[rule]!]) mark(caller);
    for (const rule of rulesStartingAt.get(state) ?? []) {
      for (const [caller, next] of callsOfRule.get(rule) ?? []) if (live[next]) mark(caller);
    }
  }
  return live;
}

/** Shortest completion of every state, by relaxing edges until nothing shortens (Bellman-Ford on the DFA with calls). */
function distancesToEnd(byteNext: Int32Array, calls: (readonly (readonly [number, number])[])[], accepting: Uint8Array, ruleStart: Int32Array): Int32Array {
  const count = accepting.length;
  const far = 0x3fffffff;
  const distance = new Int32Array(count).fill(far);
  for (let state = 0; state < count; state++) if (accepting[state]) distance[state] = 0;
  for (let changed = true; changed; ) {
    changed = false;
    for (let state = count - 1; state >= 0; state--) {
      let best = distance[state]!;
      for (let byte = 0; byte < 256; byte++) {
        const next = byteNext[state * 256 + byte]!;
        if (next >= 0 && distance[next]! + 1 < best) best = distance[next]! + 1;
      }
      for (const [rule, next] of calls[state]!) best = Math.min(best, distance[ruleStart[rule]!]! + distance[next]!);
      if (best < distance[state]!) [distance[state], changed] = [best, true];
    }
  }
  return distance;
}
