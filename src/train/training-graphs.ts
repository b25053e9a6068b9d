// The training graphs of a model, opened in ONNX Runtime: the forward pass, the head with the loss, and the
// block graphs (see graph.ts for what each computes).
import type { LoraConfig } from '../lora/index.js';
import type { GPTNeoConfig } from '../model/config.js';
import { GraphBuilder } from '../onnx/graph.js';
import { OrtTensor } from '../runtime/session.js';
import type { Checkpoint } from '../weights/index.js';
import { TrainingInputError } from './errors.js';
import { buildBlockTrainingGraph, buildHeadTrainingGraph, buildResidualStreamGraph, TRAIN_IO } from './graph.js';
import { type TrainableTensor, type TrainingParameters, trainingParameters } from './parameters.js';
import { GraphSession } from './sessions.js';

/** A graph with a backward pass, and the parameters it gives gradients for (by the names of its inputs). */
export interface BackwardGraph {
  session: GraphSession;
  trainable: TrainableTensor[];
}

/** The pieces a training step runs (see graph.ts), and what they take. */
export interface TrainingGraphs {
  /** Embeddings and every block: the residual stream entering each block. */
  forward: GraphSession;
  /** ln_f, the LM head and the loss over a chunk of rows, with their backward. */
  head: BackwardGraph;
  /** Per layer: the block graph it runs, and the layer whose parameter names that graph's inputs carry. */
  blocks: Array<BackwardGraph & { template: number }>;
  /** In Hugging Face's named_parameters() order (PEFT's for LoRA). */
  trainable: TrainableTensor[];
  frozen: Array<{ name: string; shape: number[] }>;
  dropoutMasks: Array<{ name: string; features: number }>;
}

/**
 * Builds and opens the training graphs: the forward pass, the head, and one block graph per distinct block
 * layout (which linear layers carry an adapter), which every block of that layout runs, global or local
 * (each ONNX Runtime session keeps its own memory arena, so fewer sessions hold less).
 */
export async function openTrainingGraphs(
  config: GPTNeoConfig,
  checkpoint: Checkpoint,
  lora: LoraConfig | undefined,
  threads: number | undefined,
): Promise<TrainingGraphs> {
  const build = (buildGraph: (g: GraphBuilder, params: TrainingParameters) => void) => {
    const g = new GraphBuilder();
    const params = trainingParameters(g, config, checkpoint, lora);
    buildGraph(g, params);
    return { g, params };
  };
  const forward = build((g, params) => buildResidualStreamGraph(g, config, params));
  const head = build((g, params) => buildHeadTrainingGraph(g, config, params));
  if (lora) {
    const matched = new Set([...forward.params.matchedTargets, ...head.params.matchedTargets]);
    const unmatched = lora.target_modules.filter((target) => !matched.has(target));
    if (unmatched.length > 0) {
      throw new TrainingInputError(
        `LoRA target module(s) ${unmatched.map((t) => `'${t}'`).join(', ')} name no linear layer of the model ` +
          `(GPT-Neo has q_proj, k_proj, v_proj, out_proj, c_fc, c_proj)`,
      );
    }
  }
  const layout = (layer: number) => {
    const prefix = `transformer.h.${layer}.`;
    const adapted = forward.params.adaptedModules.filter((module) => module.startsWith(prefix)).map((module) => module.slice(prefix.length));
    return adapted.join();
  };
  const templates = new Map<string, number>();
  for (let layer = 0; layer < config.num_layers; layer++) if (!templates.has(layout(layer))) templates.set(layout(layer), layer);

  const opened: GraphSession[] = [];
  const open = async (g: GraphBuilder) => {
    const session = await GraphSession.create(g, threads);
    opened.push(session);
    return session;
  };
  try {
    const blockGraphs = new Map<number, BackwardGraph>();
    for (const template of templates.values()) {
      const block = build((g, params) => buildBlockTrainingGraph(g, config, params, template));
      blockGraphs.set(template, { session: await open(block.g), trainable: block.params.trainable });
    }
    const unique = <T extends { name: string }>(list: T[]) => [...new Map(list.map((item) => [item.name, item])).values()];
    return {
      forward: await open(forward.g),
      head: { session: await open(head.g), trainable: head.params.trainable },
      blocks: Array.from({ length: config.num_layers }, (_, layer) => {
        const template = templates.get(layout(layer))!;
        return { ...blockGraphs.get(template)!, template };
      }),
      trainable: unique([...forward.params.trainable, ...head.params.trainable]),
      frozen: unique([...forward.params.frozen, ...head.params.frozen]),
      dropoutMasks: [...forward.params.dropoutMasks, ...head.params.dropoutMasks],
    };
  } catch (error) {
    for (const session of opened) await session.release();
    throw error;
  }
}

/** A block graph's input or output name for the block it runs: layer `template`'s parameter names become layer `layer`'s. */
function atLayer(name: string, template: number, layer: number): string {
  return template === layer ? name : name.replace(`.h.${template}.`, `.h.${layer}.`);
}

/**
 * A graph input's value for one run: a model input, a parameter or a dropout mask. Block graphs carry layer
 * `template`'s names and run for `layer`; the head runs over rows [first, end) of the batch.
 */
export type Feed = (input: string, template?: number, layer?: number, first?: number, end?: number) => OrtTensor;

/** The feed of a micro-batch: its model inputs, else its dropout masks (by graph input), else `parameter(name)`. */
export function graphFeed(
  batch: { rows: number; modelInputs: Record<string, OrtTensor> },
  masks: ReadonlyMap<string, Float32Array>,
  parameter: (name: string) => OrtTensor | undefined,
): Feed {
  const { rows, modelInputs } = batch;
  return (input, template = 0, layer = 0, first = 0, end = rows) => {
    const tensor = modelInputs[input];
    if (tensor) return tensor;
    const name = atLayer(input, template, layer);
    const mask = masks.get(name);
    if (mask) return new OrtTensor('float32', mask.subarray(first * (mask.length / rows), end * (mask.length / rows)), [end - first, mask.length / rows]);
    const value = parameter(name);
    if (!value) throw new Error(`training graph input '${input}' has no value`);
    return value;
  };
}

/**
 * Adds a backward graph's gradient outputs into the step's sums (the first one of each is taken as it is), named
 * for the layer the graph ran for.
 */
export function collectGradients(
  gradients: Map<string, Float32Array>,
  outputs: Record<string, OrtTensor>,
  graph: BackwardGraph,
  template = 0,
  layer = 0,
): void {
  for (const { name } of graph.trainable) {
    const part = outputs[TRAIN_IO.gradient(name)]!.data as Float32Array;
    const total = gradients.get(atLayer(name, template, layer));
    if (!total) gradients.set(atLayer(name, template, layer), part);
    else for (let i = 0; i < total.length; i++) total[i]! += part[i]!;
  }
}

export async function releaseTrainingGraphs({ forward, head, blocks }: TrainingGraphs): Promise<void> {
  for (const session of new Set([forward, head.session, ...blocks.map((block) => block.session)])) await session.release();
}
