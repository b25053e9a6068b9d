export { HIDDEN, attentionBias, attentionWindow, type BiasRow } from './attention-bias.js';
export { KVCache, type KVCacheOptions, KVRow, type RowInput, type SlotBlock } from './cache.js';
export { BLOCK_TOKENS, PrefixCache, type PrefixCacheStats } from './prefix-cache.js';
export { KVSession } from './session.js';
