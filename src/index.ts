export { AutoTokenizer, GPT2Tokenizer, TokenizerError } from './tokenizer/index.js';
export {
  ConfigError,
  type DecoderSession,
  type Float32Tensor,
  type ForwardInput,
  type FromPretrainedOptions,
  type GenerateArguments,
  type GPTNeoConfig,
  GPTNeoForCausalLM,
  InputError,
  type LogitsOutput,
  WEIGHT_FORMATS,
  type WeightFormat,
  WeightMismatchError,
} from './model/index.js';
export {
  GenerationError,
  type GenerationConfig,
  TextIteratorStreamer,
  TextStreamer,
  type TokenStreamer,
} from './generation/index.js';
export { pipeline, type TextGenerationOptions, type TextGenerationOutput, type TextGenerationPipeline } from './pipeline/index.js';
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
  type StepResult,
  train,
  Trainer,
  type TrainerOptions,
  type TrainingArguments,
  type TrainingBatch,
  TrainingInputError,
  type TrainingResult,
} from './train/index.js';
