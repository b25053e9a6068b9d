export { ConfigError, type GPTNeoConfig, loadConfig, parseConfig } from './config.js';
export { InputError } from './decoder-session.js';
export { KVSlot, KVSlotPool, type SlotInput } from './kv-slots.js';
export {
  causalLMLoss,
  type CausalLMOutput,
  type FromPretrainedOptions,
  type GenerateArguments,
  GPTNeoForCausalLM,
} from './modeling.js';
export { checkpointParameters, type Float32Kernel, LINEAR_BYTES_PER_PARAMETER, WEIGHT_FORMATS, WeightMismatchError, type WeightFormat } from './parameters.js';
export type { DecoderSession, Float32Tensor, ForwardInput, LogitsOutput } from './types.js';
export { CAUSAL_LM_VARIANT, type OnnxModel, prepareOnnxModel } from './convert.js';
export { type CachedConversion, conversionsDir, listConversions, removeConversion } from './conversion-cache.js';
export {
  type BaseModelOutput,
  GPTNeoForQuestionAnswering,
  GPTNeoForSequenceClassification,
  GPTNeoForTokenClassification,
  GPTNeoModel,
  type HiddenStatesInput,
  pooledTokens,
  type QuestionAnsweringOutput,
  type SequenceClassifierOutput,
  type TokenClassifierOutput,
} from './heads.js';
export { AutoModel, type GPTNeoAnyModel } from './auto.js';
