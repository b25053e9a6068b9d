export {
  type FeatureExtractionOptions,
  type FeatureExtractionPipeline,
  featureExtractionPipeline,
  pooledVector,
  type Pooling,
} from './feature-extraction.js';
export { MAX_SCORES_PER_HEAD, padRows } from './batch.js';
export { pipeline, type PipelineOptions, type PipelineTask } from './pipeline.js';
export {
  type ScoreFunction,
  type TextClassificationOptions,
  type TextClassificationOutput,
  type TextClassificationPipeline,
  textClassificationPipeline,
} from './text-classification.js';
export {
  type TextGenerationOptions,
  type TextGenerationOutput,
  type TextGenerationPipeline,
  textGenerationPipeline,
} from './text-generation.js';
