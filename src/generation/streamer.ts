/** Streaming of generated tokens, as token ids or as text. */
import { cutAtStop } from './stopping.js';

export interface TokenStreamer {
  /** New tokens, in order. */
  put(tokenIds: number[]): void;
  /** Generation finished normally. */
  end(): void;
  /** Generation failed; called instead of end() when present, so consumers waiting on the stream see the error. */
  abort?(error: unknown): void;
}

export interface TextStreamerOptions {
  /** Ids left out of the text (e.g. eos), like skip_special_tokens. */
  skipSpecialIds?: Set<number>;
  /** Stop strings: the text ends exactly before the first of them (the tokens arrive with the text cut). */
  stop?: readonly string[];
}

/**
 * Turns token ids into text pieces. Byte-level BPE splits multi-byte characters (emoji, CJK) across
 * tokens, so the raw bytes go through a streaming UTF-8 decoder that holds an incomplete character
 * until its remaining bytes arrive; a piece never contains half a character.
 */
export class TextStreamer implements TokenStreamer {
  private decoder = new TextDecoder('utf-8');
  private readonly skipSpecialIds: Set<number>;
  private readonly stops: readonly string[];
  /** Text emitted so far, while stop strings may still end it; null once one did. */
  private emitted: string | null = '';

  constructor(
    private readonly decodeBytes: (ids: number[]) => Uint8Array,
    private readonly onText: (text: string) => void,
    options: TextStreamerOptions = {},
  ) {
    this.skipSpecialIds = options.skipSpecialIds ?? new Set();
    this.stops = options.stop ?? [];
  }

  put(tokenIds: number[]): void {
    const kept = tokenIds.filter((id) => !this.skipSpecialIds.has(id));
    if (kept.length === 0) return;
    this.emit(this.decoder.decode(this.decodeBytes(kept), { stream: true }));
  }

  /** Flushes bytes of a character that never completed (as U+FFFD) and makes the streamer reusable. */
  end(): void {
    this.emit(this.decoder.decode());
    this.decoder = new TextDecoder('utf-8');
    this.emitted = '';
  }

  private emit(text: string): void {
    if (this.stops.length > 0) {
      if (this.emitted === null) return;
      const whole = this.emitted + text;
      const cut = cutAtStop(whole, this.stops);
      text = cut.slice(this.emitted.length);
      this.emitted = cut.length < whole.length ? null : whole;
    }
    if (text.length > 0) this.onText(text);
  }
}

/** TextStreamer as an async iterable: `for await (const piece of streamer)`. Meant for one consumer. */
export class TextIteratorStreamer implements TokenStreamer, AsyncIterable<string> {
  private readonly pieces: string[] = [];
  private finished = false;
  private failure: { error: unknown } | null = null;
  private wakeConsumer: (() => void) | null = null;
  private readonly text: TextStreamer;

  constructor(decodeBytes: (ids: number[]) => Uint8Array, options: TextStreamerOptions = {}) {
    this.text = new TextStreamer(
      decodeBytes,
      (piece) => {
        this.pieces.push(piece);
        this.wake();
      },
      options,
    );
  }

  put(tokenIds: number[]): void {
    this.text.put(tokenIds);
  }

  end(): void {
    this.text.end();
    this.finished = true;
    this.wake();
  }

  abort(error: unknown): void {
    this.failure = { error };
    this.finished = true;
    this.wake();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<string> {
    for (;;) {
      const piece = this.pieces.shift();
      if (piece !== undefined) {
        yield piece;
        continue;
      }
      if (this.failure) throw this.failure.error;
      if (this.finished) return;
      await new Promise<void>((resolve) => {
        this.wakeConsumer = resolve;
      });
    }
  }

  private wake(): void {
    const wake = this.wakeConsumer;
    this.wakeConsumer = null;
    wake?.();
  }
}
