/** Every problem found in a checkpoint's files (missing, malformed, unsafe) is reported with this class. */
export class CheckpointError extends Error {
  override name = 'CheckpointError';
}
