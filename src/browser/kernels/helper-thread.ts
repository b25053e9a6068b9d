/// <reference lib="webworker" />
import { instantiateLinearKernel } from './linear-kernel.js';
import { CONTROL_WORDS, GENERATION, type HelperStart, runChunks, STOP } from './threads.js';

/** Spins before sleeping: the next product of a step usually follows within microseconds. */
const SPINS_BEFORE_SLEEP = 1 << 16;

self.onmessage = async ({ data }: MessageEvent<HelperStart>) => {
  const { wasm, memory, control } = data;
  const kernel = await instantiateLinearKernel(wasm, memory);
  const words = new Int32Array(memory.buffer, control, CONTROL_WORDS);
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
    runChunks(kernel, words, seen);
  }
};
