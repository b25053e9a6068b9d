import type { LinearKernel } from './linear-kernel.js';

/**
 * The kernel's threads: the calling thread and helper workers, each running the same WebAssembly module over one
 * shared memory. A product's output columns are cut into chunks that every thread claims one at a time until none
 * is left, so a helper that wakes late (or not at all, on a busy machine) leaves its chunks to the others instead
 * of holding the product up; the caller then spins until the claimed chunks are done (the page's thread may not
 * block, and a product lasts well under a millisecond to a few). Helpers spin a while for the next product before
 * they sleep, since products come back to back during a step.
 *
 * The control block, Int32 words in the shared memory: the generation (bumped per product, to wake helpers), stop,
 * the claim word (the product's generation in the high 16 bits, the next chunk in the low 16: a thread claims a
 * chunk by compare-and-swap, so it can never claim a chunk of a product other than the one it read), the count of
 * chunks done, the chunk count and size, then the product's job.
 */
export const GENERATION = 0;
export const STOP = 1;
const CLAIM = 2;
const DONE = 3;
const CHUNKS = 4;
const CHUNK_COLUMNS = 5;
const JOB = 8;
export const CONTROL_WORDS = JOB + 16;

/** What a helper is started with (posted once). */
export interface HelperStart {
  wasm: Uint8Array;
  memory: WebAssembly.Memory;
  /** Byte offset of the control block. */
  control: number;
}

export const INT4_PRODUCT = 0;
export const INT8_PRODUCT = 1;

/**
 * One product, its columns apart, as Int32 words: [kind, y, activations, rows, K, weights, scales, zero points
 * (4-bit) or the activations' scale as float bits (int8), bias (0: none), N].
 */
export type ProductJob = [kind: number, y: number, activations: number, rows: number, K: number, weights: number, scales: number, third: number, bias: number, N: number];
const JOB_LENGTH = 10;

const bits = new Int32Array(1);
const asFloat = new Float32Array(bits.buffer);
export const floatBits = (value: number) => ((asFloat[0] = value), bits[0]!);
const floatOf = (word: number) => ((bits[0] = word), asFloat[0]!);

/** Runs columns [nStart, nEnd) of a job: the one place that reads a job's words. */
function runColumns(kernel: LinearKernel, job: ArrayLike<number>, nStart: number, nEnd: number): void {
  if (nEnd <= nStart) return;
  const [kind, y, activations, rows, K, weights, scales, third, bias, N] = Array.from(job) as ProductJob;
  if (kind === INT4_PRODUCT) kernel.matmulInt4(y, activations, rows, K, weights, scales, third, bias, N, nStart, nEnd);
  else kernel.matmulInt8(y, activations, rows, K, weights, floatOf(third), scales, N, nStart, nEnd);
}

const generationBits = (generation: number) => (generation & 0x7fff) << 16;

/** Claims and runs chunks of the product of `generation` until none is left; the job is read only after a claim. */
export function runChunks(kernel: LinearKernel, words: Int32Array, generation: number): void {
  const tag = generationBits(generation);
  for (;;) {
    const claim = Atomics.load(words, CLAIM);
    const chunk = claim & 0xffff;
    if ((claim & ~0xffff) !== tag || chunk >= words[CHUNKS]!) return;
    if (Atomics.compareExchange(words, CLAIM, claim, claim + 1) !== claim) continue;
    // Claimed: the product cannot end, and its job words cannot change, before this chunk is counted done.
    const size = words[CHUNK_COLUMNS]!;
    const N = words[JOB + JOB_LENGTH - 1]!;
    runColumns(kernel, words.subarray(JOB, JOB + JOB_LENGTH), chunk * size, Math.min(N, (chunk + 1) * size));
    Atomics.add(words, DONE, 1);
  }
}

/**
 * Runs a product on the calling thread and whichever helpers join: publishes it, wakes the helpers, claims chunks
 * like them, then waits for the chunks they claimed. Without helpers, the whole product on this thread.
 */
export function runProduct(kernel: LinearKernel, words: Int32Array | undefined, job: ProductJob, threads: number): void {
  const N = job[JOB_LENGTH - 1];
  if (!words) return runColumns(kernel, job, 0, N);
  // Chunks of whole column groups (the kernel's unit is four columns), about four per thread.
  const size = Math.max(4, Math.ceil(N / (threads * 4) / 4) * 4);
  const chunks = Math.ceil(N / size);
  words.set(job, JOB);
  words[CHUNKS] = chunks;
  words[CHUNK_COLUMNS] = size;
  Atomics.store(words, DONE, 0);
  const generation = (Atomics.load(words, GENERATION) + 1) | 0;
  Atomics.store(words, CLAIM, generationBits(generation));
  Atomics.store(words, GENERATION, generation);
  Atomics.notify(words, GENERATION);
  runChunks(kernel, words, generation);
  while (Atomics.load(words, DONE) !== chunks);
}
