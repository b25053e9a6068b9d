export { HIDDEN, attentionBias, attentionWindow, type BiasRow } from './attention-bias.js';
export { KVCache, type KVCacheOptions, KVRow, type RowInput } from './cache.js';
export { KVSession } from './session.js';
