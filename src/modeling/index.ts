export { causalLMLoss, type CausalLMOutput, type GenerateArguments, GPTNeoForCausalLM } from './causal-lm.js';
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
