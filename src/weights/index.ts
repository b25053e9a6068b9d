export type { Checkpoint, TensorInfo } from './types.js';
export { openCheckpoint, openCheckpointFiles } from './checkpoint.js';
export { localModelFiles } from './local-files.js';
export { readSafetensors } from './safetensors.js';
export { writeSafetensors } from './safetensors-writer.js';
export { CheckpointError } from './errors.js';
