// The constraint engine on a byte vocabulary: regexes, choices, every supported JSON Schema keyword, masks,
// eos only when complete, characters split across tokens, and the errors for what is not supported.
import { describe, expect, it } from 'vitest';
import { ConstraintError, compileConstraint, type ConstraintSpec } from '../../src/constraints/index.js';
import { InputError } from '../../src/model/index.js';
import { accepts, allowed, byteVocabulary, EOS, start } from './helpers.js';

const schema = (json_schema: unknown): ConstraintSpec => ({ json_schema });
const refused = (spec: ConstraintSpec) => {
  try {
    compileConstraint(spec, byteVocabulary);
  } catch (error) {
    expect(error).toBeInstanceOf(ConstraintError);
    expect(error).toBeInstanceOf(InputError);
    return (error as Error).message;
  }
  throw new Error('compiled');
};

describe('regex and choice', () => {
  it('a regex matches whole outputs only', () => {
    const spec = { regex: '^[a-c]{2}\\d+(x|yz)$' };
    expect(accepts(spec, 'ab12x')).toBe(true);
    expect(accepts(spec, 'ca7yz')).toBe(true);
    expect(accepts(spec, 'ab12')).toBe(false);
    expect(accepts(spec, 'abc12x')).toBe(false);
  });

  it('unicode classes and characters split across tokens', () => {
    const spec = { regex: '[é]+!' };
    const state = start(spec);
    expect(allowed(state)).toContain(257 + 5); // the token holding é's first byte alone
    state.advance(257 + 5);
    expect(allowed(state)).toEqual([0xa9]);
    state.advance(0xa9);
    state.advance('!'.charCodeAt(0));
    expect(state.isComplete()).toBe(true);
    expect(allowed(state)).toEqual([EOS]);
  });

  it('near the token limit only tokens that leave time to finish are allowed, unless none does', () => {
    const budgeted = (tokensLeft: number) => {
      const state = start({ regex: '(ab|a{12})c' });
      const mask = state.allowedMask(tokensLeft);
      return ['a', 'ab'].map((text) => (text === 'a' ? 97 : 257 + 4)).filter((id) => (mask[id >>> 5]! >>> (id & 31)) & 1);
    };
    expect(budgeted(Infinity)).toEqual([97, 257 + 4]);
    expect(budgeted(3)).toEqual([257 + 4]); // "ab", then "c", then eos
    expect(budgeted(2)).toEqual([97, 257 + 4]); // nothing finishes in time: every valid token, cut at the limit
    expect(allowed(start({ regex: 'a{30}' }).clone()).length).toBe(1);
    const long = start({ regex: 'a{30}' });
    expect([...long.allowedMask(20)].some((word) => word !== 0)).toBe(true); // 30 bytes left, 20 tokens: cut, not stuck
  });

  it('refuses backreferences, lookaround and invalid patterns by name', () => {
    expect(refused({ regex: '(a)\\1' })).toMatch(/backreferences/);
    expect(refused({ regex: 'a(?=b)' })).toMatch(/lookahead/);
    expect(refused({ regex: '(?<!a)b' })).toMatch(/lookbehind/);
    expect(refused({ regex: 'a(' })).toMatch(/not a valid JavaScript regular expression/);
  });

  it('a choice is one of its strings', () => {
    const spec = { choice: ['yes', 'no', 'maybe'] };
    expect(['yes', 'no', 'maybe', 'ye', 'yes!'].map((t) => accepts(spec, t))).toEqual([true, true, true, false, false]);
    expect(refused({ choice: [] })).toMatch(/non-empty list/);
  });

  it('eos is allowed exactly when the output is complete', () => {
    const state = start({ regex: 'ab?' });
    expect(allowed(state)).toEqual(['a'.charCodeAt(0), 257 + 4]);
    state.advance('a'.charCodeAt(0));
    expect(allowed(state)).toEqual(['b'.charCodeAt(0), EOS]);
    const copy = state.clone();
    copy.advance('b'.charCodeAt(0));
    expect(allowed(copy)).toEqual([EOS]);
    expect(allowed(state)).toEqual(['b'.charCodeAt(0), EOS]);
  });
});

describe('JSON Schema', () => {
  it('objects: properties in schema order, required, optional, no additional properties', () => {
    const spec = schema({
      type: 'object',
      properties: { a: { type: 'integer' }, b: { type: 'string' }, c: { type: 'boolean' } },
      required: ['b'],
      additionalProperties: false,
    });
    for (const text of ['{"b":"x"}', '{"a":1,"b":""}', '{"a": -3, "b": "q", "c": true}', '{ "b":"x" , "c":false }']) {
      expect(accepts(spec, text), text).toBe(true);
    }
    for (const text of ['{}', '{"b":"x","a":1}', '{"b":"x","d":1}', '{"b":"x"}  ']) expect(accepts(spec, text), text).toBe(false);
  });

  it('whitespace between tokens is bounded', () => {
    expect(accepts(schema({ type: 'array' }), '[    1]')).toBe(true);
    expect(accepts(schema({ type: 'array' }), '[     1]')).toBe(false);
  });

  it('types, lists of types, enum, const, null and booleans', () => {
    const spec = schema({ type: ['integer', 'null'] });
    expect(['12', '-4', 'null', '0', '1.5', '01'].map((t) => accepts(spec, t))).toEqual([true, true, true, true, false, false]);
    expect(accepts(schema({ enum: ['a', 2, { x: [null] }] }), '{"x":[null]}')).toBe(true);
    expect(accepts(schema({ enum: ['a', 2] }), '3')).toBe(false);
    expect(accepts(schema({ const: 'fixed' }), '"fixed"')).toBe(true);
    expect(accepts(schema({ type: 'number' }), '-1.25e+10')).toBe(true);
    expect(accepts(schema({ type: 'boolean' }), 'true')).toBe(true);
  });

  it('integer minimum and maximum, inclusive and exclusive', () => {
    const spec = schema({ type: 'integer', minimum: -15, maximum: 230 });
    const inRange = (n: number) => accepts(spec, String(n));
    expect([-15, -9, 0, 7, 99, 100, 199, 230].every(inRange)).toBe(true);
    expect([-16, -100, 231, 300, 1000].some(inRange)).toBe(false);
    const exclusive = schema({ type: 'integer', exclusiveMinimum: 0, exclusiveMaximum: 10 });
    expect([0, 1, 9, 10].map((n) => accepts(exclusive, String(n)))).toEqual([false, true, true, false]);
  });

  it('strings: escapes, minLength/maxLength in characters, pattern, formats', () => {
    const bounded = schema({ type: 'string', minLength: 2, maxLength: 3 });
    expect(['"ab"', '"aé\\n"', '"a"', '"abcd"'].map((t) => accepts(bounded, t))).toEqual([true, true, false, false]);
    expect(accepts(schema({ type: 'string' }), '"say \\"hi\\" \\u00e9"')).toBe(true);
    expect(accepts(schema({ type: 'string' }), '"\n"')).toBe(false);
    const pattern = schema({ type: 'string', pattern: '^[A-Z][a-z]+$', maxLength: 4 });
    expect(['"Abc"', '"abc"', '"Abcde"'].map((t) => accepts(pattern, t))).toEqual([true, false, false]);
    expect(accepts(schema({ type: 'string', format: 'date' }), '"2024-02-28"')).toBe(true);
    expect(accepts(schema({ type: 'string', format: 'date' }), '"2024-02-30"')).toBe(false);
    expect(accepts(schema({ type: 'string', format: 'time' }), '"23:59:01Z"')).toBe(true);
    expect(accepts(schema({ type: 'string', format: 'date-time' }), '"2024-01-31T10:00:00.5+02:00"')).toBe(true);
    expect(accepts(schema({ type: 'string', format: 'uuid' }), '"123e4567-e89b-12d3-a456-426614174000"')).toBe(true);
    expect(accepts(schema({ type: 'string', format: 'email' }), '"ann.lee@mail.example.org"')).toBe(true);
  });

  it('arrays: items, prefixItems, minItems and maxItems', () => {
    const spec = schema({ type: 'array', prefixItems: [{ type: 'string' }, { type: 'integer' }], items: { type: 'boolean' }, minItems: 1, maxItems: 4 });
    for (const text of ['["a"]', '["a",1]', '["a", 1, true, false]']) expect(accepts(spec, text), text).toBe(true);
    for (const text of ['[]', '[1]', '["a",1,true,false,true]', '["a",1,2]']) expect(accepts(spec, text), text).toBe(false);
    expect(accepts(schema({ type: 'array', prefixItems: [{ type: 'null' }], items: false }), '[null,null]')).toBe(false);
  });

  it('anyOf, oneOf and recursive $ref / $defs', () => {
    const tree = schema({
      $defs: { node: { type: 'object', properties: { v: { type: 'integer' }, kids: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['v'] } },
      $ref: '#/$defs/node',
    });
    expect(accepts(tree, '{"v":1,"kids":[{"v":2},{"v":3,"kids":[{"v":4,"kids":[]}]}]}')).toBe(true);
    expect(accepts(tree, '{"v":1,"kids":[{"kids":[]}]}')).toBe(false);
    const list = schema({ anyOf: [{ type: 'null' }, { type: 'array', items: { $ref: '#' } }] });
    expect(accepts(list, '[[],[null,[[]]]]')).toBe(true);
    expect(accepts(schema({ oneOf: [{ type: 'string' }, { type: 'integer' }] }), '5')).toBe(true);
  });

  it('json_object is any object', () => {
    expect(accepts({ json_object: true }, '{"a":[1,{"b":null}],"c":"d"}')).toBe(true);
    expect(accepts({ json_object: true }, '[1]')).toBe(false);
  });

  it('refuses unsupported keywords, formats and invalid schemas with what and where', () => {
    expect(refused(schema({ type: 'object', properties: { a: { type: 'string', contentEncoding: 'base64' } } }))).toBe(
      'unsupported JSON Schema keyword "contentEncoding" at #/properties/a',
    );
    expect(refused(schema({ type: 'object', minProperties: 1 }))).toMatch(/"minProperties" at #/);
    expect(refused(schema({ type: 'string', format: 'hostname' }))).toMatch(/unsupported "format" "hostname"/);
    expect(refused(schema({ type: 'integer', format: 'int32' }))).toMatch(/unsupported "format" "int32"/);
    expect(refused(schema({ type: 'object', required: ['a'], additionalProperties: false }))).toMatch(/names "a", which "properties" lacks/);
    expect(refused(schema({ type: 'object', properties: 5 }))).toMatch(/"properties" at # must be an object/);
    expect(refused(schema({ type: 'strin' }))).toMatch(/unknown type "strin"/);
    expect(refused(schema({ $ref: 'https://example.com/s.json' }))).toMatch(/local reference/);
    expect(refused(schema({ $ref: '#/$defs/missing' }))).toMatch(/points at nothing/);
    expect(refused(schema({ type: 'number', minimum: 0.5 }))).toMatch(/integers only/);
    expect(refused(schema({ type: 'string', pattern: '(a)\\1' }))).toMatch(/backreferences/);
    expect(refused(schema({ type: 'string', minLength: 3, maxLength: 2 }))).toMatch(/minLength/);
  });

  it('compiles a 20-property schema with nesting and $ref once (its time is measured by npm run bench:structured)', () => {
    const properties: Record<string, unknown> = {};
    for (let i = 0; i < 20; i++) {
      properties[`field_${i}`] = [
        { type: 'string', maxLength: 40 },
        { type: 'integer', minimum: 0, maximum: 1000 },
        { $ref: '#/$defs/address' },
        { type: 'array', items: { $ref: '#/$defs/address' }, maxItems: 5 },
        { enum: ['red', 'green', 'blue'] },
      ][i % 5];
    }
    const big = {
      type: 'object',
      properties,
      required: Object.keys(properties).filter((_, i) => i % 2 === 0),
      additionalProperties: false,
      $defs: {
        address: {
          type: 'object',
          properties: { street: { type: 'string' }, zip: { type: 'string', pattern: '^[0-9]{5}$' }, when: { type: 'string', format: 'date-time' } },
          required: ['street'],
        },
      },
    };
    const first = compileConstraint(schema(big), byteVocabulary);
    expect(accepts(schema(big), JSON.stringify(example(big.properties)))).toBe(true);
    expect(compileConstraint(schema(structuredClone(big)), byteVocabulary)).toBe(first);
  });
});

/** An object the 20-property schema accepts. */
function example(properties: Record<string, unknown>): Record<string, unknown> {
  const address = { street: 'Main St', zip: '12345', when: '2024-05-01T12:00:00Z' };
  const values = ['text', 42, address, [address, { street: 'x' }], 'green'];
  return Object.fromEntries(Object.keys(properties).map((name, i) => [name, values[i % values.length]]));
}
