import { CheckpointError } from './errors.js';

/**
 * A restricted unpickler: a stack machine for the opcodes (protocols 2-5) that torch.save uses for a state_dict.
 * It never imports or runs anything: GLOBAL / STACK_GLOBAL go through `resolveGlobal`, which decides what a name
 * stands for (or refuses it), and REDUCE can only call the PickleCallable values that resolver hands out.
 *
 * Values: str -> string, int -> number, float -> number, bool, None -> null, list -> array,
 * tuple -> frozen array, dict -> Map.
 */
export interface UnpickleHooks {
  resolveGlobal(module: string, name: string): unknown;
  persistentLoad(persistentId: unknown): unknown;
  /** BUILD: sets `state` on `target` (e.g. an OrderedDict's attributes). */
  build(target: unknown, state: unknown): void;
}

/** A callable that a resolved global stands for. */
export class PickleCallable {
  constructor(
    readonly qualifiedName: string,
    readonly call: (args: readonly unknown[]) => unknown,
  ) {}
}

const textDecoder = new TextDecoder('utf-8', { fatal: true });

export function unpickle(bytes: Uint8Array, hooks: UnpickleHooks, file: string): unknown {
  return new Unpickler(bytes, hooks, file).run();
}

class Unpickler {
  private position = 0;
  private stack: unknown[] = [];
  /** Stack depth at each open MARK. */
  private readonly marks: number[] = [];
  private readonly memo = new Map<number, unknown>();
  private readonly view: DataView;

  constructor(
    private readonly bytes: Uint8Array,
    private readonly hooks: UnpickleHooks,
    private readonly file: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  run(): unknown {
    for (;;) {
      const opcodeAt = this.position;
      const opcode = this.readUint8();
      switch (opcode) {
        case 0x80: // PROTO
          this.readUint8();
          break;
        case 0x95: // FRAME: frames are only a buffering hint
          this.readUint64();
          break;
        case 0x2e: // STOP
          return this.pop();
        case 0x28: // MARK
          this.marks.push(this.stack.length);
          break;
        case 0x30: // POP
          this.pop();
          break;
        case 0x31: // POP_MARK
          this.popMark();
          break;
        case 0x32: // DUP
          this.push(this.peek());
          break;
        case 0x4e: // NONE
          this.push(null);
          break;
        case 0x88: // NEWTRUE
          this.push(true);
          break;
        case 0x89: // NEWFALSE
          this.push(false);
          break;
        case 0x4a: // BININT
          this.push(this.view.getInt32(this.advance(4), true));
          break;
        case 0x4b: // BININT1
          this.push(this.readUint8());
          break;
        case 0x4d: // BININT2
          this.push(this.view.getUint16(this.advance(2), true));
          break;
        case 0x8a: // LONG1
          this.push(this.readLong(this.readUint8()));
          break;
        case 0x8b: // LONG4
          this.push(this.readLong(this.view.getUint32(this.advance(4), true)));
          break;
        case 0x47: // BINFLOAT (big-endian, unlike everything else)
          this.push(this.view.getFloat64(this.advance(8), false));
          break;
        case 0x58: // BINUNICODE
          this.push(this.readString(this.view.getUint32(this.advance(4), true)));
          break;
        case 0x8c: // SHORT_BINUNICODE
          this.push(this.readString(this.readUint8()));
          break;
        case 0x8d: // BINUNICODE8
          this.push(this.readString(this.readUint64()));
          break;
        case 0x29: // EMPTY_TUPLE
          this.push(Object.freeze([]));
          break;
        case 0x85: // TUPLE1
          this.push(Object.freeze(this.popN(1)));
          break;
        case 0x86: // TUPLE2
          this.push(Object.freeze(this.popN(2)));
          break;
        case 0x87: // TUPLE3
          this.push(Object.freeze(this.popN(3)));
          break;
        case 0x74: // TUPLE
          this.push(Object.freeze(this.popMark()));
          break;
        case 0x5d: // EMPTY_LIST
          this.push([]);
          break;
        case 0x6c: // LIST
          this.push(this.popMark());
          break;
        case 0x61: // APPEND
          this.appendTo(this.peekBelow(1), [this.pop()]);
          break;
        case 0x65: {
          // APPENDS
          const items = this.popMark();
          this.appendTo(this.peek(), items);
          break;
        }
        case 0x7d: // EMPTY_DICT
          this.push(new Map());
          break;
        case 0x64: {
          // DICT
          const dict = new Map();
          this.setItems(dict, this.popMark());
          this.push(dict);
          break;
        }
        case 0x73: // SETITEM
          this.setItems(this.peekBelow(2), this.popN(2));
          break;
        case 0x75: {
          // SETITEMS
          const items = this.popMark();
          this.setItems(this.peek(), items);
          break;
        }
        case 0x71: // BINPUT
          this.memo.set(this.readUint8(), this.peek());
          break;
        case 0x72: // LONG_BINPUT
          this.memo.set(this.view.getUint32(this.advance(4), true), this.peek());
          break;
        case 0x94: // MEMOIZE
          this.memo.set(this.memo.size, this.peek());
          break;
        case 0x68: // BINGET
          this.push(this.memoGet(this.readUint8()));
          break;
        case 0x6a: // LONG_BINGET
          this.push(this.memoGet(this.view.getUint32(this.advance(4), true)));
          break;
        case 0x63: {
          // GLOBAL
          const module = this.readLine();
          const name = this.readLine();
          this.push(this.hooks.resolveGlobal(module, name));
          break;
        }
        case 0x93: {
          // STACK_GLOBAL
          const name = this.pop();
          const module = this.pop();
          if (typeof module !== 'string' || typeof name !== 'string') this.fail('STACK_GLOBAL needs two strings');
          this.push(this.hooks.resolveGlobal(module, name));
          break;
        }
        case 0x52: {
          // REDUCE
          const args = this.pop();
          const callable = this.pop();
          if (!(callable instanceof PickleCallable)) this.fail('REDUCE on something that is not an allowed callable');
          if (!Array.isArray(args)) this.fail(`REDUCE of ${callable.qualifiedName} without an argument tuple`);
          this.push(callable.call(args));
          break;
        }
        case 0x62: {
          // BUILD
          const state = this.pop();
          this.hooks.build(this.peek(), state);
          break;
        }
        case 0x51: // BINPERSID
          this.push(this.hooks.persistentLoad(this.pop()));
          break;
        default:
          this.fail(`unsupported pickle opcode 0x${opcode.toString(16).padStart(2, '0')} at byte ${opcodeAt}`);
      }
    }
  }

  private fail(message: string): never {
    throw new CheckpointError(`${this.file}: ${message}`);
  }

  /** Returns the current position and moves past `length` bytes, failing if the pickle is shorter. */
  private advance(length: number): number {
    const start = this.position;
    if (start + length > this.bytes.length) this.fail('pickle ends unexpectedly (no STOP)');
    this.position += length;
    return start;
  }

  private readUint8(): number {
    return this.bytes[this.advance(1)];
  }

  private readUint64(): number {
    const value = this.view.getBigUint64(this.advance(8), true);
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) this.fail(`length ${value} is too large`);
    return Number(value);
  }

  /** Little-endian two's complement integer of `length` bytes. */
  private readLong(length: number): number {
    const start = this.advance(length);
    let value = 0n;
    for (let i = length - 1; i >= 0; i--) value = (value << 8n) | BigInt(this.bytes[start + i]);
    if (length > 0 && this.bytes[start + length - 1] >= 0x80) value -= 1n << BigInt(8 * length);
    if (value > BigInt(Number.MAX_SAFE_INTEGER) || value < BigInt(Number.MIN_SAFE_INTEGER)) {
      this.fail(`integer ${value} is too large`);
    }
    return Number(value);
  }

  private readString(length: number): string {
    const start = this.advance(length);
    try {
      return textDecoder.decode(this.bytes.subarray(start, start + length));
    } catch {
      this.fail(`invalid UTF-8 string at byte ${start}`);
    }
  }

  private readLine(): string {
    const end = this.bytes.indexOf(0x0a, this.position);
    if (end < 0) this.fail('pickle ends inside a GLOBAL name');
    const line = this.readString(end - this.position);
    this.position = end + 1;
    return line;
  }

  private push(value: unknown): void {
    this.stack.push(value);
  }

  private pop(): unknown {
    if (this.stack.length <= (this.marks.at(-1) ?? 0)) this.fail('pickle stack underflow');
    return this.stack.pop();
  }

  private popN(count: number): unknown[] {
    if (this.stack.length - count < (this.marks.at(-1) ?? 0)) this.fail('pickle stack underflow');
    return this.stack.splice(this.stack.length - count, count);
  }

  private peek(): unknown {
    return this.peekBelow(0);
  }

  /** The value `depth` places below the top of the stack. */
  private peekBelow(depth: number): unknown {
    if (this.stack.length - depth <= (this.marks.at(-1) ?? 0)) this.fail('pickle stack underflow');
    return this.stack[this.stack.length - 1 - depth];
  }

  private popMark(): unknown[] {
    const mark = this.marks.pop();
    if (mark === undefined) this.fail('pickle uses a MARK that was never set');
    return this.stack.splice(mark);
  }

  private memoGet(index: number): unknown {
    if (!this.memo.has(index)) this.fail(`pickle refers to memo entry ${index} that was never stored`);
    return this.memo.get(index);
  }

  private appendTo(list: unknown, items: unknown[]): void {
    if (!Array.isArray(list) || Object.isFrozen(list)) this.fail('APPEND to something that is not a list');
    for (const item of items) list.push(item);
  }

  private setItems(dict: unknown, keysAndValues: unknown[]): void {
    if (!(dict instanceof Map)) this.fail('SETITEM on something that is not a dict');
    if (keysAndValues.length % 2 !== 0) this.fail('SETITEMS with an odd number of keys and values');
    for (let i = 0; i < keysAndValues.length; i += 2) dict.set(keysAndValues[i], keysAndValues[i + 1]);
  }
}
