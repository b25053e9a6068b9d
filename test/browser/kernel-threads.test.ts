// The kernel's threads share a product by claiming chunks of its columns: a helper that never comes (asleep, or
// not scheduled on a busy machine) must leave its share to the calling thread rather than hold the product up.
import { expect, it } from 'vitest';
import { CONTROL_WORDS, INT8_PRODUCT, type ProductJob, floatBits, runProduct } from '../../src/browser/kernels/threads.js';
import { compiledKernels, Heap, randomWords } from '../kernels/kernel-heap.js';

it('finishes a product alone when no helper claims a chunk, with the result of one thread', async () => {
  const { shared } = await compiledKernels();
  const heap = await Heap.over(shared, 16 << 20, true);
  const { kernel } = heap;
  const [rows, K, N] = [2, 256, 203];
  const a = Uint8Array.from(randomWords(rows * K, 1), (w) => w >>> 24);
  const b = Int8Array.from(randomWords(K * N, 2), (w) => (w >>> 24) - 128);
  const scales = Float32Array.from(randomWords(N, 3), (w) => w / 2 ** 40);
  const packed = heap.alloc(kernel.int8PackedBytes(K, N));
  kernel.packInt8(heap.put(b), K, N, packed);
  const activations = heap.alloc(kernel.int8ActivationBytes(rows, K));
  kernel.prepareInt8Activations(heap.put(a), rows, K, activations);
  const job = (y: number): ProductJob => [INT8_PRODUCT, y, activations, rows, K, packed, heap.put(scales), floatBits(0.5), 0, N];
  const read = (y: number) => new Float32Array(heap.memory.buffer, y, rows * N).slice();

  const alone = heap.alloc(rows * N * 4);
  runProduct(kernel, undefined, job(alone), 1);
  const control = new Int32Array(heap.memory.buffer, heap.alloc(CONTROL_WORDS * 4), CONTROL_WORDS);
  const split = heap.alloc(rows * N * 4);
  for (let product = 0; product < 3; product++) runProduct(kernel, control, job(split), 2);
  expect(read(split)).toEqual(read(alone));
  expect(read(alone).some((value) => value !== 0)).toBe(true);
});
