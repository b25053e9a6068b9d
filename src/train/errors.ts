/** Bad training input (data files, flags, batches) or a run that cannot go on (non-finite loss), named precisely. */
export class TrainingInputError extends Error {
  override name = 'TrainingInputError';
}
