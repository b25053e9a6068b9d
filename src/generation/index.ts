export { generate, generateOutput, type GenerateModel, type GenerateOutput, type GenerateRequest } from './generate.js';
export { TokenChooser, tokenScores, type TokenLogprob, type TokenScores } from './choose.js';
export { createRandom } from './sampling.js';
export { resolveGenerationConfig, type ResolvedGenerationConfig } from './config.js';
export { StopStringMatcher } from './stopping.js';
export type { LogitsProcessor, RowHistory } from './logits-process.js';
export { GenerationError, validateGenerationConfig, type GenerationConfig } from './config.js';
export type { Decode } from './stopping.js';
export { TextIteratorStreamer, TextStreamer, type TextStreamerOptions, type TokenStreamer } from './streamer.js';
