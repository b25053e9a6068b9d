import { loadConfig } from '../model/config.js';
import {
  GPTNeoForQuestionAnswering,
  GPTNeoForSequenceClassification,
  GPTNeoForTokenClassification,
  GPTNeoModel,
} from './heads.js';
import type { FromPretrainedOptions } from '../convert/load.js';
import { GPTNeoForCausalLM } from './causal-lm.js';

/** The classes a config.json's `architectures` may name, by transformers' class names. */
const ARCHITECTURES = {
  GPTNeoForCausalLM,
  GPTNeoModel,
  GPTNeoForSequenceClassification,
  GPTNeoForTokenClassification,
  GPTNeoForQuestionAnswering,
};

export type GPTNeoAnyModel = Awaited<ReturnType<(typeof ARCHITECTURES)[keyof typeof ARCHITECTURES]['from_pretrained']>>;

/**
 * Loads a folder as the class its config.json names first in `architectures` (what save_pretrained recorded),
 * so a fine-tuned head comes back with its head; without a known name, as the bare GPTNeoModel, like
 * transformers' AutoModel. (transformers' AutoModel itself always gives the bare model.)
 */
export const AutoModel = {
  async from_pretrained(folder: string, options: FromPretrainedOptions = {}): Promise<GPTNeoAnyModel> {
    const { architectures } = await loadConfig(folder);
    const name = architectures.find((a): a is keyof typeof ARCHITECTURES => Object.hasOwn(ARCHITECTURES, a));
    return (name ? ARCHITECTURES[name] : GPTNeoModel).from_pretrained(folder, options);
  },
};
