export type { Checkpoint, TensorInfo } from './types.js';
export { openCheckpoint } from './checkpoint.js';
export { writeSafetensors } from './safetensors-writer.js';
export { CheckpointError } from './errors.js';
