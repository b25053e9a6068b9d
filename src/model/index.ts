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
export { checkpointParameters, LINEAR_BYTES_PER_PARAMETER, WEIGHT_FORMATS, WeightMismatchError, type WeightFormat } from './parameters.js';
export type { DecoderSession, Float32Tensor, ForwardInput, LogitsOutput } from './types.js';
