/** Stable error codes of the hub API (docs/protocol.md, "Error codes"). */
export type HubErrorCode =
  | 'MALFORMED'
  | 'INVALID_SIGNATURE'
  | 'WRONG_CHAIN'
  | 'WRONG_HUB'
  | 'PROMISE_TOO_LOW'
  | 'OVERSPEND'
  | 'PREVIOUS_R_NOT_REVEALED'
  | 'INVALID_PREIMAGE_BOX'
  | 'HASHLOCK_REUSED'
  | 'AGREEMENT_CONFLICT'
  | 'HUB_CLOSING'
  | 'UNKNOWN_PREIMAGE'
  | 'UNKNOWN_CONSUMER'
  | 'UNKNOWN_PROVIDER'
  | 'NOTHING_TO_SETTLE'
  | 'RELAYER_FEE_TOO_LOW'
  | 'RELAYER_FEE_TOO_HIGH'
  | 'RELAYER_FEE_UNPAYABLE'
  | 'NOT_FOUND'
  | 'STALE_REQUEST'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'URI_TOO_LONG'
  | 'HEADERS_TOO_LARGE'
  | 'REQUEST_TIMEOUT'
  | 'RATE_LIMITED'
  | 'UNAVAILABLE'
  | 'INTERNAL';

/**
 * A domain error: a request the hub refuses, with a stable code and the facts that explain it.
 * Services throw it; only the HTTP edge maps it to a status.
 */
export class HubError extends Error {
  override name = 'HubError';

  constructor(
    readonly code: HubErrorCode,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

/** HTTP status of each code. */
export const STATUS_OF: Record<HubErrorCode, number> = {
  MALFORMED: 400,
  INVALID_SIGNATURE: 400,
  WRONG_CHAIN: 400,
  WRONG_HUB: 400,
  STALE_REQUEST: 400,
  PROMISE_TOO_LOW: 409,
  OVERSPEND: 409,
  PREVIOUS_R_NOT_REVEALED: 409,
  INVALID_PREIMAGE_BOX: 400,
  HASHLOCK_REUSED: 409,
  AGREEMENT_CONFLICT: 409,
  HUB_CLOSING: 409,
  UNKNOWN_PREIMAGE: 404,
  UNKNOWN_CONSUMER: 404,
  UNKNOWN_PROVIDER: 404,
  NOTHING_TO_SETTLE: 409,
  RELAYER_FEE_TOO_LOW: 409,
  RELAYER_FEE_TOO_HIGH: 409,
  RELAYER_FEE_UNPAYABLE: 409,
  NOT_FOUND: 404,
  BODY_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  URI_TOO_LONG: 414,
  HEADERS_TOO_LARGE: 431,
  REQUEST_TIMEOUT: 408,
  RATE_LIMITED: 429,
  UNAVAILABLE: 503,
  INTERNAL: 500,
};
