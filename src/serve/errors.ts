/** Errors as OpenAI's API returns them: `{"error":{"message","type","param","code"}}` with its status codes. */

export type OpenAIErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error'
  | 'service_unavailable_error';

export class OpenAIError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: OpenAIErrorType,
    readonly param: string | null = null,
    readonly code: string | null = null,
    /** Extra response headers (Retry-After). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

export const invalidRequest = (message: string, param: string | null = null, code: string | null = null) =>
  new OpenAIError(400, message, 'invalid_request_error', param, code);

/** An error class for the checks the server shares with the library (token ids): a 400 that names `param`. */
export function invalidParameter(param: string): new (message: string) => OpenAIError {
  return class extends OpenAIError {
    constructor(message: string) {
      super(400, message, 'invalid_request_error', param);
    }
  };
}
