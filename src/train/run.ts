import { mkdir } from 'node:fs/promises';
import { loadConfig } from '../model/config.js';
import { AutoTokenizer } from '../tokenizer/index.js';
import type { TrainingBatch } from './batch.js';
import { latestCheckpoint, restoreCheckpoint, saveCheckpoint, type TrainerState } from './checkpoint.js';
import { BlockDataset, readDocuments, ShuffledBatches } from './data.js';
import { TrainingInputError } from './errors.js';
import type { TrainerOptions } from './options.js';
import { trainingDisplay } from './progress.js';
import { Trainer } from './trainer.js';

/** run_clm.py / TrainingArguments names; defaults are Hugging Face's. */
export interface TrainingArguments extends Omit<TrainerOptions, 'max_steps'> {
  /** Local model folder (the CLI resolves Hub ids first). */
  model: string;
  train_file: string;
  validation_file?: string;
  output_dir: string;
  /** Optimizer steps; wins over num_train_epochs. */
  max_steps?: number;
  num_train_epochs?: number;
  /** Tokens per block; default min(1024, the model's context), as run_clm. */
  block_size?: number;
  batch_size?: number;
  gradient_accumulation_steps?: number;
  save_steps?: number;
  eval_steps?: number;
  logging_steps?: number;
  /** Continue from the newest checkpoint-<step> in output_dir. */
  resume?: boolean;
}

export interface TrainingResult {
  global_step: number;
  train_loss: number;
  eval_loss?: number;
}

/** Fine-tunes as run_clm.py + Trainer: data, steps, logging, validation, checkpoints, and the final model in output_dir. */
export async function train(args: TrainingArguments): Promise<TrainingResult> {
  const positive = (name: string, value: number | undefined) => {
    if (value !== undefined && !(Number.isInteger(value) && value > 0)) throw new TrainingInputError(`--${name} must be a whole number > 0, got ${value}`);
  };
  positive('max-steps', args.max_steps);
  positive('block-size', args.block_size);
  positive('batch-size', args.batch_size);
  positive('gradient-accumulation-steps', args.gradient_accumulation_steps);
  positive('save-steps', args.save_steps);
  positive('eval-steps', args.eval_steps);
  positive('logging-steps', args.logging_steps);
  if (args.num_train_epochs !== undefined && !(args.num_train_epochs > 0)) throw new TrainingInputError(`--num-train-epochs must be > 0`);

  const config = await loadConfig(args.model);
  const blockSize = args.block_size ?? Math.min(1024, config.max_position_embeddings);
  if (blockSize > config.max_position_embeddings) {
    throw new TrainingInputError(`--block-size ${blockSize} is over the model's context (max_position_embeddings ${config.max_position_embeddings})`);
  }
  const eos = config.eos_token_id;
  if (eos === null) throw new TrainingInputError(`${args.model}: config.json has no eos_token_id to join documents with`);
  const trainDocuments = await readDocuments(args.train_file);
  const validationDocuments = args.validation_file ? await readDocuments(args.validation_file) : undefined;
  const tokenizer = await AutoTokenizer.from_pretrained(args.model);
  const encode = (text: string) => tokenizer.encode(text);
  const trainData = BlockDataset.fromDocuments(args.train_file, trainDocuments, encode, eos, blockSize);
  const validationData = validationDocuments && BlockDataset.fromDocuments(args.validation_file!, validationDocuments, encode, eos, blockSize);

  const batchSize = args.batch_size ?? 8;
  const accumulation = args.gradient_accumulation_steps ?? 1;
  const seed = args.seed ?? 42;
  const batchesPerEpoch = Math.ceil(trainData.length / batchSize);
  const maxSteps = args.max_steps ?? Math.ceil((args.num_train_epochs ?? 3) * Math.max(1, Math.floor(batchesPerEpoch / accumulation)));
  const loggingSteps = args.logging_steps ?? 500;
  const evalSteps = args.eval_steps ?? loggingSteps;
  const saveSteps = args.save_steps ?? 500;

  await mkdir(args.output_dir, { recursive: true });
  const checkpoint = await latestCheckpoint(args.output_dir);
  if (args.resume && !checkpoint) throw new TrainingInputError(`--resume: no checkpoint-<step> folder in ${args.output_dir}`);
  if (!args.resume && checkpoint) {
    throw new TrainingInputError(`${args.output_dir} already holds ${checkpoint}: pass --resume to continue that run, or choose another --output-dir`);
  }

  const trainer = await Trainer.from_pretrained(args.model, { ...args, seed, max_steps: maxSteps });
  try {
    let state: TrainerState = { global_step: 0, data: { epoch: 0, offset: 0 }, log_history: [] };
    if (checkpoint) state = await restoreCheckpoint(checkpoint, trainer);
    const batches = new ShuffledBatches(trainData.length, batchSize, seed, state.data);
    const display = trainingDisplay(maxSteps, state.global_step);
    let lastCheckpoint = checkpoint;
    let lossSinceLog = 0;
    let stepsSinceLog = 0;
    let trainLoss = Number.NaN;
    let evalLoss: number | undefined;
    try {
      while (trainer.global_step < maxSteps) {
        const started = performance.now();
        const micro: TrainingBatch[] = Array.from({ length: accumulation }, () => trainData.batch(batches.next()));
        const result = await trainer.step(micro).catch((error: unknown) => {
          const kept = lastCheckpoint ? `; the last good checkpoint is ${lastCheckpoint}` : '';
          throw error instanceof TrainingInputError ? new TrainingInputError(`${error.message}${kept}`) : error;
        });
        const step = trainer.global_step;
        const tokens = micro.reduce((sum, batch) => sum + batch.input_ids.length * blockSize, 0);
        display.step(step, result.loss, result.learning_rate, tokens / ((performance.now() - started) / 1000));
        lossSinceLog += result.loss;
        stepsSinceLog++;
        state = { ...state, global_step: step, data: batches.current };
        if (step % loggingSteps === 0 || step === maxSteps) {
          trainLoss = lossSinceLog / stepsSinceLog;
          const epoch = state.data.epoch + state.data.offset / trainData.length;
          const record = { step, loss: trainLoss, grad_norm: result.grad_norm, learning_rate: result.learning_rate, epoch };
          state.log_history.push(record);
          display.log(record);
          lossSinceLog = 0;
          stepsSinceLog = 0;
        }
        if (validationData && (step % evalSteps === 0 || step === maxSteps)) {
          evalLoss = await evaluate(trainer, validationData, batchSize);
          const record = { step, eval_loss: evalLoss, perplexity: Math.exp(evalLoss) };
          state.log_history.push(record);
          display.log(record);
        }
        if (step % saveSteps === 0 && step < maxSteps) {
          lastCheckpoint = await saveCheckpoint(args.output_dir, trainer, state);
          display.log({ step, checkpoint: lastCheckpoint });
        }
      }
    } finally {
      display.stop();
    }
    await trainer.save_pretrained(args.output_dir);
    return { global_step: trainer.global_step, train_loss: trainLoss, eval_loss: evalLoss };
  } finally {
    await trainer.dispose();
  }
}

/**
 * Validation loss as Trainer.evaluate reports eval_loss: each batch's mean loss weighted by its number of
 * blocks (blocks in file order). All blocks score the same number of tokens, so this is the mean over tokens.
 */
export async function evaluate(trainer: Trainer, data: BlockDataset, batchSize: number): Promise<number> {
  let total = 0;
  for (let first = 0; first < data.length; first += batchSize) {
    const blocks = Array.from({ length: Math.min(batchSize, data.length - first) }, (_, i) => first + i);
    total += (await trainer.evaluate(data.batch(blocks))) * blocks.length;
  }
  return total / data.length;
}
