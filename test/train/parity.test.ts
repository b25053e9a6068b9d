import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Trainer } from '../../src/index.js';
import { maxAbsDiff } from '../helpers/fixtures.js';
import { readTrainReference, TINY_RANDOM } from './helpers.js';

// torch.optim.AdamW(lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01) on every parameter, two steps on
// one batch of tiny-random, computed by PyTorch in float64 (fixtures README, "train_reference.json").
const reference = readTrainReference();
const tolerance = reference.suggested_tolerances;
const order: string[] = reference.parameter_order;

const options = (max_grad_norm: number | null) => ({
  learning_rate: 1e-3,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  weight_decay: 0.01,
  decay_biases_and_norms: true,
  max_grad_norm,
  lr_scheduler_type: 'constant' as const,
});

/** Largest difference outside the elements the reference calls sensitive, and largest inside them. */
function compare(actual: Map<string, Float32Array>, expected: Record<string, number[]>, sensitive: Record<string, number[]> = {}) {
  let plain = 0;
  let sensitiveMax = 0;
  for (const name of order) {
    const values = actual.get(name);
    expect(values, name).toBeDefined();
    expect(values!.length).toBe(expected[name]!.length);
    const skip = new Set(sensitive[name] ?? []);
    values!.forEach((value, i) => {
      const diff = Math.abs(value - expected[name]![i]!);
      if (skip.has(i)) sensitiveMax = Math.max(sensitiveMax, diff);
      else plain = Math.max(plain, diff);
    });
  }
  return { plain, sensitiveMax };
}

describe.each([
  ['no_clip', null, 'no_clip'],
  ['clip_1_0', 1.0, 'clip'],
] as const)('Trainer matches torch AdamW on tiny-random (%s)', (variant, maxGradNorm, sensitiveKey) => {
  let trainer: Trainer;
  beforeAll(async () => {
    trainer = await Trainer.from_pretrained(TINY_RANDOM, { ...options(maxGradNorm), threads: 2 });
  });
  afterAll(async () => trainer.dispose());

  it('trains every parameter of the model once, the head tied to wte', () => {
    expect([...trainer.parameters().keys()].sort()).toEqual([...order].sort());
  });

  it.each([1, 2])('step %i: loss, gradient norm, gradients and parameters after AdamW', async (step) => {
    const expected = reference[variant][`step${step}`];
    const { loss, grad_norm } = await trainer.step(reference.batch);
    expect(Math.abs(loss - expected.loss)).toBeLessThan(tolerance.loss);
    expect(Math.abs(grad_norm - expected.grad_global_norm) / expected.grad_global_norm).toBeLessThan(tolerance.grad_global_norm_rel);
    if (step === 1) {
      expect(compare(trainer.gradients(), reference.grad).plain).toBeLessThan(tolerance.grad_abs);
    } else {
      // Step 2's gradients are summarised per parameter: sum, sum of squares and the first 8 values.
      for (const name of order) {
        const gradient = trainer.gradients().get(name)!;
        const summary = expected.grad_summary[name];
        let sum = 0;
        let squares = 0;
        for (const g of gradient) (sum += g), (squares += g * g);
        expect(Math.abs(sum - summary.sum), name).toBeLessThan(tolerance.grad_abs * gradient.length);
        expect(Math.abs(squares - summary.sum_sq) / summary.sum_sq, name).toBeLessThan(1e-4);
        summary.first8.forEach((value: number, i: number) => expect(Math.abs(gradient[i]! - value), name).toBeLessThan(tolerance.grad_abs));
      }
    }
    const { plain, sensitiveMax } = compare(trainer.parameters(), expected.params_after, reference.sensitive_elements[`${sensitiveKey}_step${step}`]);
    expect(plain).toBeLessThan(tolerance.params_after_abs);
    expect(sensitiveMax).toBeLessThan(tolerance.params_after_sensitive_abs);
  });
});

describe('gradient accumulation', () => {
  it("averages the micro-batches' gradients and losses, as HF divides each micro-batch loss by their number", async () => {
    const { input_ids, labels } = reference.batch;
    const micro = [0, 1].map((row) => ({ input_ids: [input_ids[row]], labels: [labels[row]] }));
    const trainers = await Promise.all([0, 1, 2].map(() => Trainer.from_pretrained(TINY_RANDOM, { ...options(null), threads: 1 })));
    try {
      const together = await trainers[0]!.step(micro);
      const alone = [await trainers[1]!.step(micro[0]!), await trainers[2]!.step(micro[1]!)];
      expect(together.loss).toBeCloseTo((alone[0]!.loss + alone[1]!.loss) / 2, 6);
      for (const name of order) {
        const [first, second] = [trainers[1]!.gradients().get(name)!, trainers[2]!.gradients().get(name)!];
        const mean = first.map((g, i) => (g + second[i]!) / 2);
        expect(maxAbsDiff(trainers[0]!.gradients().get(name)!, mean), name).toBeLessThan(1e-6);
      }
    } finally {
      await Promise.all(trainers.map((t) => t.dispose()));
    }
  });
});

describe('the loss in chunks of rows', () => {
  it("gives the reference's loss and gradients when the batch's rows run at most 7 at a time", async () => {
    const trainer = await Trainer.from_pretrained(TINY_RANDOM, { ...options(null), threads: 1, loss_chunk_rows: 7 });
    try {
      expect(reference.batch.input_ids.flat().length).toBeGreaterThan(2 * 7);
      const { loss } = await trainer.step(reference.batch);
      expect(Math.abs(loss - reference.no_clip.step1.loss)).toBeLessThan(tolerance.loss);
      expect(compare(trainer.gradients(), reference.grad).plain).toBeLessThan(tolerance.grad_abs);
    } finally {
      await trainer.dispose();
    }
  });
});
