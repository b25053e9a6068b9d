/**
 * Token ids of a bench prompt: deterministic, different for each salt, and below 50,000 so never GPT-2's
 * end-of-text (random weights must not stop early). Ours and the peers read the same prompts.
 */
export function promptTokens(length: number, salt = 0): number[] {
  return Array.from({ length }, (_, i) => (i * 7919 + salt * 104729) % 50000);
}
