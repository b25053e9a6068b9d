// checkpoint-<step>/ folders: the model (or the LoRA adapter) as save_pretrained writes it, the optimizer's
// moments, and trainer_state.json (step, data position, log). A checkpoint is written into a hidden staging
// folder and renamed into place, so a crash while writing leaves the previous checkpoint as it was.
import { mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { ADAPTER_WEIGHTS_FILE } from '../lora/index.js';
import { openSafetensors } from '../weights/safetensors.js';
import { writeSafetensors } from '../weights/index.js';
import type { DataPosition } from './data.js';
import { TrainingInputError } from './errors.js';
import type { Moments } from './optimizer.js';
import type { Trainer } from './trainer.js';

const OPTIMIZER_FILE = 'optimizer.safetensors';
const STATE_FILE = 'trainer_state.json';

export interface TrainerState {
  global_step: number;
  data: DataPosition;
  /** HF-style log records ({ step, loss, learning_rate, grad_norm } and { step, eval_loss, perplexity }). */
  log_history: Array<Record<string, number>>;
}

export const checkpointName = (step: number) => `checkpoint-${step}`;

export async function saveCheckpoint(outputDir: string, trainer: Trainer, state: TrainerState): Promise<string> {
  const target = path.join(outputDir, checkpointName(state.global_step));
  const staging = path.join(outputDir, `.${checkpointName(state.global_step)}.partial-${process.pid}`);
  await rm(staging, { recursive: true, force: true });
  await mkdir(staging, { recursive: true });
  await trainer.save_pretrained(staging);
  const moments = [...trainer.optimizerState.moments].flatMap(([name, { expAvg, expAvgSq }]) => [
    { name: `exp_avg.${name}`, dtype: 'F32' as const, shape: [expAvg.length], data: () => expAvg },
    { name: `exp_avg_sq.${name}`, dtype: 'F32' as const, shape: [expAvgSq.length], data: () => expAvgSq },
  ]);
  await writeSafetensors(path.join(staging, OPTIMIZER_FILE), moments);
  await writeFile(path.join(staging, STATE_FILE), `${JSON.stringify(state, null, 2)}\n`);
  await rm(target, { recursive: true, force: true });
  await rename(staging, target);
  return target;
}

/**
 * The newest complete checkpoint in `outputDir`, or undefined when there is none. Staging folders left by a
 * run that died while writing are removed.
 */
export async function latestCheckpoint(outputDir: string): Promise<string | undefined> {
  const entries = await readdir(outputDir).catch(() => [] as string[]);
  for (const entry of entries) {
    if (/^\.checkpoint-\d+\.partial-\d+$/.test(entry)) await rm(path.join(outputDir, entry), { recursive: true, force: true });
  }
  const steps = entries.map((entry) => /^checkpoint-(\d+)$/.exec(entry)).filter((m) => m !== null).map((m) => Number(m[1]));
  if (steps.length === 0) return undefined;
  return path.join(outputDir, checkpointName(Math.max(...steps)));
}

/** Puts a checkpoint's parameters and optimizer moments into `trainer` and returns its state. */
export async function restoreCheckpoint(folder: string, trainer: Trainer): Promise<TrainerState> {
  let state: TrainerState;
  try {
    state = JSON.parse(await readFile(path.join(folder, STATE_FILE), 'utf8')) as TrainerState;
  } catch (error) {
    throw new TrainingInputError(`${folder}: cannot read ${STATE_FILE} (${(error as Error).message})`);
  }
  const weightsFile = path.join(folder, trainer.isLora ? ADAPTER_WEIGHTS_FILE : 'model.safetensors');
  const values = await readAll(weightsFile);
  const stored = await readAll(path.join(folder, OPTIMIZER_FILE));
  const moments = new Map<string, Moments>();
  for (const name of values.keys()) {
    const expAvg = stored.get(`exp_avg.${name}`);
    const expAvgSq = stored.get(`exp_avg_sq.${name}`);
    if (state.global_step > 0 && (!expAvg || !expAvgSq)) throw new TrainingInputError(`${folder}: ${OPTIMIZER_FILE} has no moments for '${name}'`);
    if (expAvg && expAvgSq) moments.set(name, { expAvg, expAvgSq });
  }
  trainer.restore(values, { step: state.global_step, moments });
  return state;
}

async function readAll(file: string): Promise<Map<string, Float32Array>> {
  const weights = await openSafetensors(file);
  try {
    const values = new Map<string, Float32Array>();
    for (const name of weights.tensors.keys()) values.set(name, await weights.readFloat32(name));
    return values;
  } finally {
    await weights.close();
  }
}
