// torch.optim.AdamW and the learning-rate schedules of Hugging Face's Trainer.

export interface AdamWSettings {
  beta1: number;
  beta2: number;
  epsilon: number;
  weightDecay: number;
}

/** First and second moments of one parameter; float32 like the parameters (16 bytes per parameter in all). */
export interface Moments {
  expAvg: Float32Array;
  expAvgSq: Float32Array;
}

/** What a checkpoint needs to continue exactly: the optimizer's moments and its step count. */
export interface OptimizerState {
  step: number;
  moments: Map<string, Moments>;
}

export function zeroMoments(size: number): Moments {
  return { expAvg: new Float32Array(size), expAvgSq: new Float32Array(size) };
}

/**
 * One AdamW update of `param` in place, as torch computes it (step t counts from 1): decoupled weight decay
 * p *= 1 - lr wd first, then m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2,
 * p -= lr / (1 - b1^t) m / (sqrt(v) / sqrt(1 - b2^t) + eps). `gradientScale` applies gradient clipping.
 */
export function adamWUpdate(
  param: Float32Array,
  gradient: Float32Array,
  moments: Moments,
  step: number,
  lr: number,
  settings: AdamWSettings,
  decay: boolean,
  gradientScale: number,
): void {
  const { beta1, beta2, epsilon } = settings;
  const shrink = decay ? 1 - lr * settings.weightDecay : 1;
  const stepSize = lr / (1 - beta1 ** step);
  const correction2 = Math.sqrt(1 - beta2 ** step);
  const { expAvg, expAvgSq } = moments;
  for (let i = 0; i < param.length; i++) {
    const g = gradient[i]! * gradientScale;
    const m = (expAvg[i] = beta1 * expAvg[i]! + (1 - beta1) * g);
    const v = (expAvgSq[i] = beta2 * expAvgSq[i]! + (1 - beta2) * g * g);
    param[i] = param[i]! * shrink - (stepSize * m) / (Math.sqrt(v) / correction2 + epsilon);
  }
}

/** The global L2 norm of every gradient together, as torch's clip_grad_norm_ computes it (and Hugging Face logs it). */
export function globalGradientNorm(gradients: Iterable<Float32Array>): number {
  let squares = 0;
  for (const gradient of gradients) for (let i = 0; i < gradient.length; i++) squares += gradient[i]! * gradient[i]!;
  return Math.sqrt(squares);
}

/** What clip_grad_norm_ multiplies the gradients by for a global norm `norm`; 1 without clipping (maxNorm null). */
export function clippingScale(norm: number, maxNorm: number | null): number {
  return maxNorm === null ? 1 : Math.min(1, maxNorm / (norm + 1e-6));
}

/** HF's default decay exclusions: every bias and the LayerNorm weights (ln_1, ln_2, ln_f). */
export function isBiasOrNorm(name: string): boolean {
  return name.endsWith('.bias') || /(^|\.)ln_(1|2|f)\./.test(name);
}

export type SchedulerType = 'linear' | 'cosine' | 'constant';
export const SCHEDULER_TYPES: readonly SchedulerType[] = ['linear', 'cosine', 'constant'];

/**
 * The learning-rate multiplier for optimizer step `step` (0-based), as transformers' get_scheduler: a linear
 * warmup over `warmupSteps`, then constant, linear decay to 0 or half a cosine at `totalSteps`.
 */
export function learningRateFactor(type: SchedulerType, step: number, warmupSteps: number, totalSteps: number): number {
  if (step < warmupSteps) return step / Math.max(1, warmupSteps);
  if (type === 'constant') return 1;
  const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  if (type === 'linear') return Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
}
