export { type AttentionType, ConfigError, type GPTNeoConfig, loadConfig, parseConfig } from './config.js';
export { checkForwardInput, checkRectangle, checkTokenIds, type CheckedInput, InputError } from './errors.js';
export {
  buildGPTNeoGraph,
  GRAPH_FORMAT_VERSION,
  type GraphOptions,
  type GraphVariant,
  IO,
  type ModelSlice,
  type ParameterSource,
} from './gpt-neo.js';
export type { DecoderSession, Float32Tensor, ForwardInput, LogitsOutput, TokenEmbeddings } from './types.js';
