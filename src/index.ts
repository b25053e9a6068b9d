export { AutoTokenizer, GPT2Tokenizer, TokenizerError } from './tokenizer/index.js';
export { ConfigError, type DecoderSession, type Float32Tensor, type ForwardInput, type GPTNeoConfig, InputError, type LogitsOutput } from './model/index.js';
export { type FromPretrainedOptions, WEIGHT_FORMATS, type WeightFormat, WeightMismatchError } from './convert/index.js';
export { type GenerateArguments, GPTNeoForCausalLM, GPTNeoForQuestionAnswering, GPTNeoForSequenceClassification, GPTNeoForTokenClassification, GPTNeoModel, AutoModel, type GPTNeoAnyModel, type BaseModelOutput, type HiddenStatesInput, type QuestionAnsweringOutput, type SequenceClassifierOutput, type TokenClassifierOutput } from './modeling/index.js';
export {
  GenerationError,
  type GenerationConfig,
  TextIteratorStreamer,
  TextStreamer,
  type TokenStreamer,
} from './generation/index.js';
export { compileConstraint, Constraint, ConstraintError, type ConstraintSpec, ConstraintState, tokenizerVocabulary, TokenVocabulary } from './constraints/index.js';
export { pipeline, type TextGenerationOptions, type TextGenerationOutput, type TextGenerationPipeline } from './pipeline/index.js';
export {
  type FeatureExtractionOptions,
  type FeatureExtractionPipeline,
  type PipelineOptions,
  type PipelineTask,
  type Pooling,
  type TextClassificationOptions,
  type TextClassificationOutput,
  type TextClassificationPipeline,
} from './pipeline/index.js';
export { HubError, type HubOptions, resolveModelFolder } from './hub/index.js';
export { CheckpointError, openCheckpoint } from './weights/index.js';
export {
  defaultEvalDataDir,
  EvalDataError,
  type EvalResults,
  evaluate,
  type EvaluateOptions,
  formatResultsTable,
  TASK_NAMES,
} from './eval/index.js';
export {
  type CacheEntry,
  type CacheReport,
  findEntries,
  pruneCaches,
  type PruneOptions,
  removeEntry,
  scanCaches,
} from './cache/index.js';
export { createServer, type EmbeddingPooling, type GPTNeoServer, type ServeOptions } from './serve/index.js';
export {
  type StepResult,
  train,
  Trainer,
  type TrainerOptions,
  type TrainingArguments,
  type TrainingBatch,
  TrainingInputError,
  type TrainingResult,
} from './train/index.js';
