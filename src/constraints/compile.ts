/**
 * What a caller asks for (a JSON schema, any JSON object, a regular expression, a list of choices) compiled
 * once per constraint and vocabulary: the grammar is cached by the constraint's JSON, its masks by the
 * vocabulary, so the server's thousandth request with a schema pays nothing to compile it.
 */
import { Constraint } from './constraint.js';
import { alt, compileGrammar, ConstraintError, Grammar, literal, type CompiledGrammar, type Expr } from './grammar.js';
import { jsonSchemaGrammar } from './json-schema.js';
import { regexNfa, toCharAutomaton } from './regex.js';
import type { TokenVocabulary } from './vocabulary.js';

/** One constraint on a generated output: exactly one of these fields. */
export type ConstraintSpec =
  | { json_schema: unknown }
  | { json_object: true }
  | { regex: string }
  | { choice: string[] };

const KINDS = ['json_schema', 'json_object', 'regex', 'choice'] as const;
const CACHE_SIZE = 64;
const grammars = new Map<string, CompiledGrammar>();
const constraints = new WeakMap<TokenVocabulary, Map<string, Constraint>>();

/** Checks the spec's shape and says which kind it is. */
export function constraintKind(spec: unknown): (typeof KINDS)[number] {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) throw new ConstraintError('constraint must be an object');
  const kinds = KINDS.filter((kind) => kind in spec);
  const extra = Object.keys(spec).filter((key) => !(KINDS as readonly string[]).includes(key));
  if (extra.length > 0) throw new ConstraintError(`constraint has unknown field "${extra[0]}" (expected one of ${KINDS.join(', ')})`);
  if (kinds.length !== 1) throw new ConstraintError(`constraint must have exactly one of ${KINDS.join(', ')}`);
  return kinds[0]!;
}

/**
 * The constraint for this vocabulary, compiled on first use and kept among the most recently used (a server
 * seeing ever new schemas keeps a bounded number). Throws ConstraintError naming what is wrong.
 */
export function compileConstraint(spec: ConstraintSpec, vocabulary: TokenVocabulary): Constraint {
  const key = JSON.stringify(spec);
  let byKey = constraints.get(vocabulary);
  if (!byKey) constraints.set(vocabulary, (byKey = new Map()));
  return recentlyUsed(byKey, key, () => new Constraint(recentlyUsed(grammars, key, () => compileGrammar(grammarOf(spec))), vocabulary, describe(spec)));
}

/** The cached value of `key`, made or refreshed as the most recently used; the least recently used goes past the cache's size. */
function recentlyUsed<T>(cache: Map<string, T>, key: string, make: () => T): T {
  let value = cache.get(key);
  if (value === undefined) {
    value = make();
    if (cache.size >= CACHE_SIZE) cache.delete(cache.keys().next().value!);
  }
  cache.delete(key);
  cache.set(key, value);
  return value;
}

export function grammarOf(spec: ConstraintSpec): Grammar {
  switch (constraintKind(spec)) {
    case 'json_schema':
      return jsonSchemaGrammar((spec as { json_schema: unknown }).json_schema);
    case 'json_object':
      return jsonSchemaGrammar({ type: 'object' });
    case 'regex':
      return single({ kind: 'automaton', automaton: toCharAutomaton(regexNfa((spec as { regex: string }).regex)) });
    case 'choice': {
      const choices = (spec as { choice: unknown }).choice;
      if (!Array.isArray(choices) || choices.length === 0 || choices.some((c) => typeof c !== 'string' || c.length === 0)) {
        throw new ConstraintError('choice must be a non-empty list of non-empty strings');
      }
      return single(alt(...choices.map((choice: string) => literal(choice))));
    }
  }
}

function single(expr: Expr): Grammar {
  const grammar = new Grammar();
  grammar.define(grammar.addRule(), expr);
  return grammar;
}

function describe(spec: ConstraintSpec): string {
  const kind = constraintKind(spec);
  return kind === 'json_object' ? 'a JSON object' : `a ${kind.replace('_', ' ')}`;
}
