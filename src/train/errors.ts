import { InputError } from '../model/index.js';

/** Bad training input (data files, flags, batches) or a run that cannot go on (non-finite loss), named precisely. */
export class TrainingInputError extends InputError {
  override name = 'TrainingInputError';
}
