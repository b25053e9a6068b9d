export { AutoTokenizer } from './auto.js';
export { TokenizerError } from './errors.js';
export {
  GPT2Tokenizer,
  type AddedToken,
  type DecodeOptions,
  type SpecialTokenSpec,
  type TokenizerConfig,
} from './gpt2-tokenizer.js';
