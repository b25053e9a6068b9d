import type { ModelFiles } from '../util/model-files.js';
import { localModelFiles } from '../weights/index.js';

export type AttentionType = 'global' | 'local';

/** GPTNeoConfig as Hugging Face reads config.json, with the derived values resolved. */
export interface GPTNeoConfig {
  vocab_size: number;
  max_position_embeddings: number;
  hidden_size: number;
  num_layers: number;
  num_heads: number;
  /** One entry per layer. */
  attention_layers: AttentionType[];
  /** MLP inner width (config null means 4 * hidden_size). */
  intermediate_size: number;
  window_size: number;
  layer_norm_epsilon: number;
  activation_function: 'gelu_new';
  bos_token_id: number | null;
  eos_token_id: number | null;
  pad_token_id: number | null;
  /** lm_head shares transformer.wte.weight (true in every GPT-Neo release). */
  tie_word_embeddings: boolean;
  /** Defaults for pipelines, e.g. { 'text-generation': { do_sample: true, max_length: 50 } }. */
  task_specific_params: Record<string, Record<string, unknown>>;
  /** Model classes the checkpoint was saved from, e.g. ['GPTNeoForSequenceClassification']. */
  architectures: string[];
  /** Labels of a classification head: id2label decides num_labels (HF default: LABEL_0, LABEL_1). */
  num_labels: number;
  id2label: Record<number, string>;
  label2id: Record<string, number>;
  /** 'single_label_classification' (softmax), 'multi_label_classification' (sigmoid) or null. */
  problem_type: string | null;
}

export class ConfigError extends Error {}

const DEFAULTS = {
  vocab_size: 50257,
  max_position_embeddings: 2048,
  hidden_size: 2048,
  num_layers: 24,
  num_heads: 16,
  attention_types: [[['global', 'local'], 12]],
  window_size: 256,
  layer_norm_epsilon: 1e-5,
  activation_function: 'gelu_new',
  bos_token_id: 50256,
  eos_token_id: 50256,
};

export async function loadConfig(folder: string | ModelFiles): Promise<GPTNeoConfig> {
  const files = typeof folder === 'string' ? localModelFiles(folder) : folder;
  const file = files.describe('config.json');
  let text: string;
  try {
    text = await files.readText('config.json');
  } catch {
    throw new ConfigError(`${file}: not found (a GPT-Neo model folder needs config.json)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ConfigError(`${file}: not valid JSON (${(error as Error).message})`);
  }
  return parseConfig(json, file);
}

/** Reads config.json the way GPTNeoConfig does, including attribute aliases and attention_types expansion. */
export function parseConfig(json: unknown, source = 'config.json'): GPTNeoConfig {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new ConfigError(`${source}: expected a JSON object`);
  }
  const raw = json as Record<string, unknown>;
  const fail = (field: string, expected: string): never => {
    throw new ConfigError(`${source}: field '${field}' must be ${expected}, got ${JSON.stringify(raw[field])}`);
  };
  if (raw.model_type !== undefined && raw.model_type !== 'gpt_neo') fail('model_type', '"gpt_neo"');

  const integer = (field: string, alias?: string, fallback?: number): number => {
    const value = raw[field] ?? (alias ? raw[alias] : undefined) ?? fallback;
    if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) return fail(field, 'a positive integer');
    return value;
  };
  const tokenId = (field: string, fallback: number | null): number | null => {
    const value = field in raw ? raw[field] : fallback;
    if (value === null || value === undefined) return null;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) return fail(field, 'a token id or null');
    return value;
  };

  const hidden_size = integer('hidden_size', 'n_embd', DEFAULTS.hidden_size);
  const num_layers = integer('num_layers', 'num_hidden_layers', DEFAULTS.num_layers);
  const num_heads = integer('num_heads', 'num_attention_heads', DEFAULTS.num_heads);
  if (hidden_size % num_heads !== 0) {
    throw new ConfigError(`${source}: hidden_size ${hidden_size} is not divisible by num_heads ${num_heads}`);
  }
  const activation = raw.activation_function ?? DEFAULTS.activation_function;
  if (activation !== 'gelu_new') {
    throw new ConfigError(
      `${source}: activation_function ${JSON.stringify(activation)} is not supported (GPT-Neo uses "gelu_new")`,
    );
  }
  const epsilon = raw.layer_norm_epsilon ?? DEFAULTS.layer_norm_epsilon;
  if (typeof epsilon !== 'number' || !(epsilon > 0)) fail('layer_norm_epsilon', 'a positive number');
  const inner = raw.intermediate_size;
  if (inner !== null && inner !== undefined && (typeof inner !== 'number' || !Number.isInteger(inner) || inner <= 0)) {
    fail('intermediate_size', 'a positive integer or null');
  }

  // GPTNeoConfig expands attention_types, then PretrainedConfig sets remaining kwargs, so an explicit
  // attention_layers list in the JSON wins.
  const attention_layers =
    raw.attention_layers !== undefined
      ? parseAttentionLayers(raw.attention_layers, source)
      : expandAttentionTypes(raw.attention_types ?? DEFAULTS.attention_types, source);
  if (attention_layers.length !== num_layers) {
    throw new ConfigError(
      `${source}: attention layers describe ${attention_layers.length} layers but num_layers is ${num_layers}`,
    );
  }
  const params = raw.task_specific_params;
  return {
    vocab_size: integer('vocab_size', undefined, DEFAULTS.vocab_size),
    max_position_embeddings: integer('max_position_embeddings', 'n_positions', DEFAULTS.max_position_embeddings),
    hidden_size,
    num_layers,
    num_heads,
    attention_layers,
    intermediate_size: typeof inner === 'number' ? inner : 4 * hidden_size,
    window_size: integer('window_size', undefined, DEFAULTS.window_size),
    layer_norm_epsilon: epsilon as number,
    activation_function: 'gelu_new',
    bos_token_id: tokenId('bos_token_id', DEFAULTS.bos_token_id),
    eos_token_id: tokenId('eos_token_id', DEFAULTS.eos_token_id),
    pad_token_id: tokenId('pad_token_id', null),
    tie_word_embeddings: raw.tie_word_embeddings !== false,
    task_specific_params:
      typeof params === 'object' && params !== null ? (params as Record<string, Record<string, unknown>>) : {},
    architectures: Array.isArray(raw.architectures) ? raw.architectures.filter((a): a is string => typeof a === 'string') : [],
    ...parseLabels(raw, fail),
  };
}

/**
 * PretrainedConfig's labels: id2label when given (its keys are strings in JSON; it wins over num_labels, as
 * in transformers), otherwise num_labels (default 2) names them LABEL_i; label2id defaults to the inverse.
 */
function parseLabels(raw: Record<string, unknown>, fail: (field: string, expected: string) => never) {
  const given = raw.id2label;
  let id2label: Record<number, string>;
  if (given !== undefined && given !== null) {
    if (typeof given !== 'object' || Array.isArray(given)) return fail('id2label', 'an object of label id -> name');
    id2label = {};
    for (const [key, label] of Object.entries(given)) {
      const id = Number(key);
      if (!Number.isInteger(id) || id < 0 || typeof label !== 'string') return fail('id2label', 'an object of label id -> name');
      id2label[id] = label;
    }
    const ids = Object.keys(id2label).map(Number);
    if (ids.length === 0 || ids.some((id) => id >= ids.length)) fail('id2label', 'ids 0 .. num_labels - 1');
  } else {
    const count = raw.num_labels ?? 2;
    if (typeof count !== 'number' || !Number.isInteger(count) || count <= 0) return fail('num_labels', 'a positive integer');
    id2label = Object.fromEntries(Array.from({ length: count }, (_, i) => [i, `LABEL_${i}`]));
  }
  const label2id =
    typeof raw.label2id === 'object' && raw.label2id !== null && !Array.isArray(raw.label2id)
      ? (raw.label2id as Record<string, number>)
      : Object.fromEntries(Object.entries(id2label).map(([id, label]) => [label, Number(id)]));
  const problem = raw.problem_type;
  if (problem !== undefined && problem !== null && typeof problem !== 'string') fail('problem_type', 'a string or null');
  return { num_labels: Object.keys(id2label).length, id2label, label2id, problem_type: (problem as string | undefined) ?? null };
}

function expandAttentionTypes(types: unknown, source: string): AttentionType[] {
  const malformed = () =>
    new ConfigError(`${source}: field 'attention_types' must look like [[["global","local"], 12]]`);
  if (!Array.isArray(types)) throw malformed();
  const layers: AttentionType[] = [];
  for (const entry of types) {
    if (!Array.isArray(entry) || entry.length !== 2 || !Number.isInteger(entry[1]) || entry[1] < 0) throw malformed();
    const [pattern, repeat] = entry as [unknown, number];
    const kinds = parseAttentionLayers(pattern, source, 'attention_types');
    for (let i = 0; i < repeat; i++) layers.push(...kinds);
  }
  return layers;
}

function parseAttentionLayers(list: unknown, source: string, field = 'attention_layers'): AttentionType[] {
  if (!Array.isArray(list) || list.some((kind) => kind !== 'global' && kind !== 'local')) {
    throw new ConfigError(`${source}: field '${field}' must list only "global" and "local"`);
  }
  return list as AttentionType[];
}
