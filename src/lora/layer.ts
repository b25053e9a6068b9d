// A LoRA layer, as PEFT's lora.Linear: a frozen linear layer y = x W^T + b gets a trainable low-rank update,
// y + scaling B A x with A [r, in] and B [out, r]. Its maths lives here once, for the training graph (the update
// as ONNX nodes), for initialisation and dropout, and for inference (the update merged into W).
import type { GraphBuilder } from '../onnx/graph.js';
import type { LoraConfig } from './config.js';

/** PEFT's tensor name for a module's A or B matrix (the adapter name 'default' is left out, as PEFT saves it). */
export function loraTensorName(module: string, matrix: 'A' | 'B'): string {
  return `base_model.model.${module}.lora_${matrix}.weight`;
}

/** The target of `config` that gives `module` an adapter (PEFT: the module's name, or its last dotted parts). */
export function adapterTarget(module: string, config: LoraConfig): string | undefined {
  return config.target_modules.find((target) => module === target || module.endsWith(`.${target}`));
}

/** alpha / r, or alpha / sqrt(r) with rank-stabilised LoRA (use_rslora). */
export function loraScaling(r: number, alpha: number, useRslora = false): number {
  return useRslora ? alpha / Math.sqrt(r) : alpha / r;
}

/**
 * PEFT's initialisation (init_lora_weights = true): A is kaiming_uniform_(a = sqrt(5)), whose bound
 * gain * sqrt(3 / fan_in) with gain sqrt(2 / (1 + a^2)) is 1 / sqrt(fan_in); B is zero, so training starts
 * from the base model exactly.
 */
export function initialLoraMatrix(matrix: 'A' | 'B', shape: readonly number[], random: { next(): number }): Float32Array {
  const values = new Float32Array(shape.reduce((a, b) => a * b, 1));
  if (matrix === 'B') return values;
  const bound = 1 / Math.sqrt(shape[1]!);
  for (let i = 0; i < values.length; i++) values[i] = (random.next() * 2 - 1) * bound;
  return values;
}

/** Inverted dropout of the adapter's input: each element 0, or 1 / (1 - p) to keep the expectation. */
export function loraDropoutMask(size: number, p: number, random: { next(): number } | undefined): Float32Array {
  const keep = 1 - p;
  const mask = new Float32Array(size).fill(1);
  if (random) for (let i = 0; i < mask.length; i++) mask[i] = random.next() < keep ? 1 / keep : 0;
  return mask;
}

/**
 * Adds the adapter to a linear layer's output `y` in a graph: y + scaling lora_B(lora_A(dropout(x))), as PEFT
 * computes it (the dropout mask, when given, is an input drawn by the caller).
 */
export function appendLoraUpdate(
  g: GraphBuilder,
  adapter: { x: string; y: string; a: string; b: string; dropoutMask?: string; scaling: number },
): string {
  const adapterInput = adapter.dropoutMask ? g.node('Mul', [adapter.x, adapter.dropoutMask]) : adapter.x;
  const update = g.node('Gemm', [g.node('Gemm', [adapterInput, adapter.a], { transB: 1 }), adapter.b], { transB: 1 });
  return g.node('Add', [adapter.y, g.node('Mul', [update, g.constFloat(adapter.scaling)])]);
}

/**
 * W += scaling B A in place, as PEFT's merge_and_unload: B A is computed in float64 row by row and rounded once,
 * so the merged weight is the nearest float32 to the exact sum.
 */
export function mergeLoraIntoWeight(weight: Float32Array, adapter: { a: Float32Array; b: Float32Array; r: number }, scaling: number): void {
  const { a, b, r } = adapter;
  const inFeatures = a.length / r;
  const row = new Float64Array(inFeatures);
  for (let o = 0; o < weight.length / inFeatures; o++) {
    row.fill(0);
    for (let k = 0; k < r; k++) {
      const coefficient = b[o * r + k]!;
      for (let i = 0; i < inFeatures; i++) row[i]! += coefficient * a[k * inFeatures + i]!;
    }
    for (let i = 0; i < inFeatures; i++) weight[o * inFeatures + i]! += scaling * row[i]!;
  }
}
