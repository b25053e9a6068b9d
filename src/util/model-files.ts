/**
 * Where a model's files come from. Node reads a folder on disk (local-files.ts); the browser build reads a
 * Hub repo or a served folder over HTTP, or files the user picked (src/browser/files.ts). Loading code
 * (config, tokenizer, checkpoint) reads through these interfaces only, so it is the same code in both places.
 */

/** Random access to one file's bytes. */
export interface RandomAccessFile {
  /** Path or URL, for messages. */
  readonly name: string;
  readonly size: number;
  /** Fills `target` with the bytes at `position`; a file that ends first is an error naming the file. */
  read(target: Uint8Array, position: number): Promise<void>;
  close(): Promise<void>;
}

/** The files of one model folder. */
export interface ModelFiles {
  /** The folder's path or URL, for messages. */
  readonly location: string;
  /** Path or URL of file `name` in the folder, for messages. */
  describe(name: string): string;
  exists(name: string): Promise<boolean>;
  readText(name: string): Promise<string>;
  open(name: string): Promise<RandomAccessFile>;
}

/** The last part of a path or URL. */
export function baseName(location: string): string {
  return location.replace(/[/\\]+$/, '').split(/[/\\]/).pop() ?? location;
}
