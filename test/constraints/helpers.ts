// A byte vocabulary for unit tests: token b is byte b, token 256 is eos, and a few multi-byte tokens
// (one splits "é" across its end, as GPT-2's byte-level tokens can).
import { compileConstraint, TokenVocabulary, type ConstraintSpec, type ConstraintState } from '../../src/constraints/index.js';

export const EOS = 256;
const MULTI = ['{"', '":', '", "', '"}', 'ab', '\xc3'].map((s) => Uint8Array.from(s, (c) => c.charCodeAt(0)));

export const byteVocabulary = new TokenVocabulary({
  vocabSize: 257 + MULTI.length,
  bytesOf: (id) => (id < 256 ? Uint8Array.of(id) : id === EOS ? null : MULTI[id - 257]!),
});

export function start(spec: ConstraintSpec): ConstraintState {
  return compileConstraint(spec, byteVocabulary).start([EOS]);
}

/** Whether the whole text is an output the constraint accepts (walked byte by byte). */
export function accepts(spec: ConstraintSpec, text: string): boolean {
  const state = start(spec);
  for (const byte of new TextEncoder().encode(text)) if (!state.tryAdvance(byte)) return false;
  return state.isComplete();
}

export function allowed(state: ConstraintState): number[] {
  const mask = state.allowedMask();
  const ids: number[] = [];
  for (let id = 0; id < byteVocabulary.size; id++) if ((mask[id >>> 5]! >>> (id & 31)) & 1) ids.push(id);
  return ids;
}
