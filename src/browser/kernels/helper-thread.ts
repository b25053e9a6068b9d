/// <reference lib="webworker" />
import { instantiateLinearKernel } from './linear-kernel.js';
import { argumentsWord, doneWord, GENERATION, type HelperStart, type ProductArguments, STOP } from './threads.js';

/** Spins before sleeping: the next job of a step usually follows within microseconds. */
const SPINS_BEFORE_SLEEP = 1 << 16;

self.onmessage = async ({ data }: MessageEvent<HelperStart>) => {
  const { wasm, memory, control, helpers, index } = data;
  const kernel = await instantiateLinearKernel(wasm, memory);
  const words = new Int32Array(memory.buffer, control);
  const args = argumentsWord(helpers, index);
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
    const [y, activations, rows, K, codes, scales, zeroPoints, bias, N, nStart, nEnd] = Array.from(words.subarray(args, args + 11)) as ProductArguments;
    if (nEnd > nStart) kernel.matmulInt4(y, activations, rows, K, codes, scales, zeroPoints, bias, N, nStart, nEnd);
    Atomics.store(words, done, seen);
  }
};
