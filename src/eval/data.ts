import { createReadStream } from 'node:fs';
import { access, readFile } from 'node:fs/promises';
import path from 'node:path';
import { Decompress } from 'fzstd';

/** A task's data file is missing or does not have the expected format. */
export class EvalDataError extends Error {
  constructor(
    readonly file: string,
    /** 1-based line of the offending record, when the format is line oriented or the position is known. */
    readonly line: number | undefined,
    problem: string,
  ) {
    super(`${file}${line === undefined ? '' : `:${line}`}: ${problem}`);
    this.name = 'EvalDataError';
  }
}

/** Where a record came from, for error messages. */
export interface RecordLocation {
  file: string;
  line?: number;
}

function fail(at: RecordLocation, problem: string): never {
  throw new EvalDataError(at.file, at.line, problem);
}

/** The first of `names` present in `folder`; an EvalDataError listing all of them when none is. */
export async function findDataFile(folder: string, names: readonly string[], contents: string): Promise<string> {
  for (const name of names) {
    const file = path.join(folder, name);
    if (await access(file).then(() => true, () => false)) return file;
  }
  const tried = names.length > 1 ? ` (looked for ${names.join(', ')})` : '';
  return fail({ file: path.join(folder, names[0]!) }, `file not found; expected ${contents}${tried}`);
}

export async function readTextFile(file: string, contents: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') fail({ file }, `file not found; expected ${contents}`);
    throw error;
  }
}

/**
 * 1-based line numbers of character offsets in `text`. Lookups usually move forward, so counting resumes
 * from the previous one instead of rescanning a multi-megabyte file for every record.
 */
function lineCounter(text: string): (offset: number) => number {
  let counted = 0;
  let line = 1;
  return (offset) => {
    if (offset < counted) {
      counted = 0;
      line = 1;
    }
    for (; counted < offset && counted < text.length; counted++) if (text.charCodeAt(counted) === 10) line++;
    return line;
  };
}

/** The character offset V8 names in a JSON.parse error ("... at position 123"), if any. */
function jsonErrorOffset(error: unknown): number | undefined {
  const match = /position (\d+)/.exec((error as Error).message);
  return match ? Number(match[1]) : undefined;
}

/** One member of a top-level JSON object or array, with the line it starts on. */
export interface JsonEntry {
  /** The member's key; undefined for array items. */
  key: string | undefined;
  value: unknown;
  line: number;
}

/**
 * The members of a top-level JSON object (or the items of an array) in the order they are written, each with
 * its line for error messages. JSON.parse cannot keep that order for objects: JavaScript objects list
 * integer-like keys (PubMed ids) in numeric order, not file order.
 */
export function parseTopLevelJsonEntries(text: string, file: string, contents: string): JsonEntry[] {
  const lineAt = lineCounter(text);
  let i = 0;
  const problem = (what: string, at = i): never =>
    fail({ file, line: lineAt(at) }, `${what} (expected ${contents})`);
  const skipWhitespace = () => {
    while (i < text.length && ' \t\r\n'.includes(text[i]!)) i++;
  };
  // Index just past the JSON string starting at `start` (a '"').
  const stringEnd = (start: number) => {
    let j = start + 1;
    while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
    if (j >= text.length) problem('unterminated string', start);
    return j + 1;
  };
  // Index just past the JSON value starting at `start`: brackets balanced, strings skipped.
  const valueEnd = (start: number) => {
    let depth = 0;
    let j = start;
    while (j < text.length) {
      const char = text[j]!;
      if (char === '"') {
        j = stringEnd(j);
        if (depth === 0) return j;
        continue;
      }
      if (char === '{' || char === '[') depth++;
      else if (char === '}' || char === ']') {
        if (depth === 0) return j;
        if (--depth === 0) return j + 1;
      } else if (depth === 0 && (char === ',' || ' \t\r\n'.includes(char))) return j;
      j++;
    }
    return j;
  };
  const parseSlice = (start: number, end: number): unknown => {
    try {
      return JSON.parse(text.slice(start, end));
    } catch (error) {
      // The line is reported; V8's offset is relative to the slice, so it is dropped from the message.
      const reason = (error as Error).message.replace(/ in JSON at position \d+.*$/, '');
      return problem(`invalid JSON: ${reason}`, start + (jsonErrorOffset(error) ?? 0));
    }
  };

  skipWhitespace();
  const open = text[i];
  if (open !== '{' && open !== '[') problem(open === undefined ? 'empty file' : `unexpected ${JSON.stringify(open)}`);
  const close = open === '{' ? '}' : ']';
  i++;
  const entries: JsonEntry[] = [];
  skipWhitespace();
  if (text[i] === close) i++;
  else {
    for (;;) {
      skipWhitespace();
      const line = lineAt(i);
      let key: string | undefined;
      if (open === '{') {
        if (text[i] !== '"') problem('expected a quoted key');
        const keyEnd = stringEnd(i);
        key = parseSlice(i, keyEnd) as string;
        i = keyEnd;
        skipWhitespace();
        if (text[i] !== ':') problem(`expected ':' after key ${JSON.stringify(key)}`);
        i++;
        skipWhitespace();
      }
      const end = valueEnd(i);
      entries.push({ key, value: parseSlice(i, end), line });
      i = end;
      skipWhitespace();
      if (text[i] === ',') {
        i++;
        continue;
      }
      if (text[i] !== close) problem(`expected ',' or '${close}'`);
      i++;
      break;
    }
  }
  skipWhitespace();
  if (i < text.length) problem('unexpected text after the top-level value');
  return entries;
}

/** Decoded chunks of a file, decompressed on the fly when the name ends in .zst. */
async function* fileChunks(file: string): AsyncGenerator<string> {
  const stream = createReadStream(file);
  const decoder = new TextDecoder('utf-8');
  try {
    if (!file.endsWith('.zst')) {
      for await (const chunk of stream) yield decoder.decode(chunk as Buffer, { stream: true });
    } else {
      const pending: Uint8Array[] = [];
      const decompressor = new Decompress((data) => {
        pending.push(data);
      });
      const drain = function* () {
        for (const data of pending.splice(0)) yield decoder.decode(data, { stream: true });
      };
      for await (const chunk of stream) {
        try {
          decompressor.push(chunk as Buffer);
        } catch (error) {
          fail({ file }, `not a valid zstd stream (${(error as Error).message})`);
        }
        yield* drain();
      }
      try {
        decompressor.push(new Uint8Array(0), true);
      } catch (error) {
        fail({ file }, `truncated zstd stream (${(error as Error).message})`);
      }
      yield* drain();
    }
    yield decoder.decode();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') fail({ file }, 'file not found');
    throw error;
  } finally {
    stream.destroy();
  }
}

/**
 * Lines of a text file (plain or .zst), streamed, with their 1-based numbers. A final newline does not
 * produce an empty last line. Stopping the iteration early stops reading the file.
 */
export async function* readLines(file: string): AsyncGenerator<{ text: string; line: number }> {
  // Pieces of the unfinished line, joined once its end arrives: Pile documents can span many chunks.
  let unfinished: string[] = [];
  let line = 0;
  for await (const chunk of fileChunks(file)) {
    const parts = chunk.split('\n');
    if (parts.length === 1) {
      unfinished.push(chunk);
      continue;
    }
    parts[0] = unfinished.join('') + parts[0];
    unfinished = [parts.pop()!];
    for (const text of parts) yield { text, line: ++line };
  }
  const last = unfinished.join('');
  if (last !== '') yield { text: last, line: ++line };
}

/** JSON Lines records (each must be a JSON object), streamed. */
export async function* readJsonLines(
  file: string,
  contents: string,
): AsyncGenerator<{ record: Record<string, unknown>; at: RecordLocation }> {
  for await (const { text, line } of readLines(file)) {
    const at = { file, line };
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      fail(at, `invalid JSON, expected ${contents} (${(error as Error).message})`);
    }
    yield { record: expectObject(value, at, contents), at };
  }
}

export function expectObject(value: unknown, at: RecordLocation, contents: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) fail(at, `expected ${contents}`);
  return value as Record<string, unknown>;
}

export function stringField(record: Record<string, unknown>, field: string, at: RecordLocation): string {
  const value = record[field];
  if (typeof value !== 'string') {
    fail(at, `field "${field}" must be a string, got ${JSON.stringify(value) ?? 'nothing'}`);
  }
  return value;
}

export function stringArrayField(record: Record<string, unknown>, field: string, at: RecordLocation): string[] {
  const value = record[field];
  if (!Array.isArray(value) || !value.every((item) => typeof item === 'string')) {
    fail(at, `field "${field}" must be a list of strings, got ${JSON.stringify(value) ?? 'nothing'}`);
  }
  return value;
}

/** A label stored as an integer or as its decimal string (Hugging Face turns some labels into strings). */
export function integerLabelField(
  record: Record<string, unknown>,
  field: string,
  allowed: readonly number[],
  at: RecordLocation,
): number {
  const value = record[field];
  const label = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof label !== 'number' || !allowed.includes(label)) {
    fail(at, `field "${field}" must be one of ${allowed.join(', ')}, got ${JSON.stringify(value) ?? 'nothing'}`);
  }
  return label;
}

/** Raises the standard "expected ..." data error for a record. */
export function invalidRecord(at: RecordLocation, problem: string): never {
  return fail(at, problem);
}
