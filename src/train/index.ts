export { TrainingInputError } from './errors.js';
export { SCHEDULER_TYPES, type SchedulerType } from './optimizer.js';
export { train, type TrainingArguments, type TrainingResult } from './run.js';
export type { TrainingBatch } from './batch.js';
export type { TrainerOptions } from './options.js';
export { type StepResult, Trainer } from './trainer.js';
