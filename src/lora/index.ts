// LoRA in one place, laid out as PEFT's tuners/lora: the config and its JSON, the layer's maths, the files.
export { ADAPTER_WEIGHTS_FILE, withLoraAdapter, writeAdapter } from './adapter-files.js';
export { DEFAULT_TARGET_MODULES, type LoraConfig, loraConfig, loraConfigProblem, type LoraOptions } from './config.js';
export { adapterTarget, appendLoraUpdate, initialLoraMatrix, loraDropoutMask, loraScaling, loraTensorName } from './layer.js';
