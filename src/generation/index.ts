export { generate, type GenerateModel, type GenerateRequest } from './generate.js';
export { GenerationError, validateGenerationConfig, type GenerationConfig } from './config.js';
export type { Decode } from './stopping.js';
export { TextIteratorStreamer, TextStreamer, type TextStreamerOptions, type TokenStreamer } from './streamer.js';
