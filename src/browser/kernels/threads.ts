/**
 * The kernel's threads: the calling thread and `helpers` workers, each running the same WebAssembly module over
 * one shared memory. A job is a product split by output columns; the caller takes the first share and spins
 * until the helpers are done (the page's thread may not block, and a job lasts well under a millisecond to a
 * few). Each helper spins a while for the next job before it sleeps, since jobs come back to back during a step.
 *
 * The control block, Int32 words in the shared memory: [generation, stop, done of helper 1.., then each
 * helper's job arguments]. Work is handed over by bumping the generation; a helper reports by writing it back.
 */
export const CONTROL_WORDS_PER_HELPER = 16;
export const CONTROL_HEADER_WORDS = 4;
export const GENERATION = 0;
export const STOP = 1;

/** Words of the control block for `helpers` helpers. */
export function controlBlockWords(helpers: number): number {
  return CONTROL_HEADER_WORDS + helpers * (1 + CONTROL_WORDS_PER_HELPER);
}

export const doneWord = (helper: number) => CONTROL_HEADER_WORDS + helper;
export const argumentsWord = (helpers: number, helper: number) => CONTROL_HEADER_WORDS + helpers + helper * CONTROL_WORDS_PER_HELPER;

/** What a helper is started with (posted once). */
export interface HelperStart {
  wasm: Uint8Array;
  memory: WebAssembly.Memory;
  /** Byte offset of the control block. */
  control: number;
  helpers: number;
  index: number;
}

/** The column-split product every thread runs, with its arguments in the order the helpers read them. */
export type ProductArguments = [
  y: number,
  activations: number,
  rows: number,
  K: number,
  codes: number,
  scales: number,
  zeroPoints: number,
  bias: number,
  N: number,
  nStart: number,
  nEnd: number,
];
