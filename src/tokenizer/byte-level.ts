/**
 * GPT-2's byte-level layer: text is split into words with GPT-2's regex, each word is turned into UTF-8
 * bytes, and every byte is written as one printable character so that BPE vocab entries are plain strings.
 */

/**
 * GPT-2's pre-tokenizer regex. `\s` / `\S` are spelled as the Unicode White_Space property because that is
 * what OpenAI's encoder (Python `regex` module) and HF tokenizers (Oniguruma) mean by `\s`; JavaScript's `\s`
 * differs (it includes U+FEFF and excludes U+0085).
 */
const GPT2_WORD_PATTERN =
  /'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\p{White_Space}\p{L}\p{N}]+|\p{White_Space}+(?!\P{White_Space})|\p{White_Space}+/gu;

export function splitIntoWords(text: string): IterableIterator<RegExpMatchArray> {
  return text.matchAll(GPT2_WORD_PATTERN);
}

/**
 * GPT-2's `bytes_to_unicode`: printable Latin-1 bytes stand for themselves, the other 68 bytes (controls,
 * space, DEL, NBSP, soft hyphen) are shifted to U+0100 upwards in byte order so that no vocab entry contains
 * whitespace or control characters.
 */
function buildByteToChar(): string[] {
  const isPrintable = (byte: number) =>
    (byte >= 0x21 && byte <= 0x7e) || (byte >= 0xa1 && byte <= 0xac) || (byte >= 0xae && byte <= 0xff);
  const table: string[] = [];
  let nextShifted = 256;
  for (let byte = 0; byte < 256; byte++) {
    table.push(String.fromCodePoint(isPrintable(byte) ? byte : nextShifted++));
  }
  return table;
}

export const BYTE_TO_CHAR: readonly string[] = buildByteToChar();

const CHAR_TO_BYTE: ReadonlyMap<string, number> = new Map(BYTE_TO_CHAR.map((char, byte) => [char, byte]));

const utf8Encoder = new TextEncoder();

/**
 * The bytes a byte-level vocab entry stands for. Entries with characters outside the byte table (added
 * tokens such as `<|endoftext|>` are ASCII and fine, but custom entries may not be) fall back to their own
 * UTF-8, as HF's ByteLevel decoder does.
 */
export function byteLevelTokenToBytes(token: string): Uint8Array {
  const bytes = new Uint8Array(token.length);
  let length = 0;
  for (const char of token) {
    const byte = CHAR_TO_BYTE.get(char);
    if (byte === undefined) return utf8Encoder.encode(token);
    bytes[length++] = byte;
  }
  return bytes.subarray(0, length);
}
