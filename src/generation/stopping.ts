/**
 * Stop strings: finding them in the decoded new text of a row, and deciding which tokens to keep.
 *
 * Token cut (generate(), which returns token ids): a row that produces a stop string keeps its new tokens up
 * to, not including, the first token that contributes a character of the stop string. When the stop string
 * starts in the middle of a token (say the token is "c\n" and the stop string "\n"), that token is dropped
 * whole, so the returned ids decode to slightly less text than precedes the stop string ("c" is lost). Token
 * ids cannot express half a token, and keeping the token would leak part of the stop string.
 *
 * Text cut (the pipeline's text and the server, as OpenAI, vLLM and llama.cpp): the row keeps every token
 * through the one that completes the stop string, and its text is cut exactly before the stop string
 * (cutAtStop), so no character before it is lost.
 *
 * Decoding happens on the whole new-token list each time, not per token, because a byte-level
 * tokenizer can split one character over several tokens: only the joint decoding is the real text.
 */
import { GenerationError } from './config.js';

export type Decode = (ids: number[]) => string;

const REPLACEMENT_CHARACTER = '\uFFFD';

/** Where the first of the stop strings begins in `text`, or -1. */
export function firstStopIndex(text: string, stops: readonly string[]): number {
  let first = -1;
  for (const stop of stops) {
    const at = text.indexOf(stop);
    if (at >= 0 && (first < 0 || at < first)) first = at;
  }
  return first;
}

/** `text` up to the first stop string, exclusive (all of it when none occurs). */
export function cutAtStop(text: string, stops: readonly string[]): string {
  const at = firstStopIndex(text, stops);
  return at < 0 ? text : text.slice(0, at);
}

export class StopStringMatcher {
  private readonly decode: Decode;
  private readonly longestStop: number;

  constructor(
    private readonly stops: readonly string[],
    decode: Decode | undefined,
  ) {
    if (stops.length > 0 && !decode) {
      throw new GenerationError('stop needs a decode function to turn the generated tokens into text.');
    }
    this.decode = decode ?? (() => '');
    this.longestStop = Math.max(0, ...stops.map((stop) => stop.length));
  }

  get strings(): readonly string[] {
    return this.stops;
  }

  get active(): boolean {
    return this.stops.length > 0;
  }

  /** Number of new tokens to keep if the decoded tokens contain a stop string, else null. */
  findStop(newTokens: readonly number[]): number | null {
    if (!this.active) return null;
    const text = this.decode([...newTokens]);
    const stopAt = firstStopIndex(text, this.stops);
    if (stopAt < 0) return null;
    return this.longestPrefixWithin(newTokens, text.slice(0, stopAt));
  }

  /**
   * How many leading new tokens are final: no later token can turn their text into part of a stop
   * string. Streaming only these guarantees the stream never shows text that the stop cut removes.
   */
  settledCount(newTokens: readonly number[]): number {
    if (!this.active) return newTokens.length;
    const text = this.decode([...newTokens]);
    let safeEnd = text.length;
    // A trailing replacement character may be a multi-byte character still arriving, which could be
    // the start of a stop string: hold it back.
    while (safeEnd > 0 && text[safeEnd - 1] === REPLACEMENT_CHARACTER) safeEnd--;
    for (let start = Math.max(0, safeEnd - this.longestStop); start < safeEnd; start++) {
      const tail = text.slice(start, safeEnd);
      if (this.stops.some((stop) => stop.startsWith(tail))) {
        safeEnd = start;
        break;
      }
    }
    return this.longestPrefixWithin(newTokens, text.slice(0, safeEnd));
  }

  /** The most leading tokens whose decoded text is a prefix of `allowed`. */
  private longestPrefixWithin(newTokens: readonly number[], allowed: string): number {
    for (let count = newTokens.length; count > 0; count--) {
      if (allowed.startsWith(this.decode(newTokens.slice(0, count)))) return count;
    }
    return 0;
  }
}
