export { checkpointParameters, type Float32Kernel, LINEAR_BYTES_PER_PARAMETER, WEIGHT_FORMATS, WeightMismatchError, type WeightFormat } from './parameters.js';
export { CAUSAL_LM_VARIANT, type OnnxModel, prepareOnnxModel } from './convert.js';
export { type CachedConversion, conversionsDir, listConversions, removeConversion } from './conversion-cache.js';
export { closeConvertedModel, type ConvertedModel, type FromPretrainedOptions, openConvertedModel } from './load.js';
