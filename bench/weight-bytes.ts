// The modules alone, not internals.js: run.ts loads this file, and its start-up time is measured.
import { LINEAR_BYTES_PER_PARAMETER, type WeightFormat } from '../src/convert/index.js';
import type { GPTNeoConfig } from '../src/model/index.js';

/**
 * Bytes of weights one decoded token reads (every linear layer and the head) and bytes of all weights the model
 * holds, for a GPT-Neo config in a weight format.
 */
export function weightBytes(config: GPTNeoConfig, dtype: WeightFormat): { perToken: number; total: number } {
  const { hidden_size: C, intermediate_size: I, num_layers: L, vocab_size: V, max_position_embeddings: P } = config;
  const blockParams = L * (4 * C * C + 2 * C * I);
  const headParams = V * C;
  // q8 also reads 64 float32 rows of the head per token (0.5 MB for the 1.3B), left out here.
  const perToken = LINEAR_BYTES_PER_PARAMETER[dtype] * (blockParams + headParams);
  // Plus the position embeddings, and for q8 and q4 the float32 token embeddings next to the quantized head.
  return { perToken, total: perToken + 4 * P * C + (dtype === 'fp32' ? 0 : 4 * headParams) };
}
