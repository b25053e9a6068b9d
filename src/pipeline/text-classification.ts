import type { GPTNeoForSequenceClassification } from '../modeling/index.js';
import type { GPT2Tokenizer } from '../tokenizer/index.js';
import { encodeTexts, inBatches, padRows } from './batch.js';

export type ScoreFunction = 'softmax' | 'sigmoid' | 'none';

export interface TextClassificationOptions {
  /** How many labels to return, best first (null: all); see the call signatures for the output shape. */
  top_k?: number | null;
  /** Default as transformers: sigmoid for one label or multi-label problems, softmax otherwise. */
  function_to_apply?: ScoreFunction;
  /** Texts per forward pass (default 8) when the model has a pad token; without one each text runs alone. */
  batch_size?: number;
}

export interface TextClassificationOutput {
  label: string;
  score: number;
}

type WithTopK = TextClassificationOptions & { top_k: number | null };
type WithoutTopK = Omit<TextClassificationOptions, 'top_k'>;

/**
 * The text-classification pipeline, shaped as transformers returns it: without top_k, the best label of each
 * text ([{ label, score }] for one text, one entry per text for a list); with top_k, a list per text.
 */
export interface TextClassificationPipeline {
  (text: string, options?: WithoutTopK): Promise<TextClassificationOutput[]>;
  (text: string, options: WithTopK): Promise<TextClassificationOutput[]>;
  (texts: string[], options?: WithoutTopK): Promise<TextClassificationOutput[]>;
  (texts: string[], options: WithTopK): Promise<TextClassificationOutput[][]>;
  readonly model: GPTNeoForSequenceClassification;
  readonly tokenizer: GPT2Tokenizer;
  dispose(): Promise<void>;
}

export function textClassificationPipeline(model: GPTNeoForSequenceClassification, tokenizer: GPT2Tokenizer): TextClassificationPipeline {
  const { num_labels, id2label, problem_type, pad_token_id } = model.config;
  const defaultFunction: ScoreFunction = problem_type === 'multi_label_classification' || num_labels === 1 ? 'sigmoid' : 'softmax';

  async function classify(input: string | string[], options: TextClassificationOptions = {}) {
    const { function_to_apply = defaultFunction, batch_size = 8 } = options;
    const topK = options.top_k === undefined ? 1 : (options.top_k ?? num_labels);
    if (!Number.isInteger(topK) || topK < 1) throw new Error(`top_k must be a positive integer or null, got ${options.top_k}`);
    if (!['softmax', 'sigmoid', 'none'].includes(function_to_apply)) {
      throw new Error(`function_to_apply '${function_to_apply}' is not supported (choose softmax, sigmoid or none)`);
    }
    const encoded = encodeTexts(tokenizer, Array.isArray(input) ? input : [input], 'text', 'to classify');
    // The model reads each row at its last token that is not pad_token_id, so rows are right-padded with exactly
    // that id. Without one, HF refuses a batch, and its pipeline runs texts one at a time: so does this one.
    const logits = await inBatches(encoded, pad_token_id === null ? 1 : batch_size, async (rows) => {
      const out = await model.forward(padRows(rows, pad_token_id ?? 0, 'right'));
      return rows.map((_, b) => Array.from(out.logits.data.subarray(b * num_labels, (b + 1) * num_labels)));
    });
    const ranked = logits.map((row) =>
      scores(row, function_to_apply)
        .map((score, id) => ({ label: id2label[id]!, score }))
        .sort((a, b) => b.score - a.score)
        .slice(0, topK),
    );
    if (options.top_k === undefined) return ranked.map((labels) => labels[0]!);
    return Array.isArray(input) ? ranked : ranked[0]!;
  }

  return Object.assign(classify as TextClassificationPipeline, { model, tokenizer, dispose: () => model.dispose() });
}

function scores(logits: number[], fn: ScoreFunction): number[] {
  if (fn === 'sigmoid') return logits.map((x) => 1 / (1 + Math.exp(-x)));
  if (fn === 'none') return logits;
  const max = Math.max(...logits);
  const exps = logits.map((x) => Math.exp(x - max));
  const sum = exps.reduce((a, b) => a + b, 0);
  return exps.map((e) => e / sum);
}
