import { describe, expect, test } from 'vitest';
import { CheckpointError } from '../../src/weights/index.js';
import { PickleCallable, unpickle, type UnpickleHooks } from '../../src/weights/pickle.js';

const refuseEverything: UnpickleHooks = {
  resolveGlobal: (module, name) => {
    throw new CheckpointError(`refused ${module}.${name}`);
  },
  persistentLoad: () => {
    throw new CheckpointError('no persistent ids');
  },
  build: () => {
    throw new CheckpointError('no BUILD');
  },
};

const run = (bytes: number[], hooks: UnpickleHooks = refuseEverything): unknown => unpickle(Uint8Array.from(bytes), hooks, 'test.pkl');

describe('restricted unpickler', () => {
  test('scalars: ints of every width, floats, bools, None', () => {
    // PROTO 2, MARK, BININT -2, BININT1 200, BININT2 60000, LONG1 +2^40, LONG1 -129, LONG1 0 bytes, BINFLOAT 1.5, NEWTRUE, NEWFALSE, NONE, TUPLE, STOP
    const bytes = [
      0x80, 2, 0x28,
      0x4a, 0xfe, 0xff, 0xff, 0xff,
      0x4b, 200,
      0x4d, 0x60, 0xea,
      0x8a, 6, 0, 0, 0, 0, 0, 1,
      0x8a, 2, 0x7f, 0xff,
      0x8a, 0,
      0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,
      0x88, 0x89, 0x4e, 0x74, 0x2e,
    ];
    expect(run(bytes)).toEqual([-2, 200, 60000, 2 ** 40, -129, 0, 1.5, true, false, null]);
  });

  test('LONG4 beyond 2^53 is refused rather than rounded', () => {
    expect(() => run([0x80, 2, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0x2e])).toThrow(/integer 72057594037927936 is too large/);
  });

  test('strings, lists, dicts, memo, DUP / POP / POP_MARK and FRAME', () => {
    const text = [...new TextEncoder().encode('héllo')];
    const bytes = [
      0x80, 4, 0x95, 0, 0, 0, 0, 0, 0, 0, 0, // FRAME (length ignored)
      0x7d, 0x94, // EMPTY_DICT, MEMOIZE -> memo 0
      0x28, // MARK
      0x8c, 1, 0x61, 0x5d, 0x94, 0x28, 0x4b, 1, 0x4b, 2, 0x65, 0x4b, 3, 0x61, // 'a': [1, 2] APPENDS, 3 APPEND
      0x8d, 1, 0, 0, 0, 0, 0, 0, 0, 0x62, 0x58, text.length, 0, 0, 0, ...text, // 'b': 'héllo' (BINUNICODE8 key)
      0x8c, 1, 0x63, 0x68, 1, // 'c': memo 1 (the same list)
      0x75, // SETITEMS
      0x4b, 9, 0x32, 0x30, 0x30, // 9, DUP, POP, POP
      0x28, 0x4e, 0x4e, 0x31, // MARK None None POP_MARK
      0x8c, 1, 0x64, 0x28, 0x8c, 1, 0x6b, 0x4b, 5, 0x64, 0x73, // SETITEM 'd': DICT {'k': 5}
      0x2e,
    ];
    const result = run(bytes) as Map<string, unknown>;
    expect(result).toBeInstanceOf(Map);
    expect(result.get('a')).toEqual([1, 2, 3]);
    expect(result.get('c')).toBe(result.get('a'));
    expect(result.get('b')).toBe('héllo');
    expect(result.get('d')).toEqual(new Map([['k', 5]]));
  });

  test('REDUCE calls only the callables the resolver hands out, with the argument tuple', () => {
    const calls: unknown[][] = [];
    const hooks: UnpickleHooks = {
      ...refuseEverything,
      resolveGlobal: (module, name) => new PickleCallable(`${module}.${name}`, (args) => (calls.push([...args]), 'built')),
    };
    const global = [...new TextEncoder().encode('m\nf\n')];
    expect(run([0x80, 2, 0x63, ...global, 0x4b, 1, 0x4b, 2, 0x86, 0x52, 0x2e], hooks)).toBe('built');
    expect(calls).toEqual([[1, 2]]);
    expect(() => run([0x80, 2, 0x4b, 1, 0x29, 0x52, 0x2e])).toThrow(/REDUCE on something that is not an allowed callable/);
  });

  test('structural errors are CheckpointErrors naming the file', () => {
    expect(() => run([0x80, 2, 0x74, 0x2e])).toThrow(/test\.pkl: pickle uses a MARK that was never set/);
    expect(() => run([0x80, 2, 0x29, 0x4b, 1, 0x61, 0x2e])).toThrow(/APPEND to something that is not a list/);
    expect(() => run([0x80, 2, 0x5d, 0x4b, 1, 0x4b, 2, 0x73, 0x2e])).toThrow(/SETITEM on something that is not a dict/);
    expect(() => run([0x80, 2, 0x58, 0xff, 0xff, 0, 0, 0x61])).toThrow(/pickle ends unexpectedly/);
    expect(() => run([0x80, 2, 0x8c, 1, 0xff, 0x2e])).toThrow(/invalid UTF-8/);
    expect(() => run([0x80, 2, 0x28, 0x2e])).toThrow(/pickle stack underflow/);
  });
});
