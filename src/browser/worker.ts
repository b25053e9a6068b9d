/// <reference lib="dom" />
import type { WeightFormat } from '../convert/parameters.js';
import { type ConversionStage, convertCheckpoint, type ConvertedModel } from './convert.js';
import { modelFiles, type ModelSource } from './files.js';

/**
 * The conversion worker: reads and converts a checkpoint off the page's thread (quantizing a 1.3B model takes
 * tens of seconds of CPU), then hands the graph and weights back without copying them.
 */
export type ConversionRequest = { source: ModelSource; dtype: WeightFormat };
export type ConversionMessage =
  | { kind: 'progress'; stage: ConversionStage; done: number; total: number }
  | { kind: 'done'; result: ConvertedModel }
  | { kind: 'error'; message: string };

interface WorkerScope {
  onmessage: ((event: MessageEvent<ConversionRequest>) => void) | null;
  postMessage(message: ConversionMessage, transfer?: Transferable[]): void;
}
const scope = self as unknown as WorkerScope;

scope.onmessage = async ({ data: { source, dtype } }) => {
  const progress = (stage: ConversionStage, done: number, total: number) => scope.postMessage({ kind: 'progress', stage, done, total });
  try {
    // Bytes received summed over the checkpoint's files (shards).
    const received = new Map<string, number>();
    const files = modelFiles(source, (file, bytes) => {
      received.set(file, bytes);
      progress('downloading', [...received.values()].reduce((a, b) => a + b, 0), 0);
    });
    const result = await convertCheckpoint(files, dtype, progress);
    scope.postMessage({ kind: 'done', result }, [result.model.buffer, result.weights.buffer] as Transferable[]);
  } catch (error) {
    scope.postMessage({ kind: 'error', message: (error as Error).message });
  }
};
