/// <reference lib="webworker" />
import { instantiateLinearKernel } from './linear-kernel.js';
import { doneWord, GENERATION, type HelperStart, JOB_LENGTH, jobWord, runColumns, STOP } from './threads.js';

/** Spins before sleeping: the next job of a step usually follows within microseconds. */
const SPINS_BEFORE_SLEEP = 1 << 16;

self.onmessage = async ({ data }: MessageEvent<HelperStart>) => {
  const { wasm, memory, control, helpers, index } = data;
  const kernel = await instantiateLinearKernel(wasm, memory);
  const words = new Int32Array(memory.buffer, control);
  const job = jobWord(helpers, index);
  const done = doneWord(index);
  postMessage('ready');
  let seen = Atomics.load(words, GENERATION);
  for (;;) {
    let spins = 0;
    while (Atomics.load(words, GENERATION) === seen && Atomics.load(words, STOP) === 0) {
      if (++spins > SPINS_BEFORE_SLEEP) {
        Atomics.wait(words, GENERATION, seen);
        spins = 0;
      }
    }
    if (Atomics.load(words, STOP) !== 0) return close();
    seen = Atomics.load(words, GENERATION);
    runColumns(kernel, words.subarray(job, job + JOB_LENGTH), words[job + JOB_LENGTH]!, words[job + JOB_LENGTH + 1]!);
    Atomics.store(words, done, seen);
  }
};
