// The embedding lookups run in JavaScript, outside the graphs (which take inputs_embeds): the forward copies
// rows of wte, the backward adds the gradient of the stream entering block 0 back into the rows looked up.
import { IO } from '../model/gpt-neo.js';

const POSITION_EMBEDDINGS = 'transformer.wpe.weight';

export function lookupEmbeddings(wte: Float32Array, ids: number[], C: number): Float32Array {
  const out = new Float32Array(ids.length * C);
  ids.forEach((id, row) => out.set(wte.subarray(id * C, (id + 1) * C), row * C));
  return out;
}

/**
 * The residual stream entering block 0 is inputs_embeds + wpe[position_ids]: its gradient goes to the rows of
 * both tables that were looked up (repeated rows summing; the tied head's part of wte is already in). A table
 * that does not train (not in `trainable`) gets nothing.
 */
export function addEmbeddingGradients(
  gradients: Map<string, Float32Array>,
  streamGradient: Float32Array,
  batch: { ids: number[]; T: number },
  C: number,
  trainable: ReadonlyMap<string, Float32Array>,
): void {
  const addRows = (table: string, rowOf: (row: number) => number) => {
    const gradient = gradients.get(table);
    if (!gradient && !trainable.has(table)) return;
    const total = gradient ?? new Float32Array(trainable.get(table)!.length);
    gradients.set(table, total);
    for (let row = 0; row < batch.ids.length; row++) {
      const at = rowOf(row) * C;
      for (let c = 0; c < C; c++) total[at + c]! += streamGradient[row * C + c]!;
    }
  };
  addRows(POSITION_EMBEDDINGS, (row) => row % batch.T);
  addRows(IO.tokenEmbeddings, (row) => batch.ids[row]!);
}
