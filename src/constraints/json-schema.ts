/**
 * A JSON Schema (the subset structured outputs use: OpenAI's strict mode and more) as a grammar of the
 * JSON texts it accepts. Every keyword is either enforced or refused by name; annotations are ignored.
 *
 * Choices that keep outputs bounded and valid: properties are written in schema order, listed ones only
 * (a property not listed is never written, which every schema accepts unless additionalProperties is all
 * there is); whitespace between tokens is at most a few bytes; numbers have at most 15 digits before and
 * after the point and a two-digit exponent; `\u` escapes stay below U+0100, so a string's length in
 * characters is what JSON Schema counts. A `pattern` matches the whole string.
 */
import {
  alt,
  call,
  chars,
  ConstraintError,
  empty,
  Grammar,
  literal,
  MAX_REPEAT,
  optional,
  repeat,
  seq,
  type Expr,
  type Range,
} from './grammar.js';
import { intersect, regexNfa, toCharAutomaton } from './regex.js';

const ANNOTATIONS = new Set(['title', 'description', '$schema', '$id', '$comment', 'default', 'examples', 'deprecated', 'readOnly', 'writeOnly']);
const KEYWORDS = new Set([
  'type', 'properties', 'required', 'additionalProperties', 'enum', 'const', 'items', 'prefixItems', 'minItems',
  'maxItems', 'minLength', 'maxLength', 'minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum', 'anyOf',
  'oneOf', '$ref', '$defs', 'definitions', 'pattern', 'format',
]);
const TYPES = ['string', 'integer', 'number', 'boolean', 'null', 'object', 'array'] as const;
type JsonType = (typeof TYPES)[number];

/** Formats as patterns; dates keep to days every month has, so format validators that check the calendar agree. */
const DAY = '(?:(?:0[13578]|1[02])-(?:0[1-9]|[12]\\d|3[01])|(?:0[469]|11)-(?:0[1-9]|[12]\\d|30)|02-(?:0[1-9]|1\\d|2[0-8]))';
const DATE = `\\d{4}-${DAY}`;
const TIME = '(?:[01]\\d|2[0-3]):[0-5]\\d:[0-5]\\d(?:\\.\\d{1,6})?(?:Z|[+-](?:[01]\\d|2[0-3]):[0-5]\\d)';
const LABEL = '[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?';
const FORMATS: Record<string, string> = {
  date: DATE,
  time: TIME,
  'date-time': `${DATE}T${TIME}`,
  uuid: '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}',
  email: `[a-zA-Z0-9_+-]{1,32}(?:\\.[a-zA-Z0-9_+-]{1,32}){0,3}@(?:${LABEL}\\.){1,3}[a-zA-Z]{2,12}`,
};

/** Whitespace allowed between two JSON tokens, in bytes: enough for a space or a newline and an indent, never endless. */
export const MAX_WHITESPACE = 4;
const MAX_DIGITS = 15;
const ws = repeat({ kind: 'bytes', ranges: [[0x09, 0x0a], [0x20, 0x20]] }, 0, MAX_WHITESPACE);
/** Characters a JSON string holds unescaped: not a control character, a quote or a backslash. */
const RAW_STRING_CHARS: Range[] = [[0x20, 0x21], [0x23, 0x5b], [0x5d, 0x10ffff]];
const hex = chars([0x30, 0x39], [0x41, 0x46], [0x61, 0x66]);
const stringChar = alt(
  chars(...RAW_STRING_CHARS),
  seq(literal('\\'), alt(chars([0x22, 0x22], [0x2f, 0x2f], [0x5c, 0x5c], [0x62, 0x62], [0x66, 0x66], [0x6e, 0x6e], [0x72, 0x72], [0x74, 0x74]), seq(literal('u00'), hex, hex))),
);
const digit = chars([0x30, 0x39]);
const digits = (min: number, max: number) => repeat(digit, min, max);
const unsignedInteger = alt(literal('0'), seq(chars([0x31, 0x39]), digits(0, MAX_DIGITS - 1)));
const LARGEST = 10 ** MAX_DIGITS - 1;
const numberExpr = seq(
  optional(literal('-')),
  unsignedInteger,
  optional(seq(literal('.'), digits(1, MAX_DIGITS))),
  optional(seq(chars([0x45, 0x45], [0x65, 0x65]), optional(chars([0x2b, 0x2b], [0x2d, 0x2d])), digits(1, 2))),
);
const quoted = (content: Expr) => seq(literal('"'), content, literal('"'));

type Schema = Record<string, unknown>;

/** Compiles a schema into a grammar whose rule 0 is a JSON text the schema accepts. */
export function jsonSchemaGrammar(schema: unknown): Grammar {
  return new SchemaCompiler(schema).grammar;
}

class SchemaCompiler {
  readonly grammar = new Grammar();
  private readonly refRules = new Map<string, number>();
  private anyRule: number | null = null;

  constructor(private readonly root: unknown) {
    const start = this.grammar.addRule();
    this.grammar.define(start, this.value(root, '#'));
  }

  private value(schema: unknown, path: string): Expr {
    if (schema === true) return this.anyValue();
    if (schema === false) throw new ConstraintError(`the schema at ${path} is false: it accepts nothing`);
    if (schema === null || typeof schema !== 'object' || Array.isArray(schema)) {
      throw new ConstraintError(`the schema at ${path} must be an object or a boolean`);
    }
    const s = schema as Schema;
    for (const key of Object.keys(s)) {
      if (!KEYWORDS.has(key) && !ANNOTATIONS.has(key)) throw new ConstraintError(`unsupported JSON Schema keyword "${key}" at ${path}`);
    }
    const alone = (keyword: string) => {
      const others = Object.keys(s).filter((key) => key !== keyword && KEYWORDS.has(key) && key !== '$defs' && key !== 'definitions');
      if (others.length > 0) throw new ConstraintError(`"${keyword}" beside ${others.map((k) => `"${k}"`).join(', ')} at ${path} is not supported; nest them`);
    };
    if ('format' in s && !(typeof s.format === 'string' && s.format in FORMATS)) {
      throw new ConstraintError(`unsupported "format" ${JSON.stringify(s.format)} at ${path} (supported: ${Object.keys(FORMATS).join(', ')})`);
    }
    if ('$ref' in s) {
      alone('$ref');
      return call(this.refRule(s.$ref, path));
    }
    if ('const' in s) return literal(JSON.stringify(s.const));
    if ('enum' in s) {
      if (!Array.isArray(s.enum) || s.enum.length === 0) throw new ConstraintError(`"enum" at ${path} must be a non-empty array`);
      return alt(...s.enum.map((item) => literal(JSON.stringify(item))));
    }
    for (const keyword of ['anyOf', 'oneOf'] as const) {
      if (!(keyword in s)) continue;
      alone(keyword);
      const branches = s[keyword];
      if (!Array.isArray(branches) || branches.length === 0) throw new ConstraintError(`"${keyword}" at ${path} must be a non-empty array`);
      return alt(...branches.map((branch, i) => this.value(branch, `${path}/${keyword}/${i}`)));
    }
    const types = this.types(s, path);
    if (types === null) return this.anyValue();
    return alt(...types.map((type) => this.typed(type, s, path)));
  }

  private types(s: Schema, path: string): JsonType[] | null {
    const declared = s.type;
    if (declared === undefined) {
      if ('properties' in s || 'additionalProperties' in s || 'required' in s) return ['object'];
      if ('items' in s || 'prefixItems' in s || 'minItems' in s || 'maxItems' in s) return ['array'];
      if ('pattern' in s || 'format' in s || 'minLength' in s || 'maxLength' in s) return ['string'];
      if (['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum'].some((k) => k in s)) return ['number'];
      return null;
    }
    const list = Array.isArray(declared) ? declared : [declared];
    for (const type of list) {
      if (!TYPES.includes(type as JsonType)) throw new ConstraintError(`"type" at ${path} has unknown type ${JSON.stringify(type)}`);
    }
    if (list.length === 0) throw new ConstraintError(`"type" at ${path} is an empty list`);
    return list as JsonType[];
  }

  private typed(type: JsonType, s: Schema, path: string): Expr {
    switch (type) {
      case 'null':
        return literal('null');
      case 'boolean':
        return alt(literal('true'), literal('false'));
      case 'string':
        return this.string(s, path);
      case 'integer':
        return integerExpr(s, path);
      case 'number':
        for (const key of ['minimum', 'maximum', 'exclusiveMinimum', 'exclusiveMaximum']) {
          if (key in s) throw new ConstraintError(`"${key}" at ${path} is supported for integers only, not numbers`);
        }
        return numberExpr;
      case 'object':
        return this.object(s, path);
      case 'array':
        return this.array(s, path);
    }
  }

  private string(s: Schema, path: string): Expr {
    const minLength = count(s, 'minLength', path) ?? 0;
    const maxLength = count(s, 'maxLength', path) ?? Infinity;
    if (maxLength !== Infinity && maxLength > MAX_REPEAT) throw new ConstraintError(`"maxLength" at ${path} is above the supported ${MAX_REPEAT}`);
    if (minLength > maxLength) throw new ConstraintError(`"minLength" at ${path} is above "maxLength"`);
    const patterns: string[] = [];
    if ('format' in s) patterns.push(FORMATS[s.format as string]!);
    if ('pattern' in s) patterns.push(s.pattern as string);
    if (patterns.length === 0) return quoted(repeat(stringChar, minLength, maxLength));
    if (minLength > 0 || maxLength !== Infinity) patterns.push(`[^]{${minLength},${maxLength === Infinity ? '' : maxLength}}`);
    const nfa = patterns.map((pattern) => regexNfa(pattern, `"pattern" at ${path}`)).reduce((a, b) => intersect(a, b));
    return quoted({ kind: 'automaton', automaton: toCharAutomaton(nfa, RAW_STRING_CHARS) });
  }

  private object(s: Schema, path: string): Expr {
    const properties = (s.properties ?? {}) as Record<string, unknown>;
    if (typeof properties !== 'object' || properties === null || Array.isArray(properties)) throw new ConstraintError(`"properties" at ${path} must be an object`);
    const required = s.required ?? [];
    if (!Array.isArray(required) || required.some((name) => typeof name !== 'string')) throw new ConstraintError(`"required" at ${path} must be a list of names`);
    const names = [...Object.keys(properties), ...required.filter((name) => !(name in properties))];
    const additional = s.additionalProperties;
    const unlisted = required.find((name) => !(name in properties));
    if (additional === false && unlisted !== undefined) {
      throw new ConstraintError(`"required" at ${path} names "${unlisted}", which "properties" lacks and "additionalProperties": false forbids`);
    }
    if (names.length === 0 && additional !== false) {
      const member = seq(this.key(quoted(repeat(stringChar, 0, Infinity))), this.value(additional ?? true, `${path}/additionalProperties`));
      return seq(literal('{'), ws, optional(seq(member, repeat(seq(ws, literal(','), ws, member), 0, Infinity))), ws, literal('}'));
    }
    const members = names.map((name) => seq(this.key(literal(JSON.stringify(name))), this.value(properties[name] ?? true, `${path}/properties/${name}`)));
    const isRequired = names.map((name) => required.includes(name));
    // The members after property i, with or without a comma before the first of them; shared, so optional properties stay linear in size.
    const after: Expr[][] = [[empty, empty]];
    for (let i = names.length - 1; i >= 0; i--) {
      const [firstRest, laterRest] = after[0]!;
      const withMember = (comma: boolean) => seq(comma ? seq(ws, literal(','), ws) : empty, members[i]!, laterRest!);
      after.unshift([
        isRequired[i] ? withMember(false) : alt(withMember(false), firstRest!),
        isRequired[i] ? withMember(true) : alt(withMember(true), laterRest!),
      ]);
    }
    return seq(literal('{'), ws, after[0]![0]!, ws, literal('}'));
  }

  private key(name: Expr): Expr {
    return seq(name, ws, literal(':'), ws);
  }

  private array(s: Schema, path: string): Expr {
    const prefix = s.prefixItems ?? [];
    if (!Array.isArray(prefix)) throw new ConstraintError(`"prefixItems" at ${path} must be an array`);
    const minItems = count(s, 'minItems', path) ?? 0;
    let maxItems = count(s, 'maxItems', path) ?? Infinity;
    if (s.items === false) maxItems = Math.min(maxItems, prefix.length);
    if (minItems > maxItems) throw new ConstraintError(`"minItems" at ${path} is above what "maxItems" or "items" allow`);
    const prefixExprs = prefix.map((item, i) => this.value(item, `${path}/prefixItems/${i}`));
    const tail = s.items === false ? null : this.value(s.items ?? true, `${path}/items`);
    const comma = seq(ws, literal(','), ws);
    // Elements from position i on, each after a comma except the first of the array.
    const from = (i: number): Expr => {
      if (i >= maxItems) return empty;
      const separator = i === 0 ? empty : comma;
      if (i < prefixExprs.length) {
        const next = seq(separator, prefixExprs[i]!, from(i + 1));
        return i < minItems ? next : optional(next);
      }
      if (tail === null) return empty;
      const first = seq(separator, tail);
      const more = repeat(seq(comma, tail), Math.max(0, minItems - i - 1), maxItems - i - 1);
      const run = seq(first, more);
      return i < minItems ? run : optional(run);
    };
    return seq(literal('['), ws, from(0), ws, literal(']'));
  }

  private refRule(ref: unknown, path: string): number {
    if (typeof ref !== 'string' || !ref.startsWith('#')) throw new ConstraintError(`"$ref" at ${path} must be a local reference ("#", "#/$defs/..."), got ${JSON.stringify(ref)}`);
    let rule = this.refRules.get(ref);
    if (rule !== undefined) return rule;
    rule = this.grammar.addRule();
    this.refRules.set(ref, rule);
    this.grammar.define(rule, this.value(resolvePointer(this.root, ref, path), ref));
    return rule;
  }

  /** Any JSON value, as a rule of its own so objects and arrays can nest. */
  private anyValue(): Expr {
    if (this.anyRule === null) {
      this.anyRule = this.grammar.addRule();
      const value = call(this.anyRule);
      const list = (item: Expr) => optional(seq(item, repeat(seq(ws, literal(','), ws, item), 0, Infinity)));
      const member = seq(this.key(quoted(repeat(stringChar, 0, Infinity))), value);
      this.grammar.define(
        this.anyRule,
        alt(
          seq(literal('{'), ws, list(member), ws, literal('}')),
          seq(literal('['), ws, list(value), ws, literal(']')),
          quoted(repeat(stringChar, 0, Infinity)),
          numberExpr,
          literal('true'),
          literal('false'),
          literal('null'),
        ),
      );
    }
    return call(this.anyRule);
  }
}

function resolvePointer(root: unknown, ref: string, path: string): unknown {
  let target = root;
  const pointer = decodeURIComponent(ref.slice(1));
  for (const segment of pointer === '' ? [] : pointer.replace(/^\//, '').split('/')) {
    const key = segment.replace(/~1/g, '/').replace(/~0/g, '~');
    if (target === null || typeof target !== 'object' || !(key in target)) {
      throw new ConstraintError(`"$ref" ${JSON.stringify(ref)} at ${path} points at nothing in the schema`);
    }
    target = (target as Record<string, unknown>)[key];
  }
  return target;
}

function count(s: Schema, keyword: string, path: string): number | undefined {
  const value = s[keyword];
  if (value === undefined) return undefined;
  if (!Number.isInteger(value) || (value as number) < 0) throw new ConstraintError(`"${keyword}" at ${path} must be a non-negative integer`);
  return value as number;
}

function integerExpr(s: Schema, path: string): Expr {
  const bound = (keyword: string): number | undefined => {
    const value = s[keyword];
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isFinite(value)) throw new ConstraintError(`"${keyword}" at ${path} must be a number`);
    return value;
  };
  const lows = [bound('minimum'), bound('exclusiveMinimum')].map((v, i) => (v === undefined ? -LARGEST : i === 0 ? Math.ceil(v) : Math.floor(v) + 1));
  const highs = [bound('maximum'), bound('exclusiveMaximum')].map((v, i) => (v === undefined ? LARGEST : i === 0 ? Math.floor(v) : Math.ceil(v) - 1));
  const low = Math.max(-LARGEST, ...lows);
  const high = Math.min(LARGEST, ...highs);
  if (low > high) throw new ConstraintError(`no integer at ${path} lies within its minimum and maximum`);
  const parts: Expr[] = [];
  if (low < 0) parts.push(seq(literal('-'), naturalRange(Math.max(1, -high), -low)));
  if (high >= 0) parts.push(naturalRange(Math.max(0, low), high));
  return alt(...parts);
}

/** The decimal numerals of low..high (0 <= low <= high), without leading zeros. */
function naturalRange(low: number, high: number): Expr {
  const parts: Expr[] = [];
  for (let length = String(low).length; length <= String(high).length; length++) {
    const from = Math.max(low, length === 1 ? 0 : 10 ** (length - 1));
    const to = Math.min(high, 10 ** length - 1);
    if (from <= to) parts.push(sameLengthRange(String(from), String(to)));
  }
  return alt(...parts);
}

function sameLengthRange(low: string, high: string): Expr {
  if (low === high) return literal(low);
  const [a, b] = [low.charCodeAt(0), high.charCodeAt(0)];
  if (low.length === 1) return chars([a, b]);
  const [lowRest, highRest] = [low.slice(1), high.slice(1)];
  if (a === b) return seq(literal(low[0]!), sameLengthRange(lowRest, highRest));
  const rest = lowRest.length;
  if (/^0*$/.test(lowRest) && /^9*$/.test(highRest)) return seq(chars([a, b]), digits(rest, rest));
  const parts = [seq(chars([a, a]), sameLengthRange(lowRest, '9'.repeat(rest)))];
  if (a + 1 <= b - 1) parts.push(seq(chars([a + 1, b - 1]), digits(rest, rest)));
  parts.push(seq(chars([b, b]), sameLengthRange('0'.repeat(rest), highRest)));
  return alt(...parts);
}
