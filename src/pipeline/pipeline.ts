import { type HubOptions, resolveModelFolder } from '../hub/index.js';
import { type FromPretrainedOptions, type WeightFormat } from '../convert/index.js';
import { GPTNeoForCausalLM, GPTNeoForSequenceClassification, GPTNeoModel } from '../modeling/index.js';
import { AutoTokenizer } from '../tokenizer/index.js';
import { type FeatureExtractionPipeline, featureExtractionPipeline } from './feature-extraction.js';
import { type TextClassificationPipeline, textClassificationPipeline } from './text-classification.js';
import { type TextGenerationPipeline, textGenerationPipeline } from './text-generation.js';

export interface PipelineOptions extends Omit<HubOptions, 'progress'> {
  dtype?: WeightFormat;
  threads?: number;
  /** Download progress bars on a terminal (default true). */
  progress?: boolean;
}

/** transformers' task names ('sentiment-analysis' is its alias of 'text-classification'). */
const TASKS = ['text-generation', 'feature-extraction', 'text-classification', 'sentiment-analysis'] as const;

export type PipelineTask = (typeof TASKS)[number];

/** transformers' pipeline(): a task, a Hub id or local folder, and the model's tokenizer, ready to call. */
export async function pipeline(task: 'text-generation', model: string, options?: PipelineOptions): Promise<TextGenerationPipeline>;
export async function pipeline(task: 'feature-extraction', model: string, options?: PipelineOptions): Promise<FeatureExtractionPipeline>;
export async function pipeline(
  task: 'text-classification' | 'sentiment-analysis',
  model: string,
  options?: PipelineOptions,
): Promise<TextClassificationPipeline>;
export async function pipeline(task: PipelineTask, modelIdOrFolder: string, options: PipelineOptions = {}) {
  if (!TASKS.includes(task)) {
    throw new Error(`pipeline task '${task as string}' is not supported (choose one of ${TASKS.join(', ')})`);
  }
  const { dtype, threads, ...hub } = options;
  const folder = await resolveModelFolder(modelIdOrFolder, hub);
  const tokenizer = await AutoTokenizer.from_pretrained(folder);
  const load: FromPretrainedOptions = { dtype, threads };
  switch (task) {
    case 'text-generation':
      return textGenerationPipeline(await GPTNeoForCausalLM.from_pretrained(folder, load), tokenizer);
    case 'feature-extraction':
      return featureExtractionPipeline(await GPTNeoModel.from_pretrained(folder, load), tokenizer);
    case 'text-classification':
    case 'sentiment-analysis':
      return textClassificationPipeline(await GPTNeoForSequenceClassification.from_pretrained(folder, load), tokenizer);
  }
}
