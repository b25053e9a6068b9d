/**
 * What went wrong, for callers that react differently (the CLI suggests HF_TOKEN for 'unauthorized',
 * a retry for 'network', dropping --offline for 'offline').
 */
export type HubErrorCode =
  | 'repo-not-found'
  | 'revision-not-found'
  | 'entry-not-found'
  | 'unauthorized'
  | 'gated'
  | 'forbidden'
  | 'http'
  | 'network'
  | 'offline'
  | 'integrity'
  | 'not-a-model'
  | 'invalid-repo-id';

/** A failure to get files from the Hub or its cache, with a message meant for the end user. */
export class HubError extends Error {
  readonly status?: number;
  readonly code: HubErrorCode;

  constructor(message: string, code: HubErrorCode, status?: number, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HubError';
    this.code = code;
    if (status !== undefined) this.status = status;
  }
}
