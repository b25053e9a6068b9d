export { TrainingInputError } from './errors.js';
export { SCHEDULER_TYPES, type SchedulerType } from './optimizer.js';
export { train, type TrainingArguments, type TrainingResult } from './run.js';
export { type StepResult, Trainer, type TrainerOptions, type TrainingBatch } from './trainer.js';
