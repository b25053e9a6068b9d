import type { LinearKernel } from './linear-kernel.js';

/**
 * The kernel's threads: the calling thread and `helpers` workers, each running the same WebAssembly module over
 * one shared memory. A job is a product split by output columns; the caller takes the first share and spins
 * until the helpers are done (the page's thread may not block, and a job lasts well under a millisecond to a
 * few). Each helper spins a while for the next job before it sleeps, since jobs come back to back during a step.
 *
 * The control block, Int32 words in the shared memory: [generation, stop, ..., done of each helper, then each
 * helper's job]. Work is handed over by bumping the generation; a helper reports by writing it back.
 */
const HEADER_WORDS = 4;
const JOB_WORDS = 16;
export const GENERATION = 0;
export const STOP = 1;

/** Words of the control block for `helpers` helpers. */
export const controlBlockWords = (helpers: number) => HEADER_WORDS + helpers * (1 + JOB_WORDS);
export const doneWord = (helper: number) => HEADER_WORDS + helper;
export const jobWord = (helpers: number, helper: number) => HEADER_WORDS + helpers + helper * JOB_WORDS;

/** What a helper is started with (posted once). */
export interface HelperStart {
  wasm: Uint8Array;
  memory: WebAssembly.Memory;
  /** Byte offset of the control block. */
  control: number;
  helpers: number;
  index: number;
}

export const INT4_PRODUCT = 0;
export const INT8_PRODUCT = 1;

/**
 * One product, its columns apart, as Int32 words: [kind, y, activations, rows, K, weights, scales, zero points
 * (4-bit) or the activations' scale as float bits (int8), bias (0: none), N].
 */
export type ProductJob = [kind: number, y: number, activations: number, rows: number, K: number, weights: number, scales: number, third: number, bias: number, N: number];
export const JOB_LENGTH = 10;

const bits = new Int32Array(1);
const asFloat = new Float32Array(bits.buffer);
export const floatBits = (value: number) => ((asFloat[0] = value), bits[0]!);
const floatOf = (word: number) => ((bits[0] = word), asFloat[0]!);

/** Runs columns [nStart, nEnd) of a job: the one place that reads a job's words, on every thread. */
export function runColumns(kernel: LinearKernel, job: ArrayLike<number>, nStart: number, nEnd: number): void {
  if (nEnd <= nStart) return;
  const [kind, y, activations, rows, K, weights, scales, third, bias, N] = Array.from(job) as ProductJob;
  if (kind === INT4_PRODUCT) kernel.matmulInt4(y, activations, rows, K, weights, scales, third, bias, N, nStart, nEnd);
  else kernel.matmulInt8(y, activations, rows, K, weights, floatOf(third), scales, N, nStart, nEnd);
}
