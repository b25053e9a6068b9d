/** Raised for unusable tokenizer files and for inputs the tokenizer cannot handle (unknown ids). */
export class TokenizerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'TokenizerError';
  }
}
