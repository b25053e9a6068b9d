export {
  pipeline,
  type PipelineOptions,
  type TextGenerationOptions,
  type TextGenerationOutput,
  type TextGenerationPipeline,
  textGenerationPipeline,
} from './text-generation.js';
