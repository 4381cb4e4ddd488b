import { ChitError } from '../errors/base.js';

/**
 * Every error code a hub answers with (docs/protocol.md, "Error codes"): its HTTP status, whether the
 * same request may succeed later, and what the caller should do about it.
 *
 * @example
 * hubErrorCodes.OVERSPEND.retryable; // false
 */
export const hubErrorCodes = {
  MALFORMED: {
    status: 400,
    retryable: false,
    advice: 'The request does not match the wire format (docs/protocol.md); fix the field the details name.',
  },
  INVALID_SIGNATURE: {
    status: 400,
    retryable: false,
    advice: 'Sign with the key of the party the message names, for this hub and chain.',
  },
  WRONG_CHAIN: { status: 400, retryable: false, advice: 'Send the message to a hub on the chain it was signed for.' },
  WRONG_HUB: { status: 400, retryable: false, advice: 'Send the message to the hub it was signed for.' },
  PROMISE_TOO_LOW: {
    status: 409,
    retryable: false,
    advice: 'The hub already credited this agreement total; exchange the promise of a newer invoice.',
  },
  OVERSPEND: {
    status: 409,
    retryable: false,
    advice: 'The consumer has not deposited enough (or is exiting); stop serving it until it tops up its channel.',
  },
  PREVIOUS_R_NOT_REVEALED: {
    status: 409,
    retryable: false,
    advice: 'Reveal the R of the previous exchange (POST /v1/reveal) or send it as previousPreimage, then retry.',
  },
  INVALID_PREIMAGE_BOX: {
    status: 400,
    retryable: false,
    advice:
      "encryptedPreimage must open with the hub's key (GET /v1/info, publicKey) to the R of the promise's hashlock: seal R again with sealPreimage.",
  },
  HASHLOCK_REUSED: {
    status: 409,
    retryable: false,
    advice: 'Each invoice needs a fresh R: make a new hashlock and ask the consumer for a new promise.',
  },
  AGREEMENT_CONFLICT: {
    status: 409,
    retryable: false,
    advice: 'This agreement id is already used with another consumer: start the session with a new agreement id.',
  },
  HUB_CLOSING: {
    status: 409,
    retryable: false,
    advice:
      'The hub is closing (or closed) and issues no new promises: stop serving on its credit, settle what it owes you before it closes, and use another hub.',
  },
  UNKNOWN_PREIMAGE: {
    status: 404,
    retryable: false,
    advice: 'The preimage matches no hashlock of this provider at this hub; check the provider and the hub.',
  },
  UNKNOWN_CONSUMER: {
    status: 404,
    retryable: false,
    advice: 'The consumer has no channel at this hub; it must deposit first.',
  },
  UNKNOWN_PROVIDER: { status: 404, retryable: false, advice: 'The hub holds no promise for this provider yet.' },
  NOTHING_TO_SETTLE: {
    status: 409,
    retryable: false,
    advice: 'The hub promise is settled on-chain already: there is nothing to settle until you earn more.',
  },
  RELAYER_FEE_TOO_LOW: {
    status: 409,
    retryable: false,
    advice:
      'The relayer fee no longer covers the gas: get a new quote (GET /v1/quotes/settlement or /v1/quotes/relay) and sign again.',
  },
  RELAYER_FEE_TOO_HIGH: {
    status: 409,
    retryable: false,
    advice: 'The relayer fee is more than you would be paid: settle later, when more is owed, or settle yourself.',
  },
  RELAYER_FEE_UNPAYABLE: {
    status: 409,
    retryable: false,
    advice:
      "The Registry takes the relayer fee from the identity's tokens: hold it and approve the Registry for it (EIP-2612 permit), or register with no fee yourself.",
  },
  NOT_FOUND: { status: 404, retryable: false, advice: 'Check the address or id in the path.' },
  UNAUTHORIZED: {
    status: 401,
    retryable: false,
    advice:
      'Sign in (GET /v1/auth/nonce, then POST /v1/auth/session with a signed EIP-4361 message) and send the token as Authorization: Bearer.',
  },
  FORBIDDEN: {
    status: 403,
    retryable: false,
    advice: "A session reads only its own identity's history; the hub-wide figures need the operator's session.",
  },
  STALE_REQUEST: {
    status: 400,
    retryable: false,
    advice: "Sign a fresh request; check the local clock (within five minutes of the hub's).",
  },
  BODY_TOO_LARGE: {
    status: 413,
    retryable: false,
    advice: 'The body is over 64 KiB: send fewer exchanges per POST /v1/exchanges.',
  },
  UNSUPPORTED_MEDIA_TYPE: {
    status: 415,
    retryable: false,
    advice: 'Send the body as JSON with Content-Type: application/json.',
  },
  URI_TOO_LONG: {
    status: 414,
    retryable: false,
    advice: 'A path parameter is too long: check the address or id in the path.',
  },
  HEADERS_TOO_LARGE: {
    status: 431,
    retryable: false,
    advice: 'The request line and headers are over the limit (16 KiB): send fewer or shorter headers.',
  },
  REQUEST_TIMEOUT: {
    status: 408,
    retryable: true,
    advice: 'The request did not reach the hub in time; retry (requests are idempotent).',
  },
  RATE_LIMITED: { status: 429, retryable: true, advice: 'Slow down: retry after the time Retry-After gives.' },
  UNAVAILABLE: {
    status: 503,
    retryable: true,
    advice: 'A dependency of the hub is down; retry later or use another hub.',
  },
  INTERNAL: {
    status: 500,
    retryable: true,
    advice: 'The hub failed unexpectedly; retry later (requests are idempotent).',
  },
} as const satisfies Record<string, { status: number; retryable: boolean; advice: string }>;

/** A hub error code from docs/protocol.md. */
export type HubErrorCode = keyof typeof hubErrorCodes;

/**
 * Whether `code` is one of the hub error codes of docs/protocol.md.
 *
 * @example
 * isHubErrorCode('OVERSPEND'); // true
 */
export function isHubErrorCode(code: string): code is HubErrorCode {
  return Object.hasOwn(hubErrorCodes, code);
}

/** Parameters of {@link HubError}. */
export interface HubErrorParameters {
  /** The hub's stable code, or one inferred from the status when the body carried none. */
  code: string;
  /** The HTTP status. */
  status: number;
  /** The hub's human-readable message, if any. */
  message?: string | undefined;
  /** The hub's `details` object (for `MALFORMED`, `path` names the field). */
  details?: Record<string, unknown> | undefined;
  /** How long the hub asked to wait (from `Retry-After`), in milliseconds. */
  retryAfterMs?: number | undefined;
  /** `GET /v1/info` and the like, for the message. */
  request: string;
  /** Attempts made before giving up. */
  attempts: number;
  cause?: unknown;
}

/**
 * An error answer from a hub: `code` is the hub's stable code (see {@link hubErrorCodes}), `status` the
 * HTTP status, `retryable` whether the same request may succeed later. `hubDetails` is the hub's
 * `details` object, unchanged.
 *
 * @example
 * try {
 *   await hubClient.exchange(request);
 * } catch (error) {
 *   if (error instanceof HubError && error.code === 'OVERSPEND') stopServing();
 * }
 */
export class HubError extends ChitError {
  override name = 'HubError';
  declare readonly code: HubErrorCode | (string & {});
  readonly status: number;
  readonly retryable: boolean;
  /** The hub's message, as it sent it. */
  readonly hubMessage: string | undefined;
  /** The hub's `details` object, as it sent it. */
  readonly hubDetails: Record<string, unknown> | undefined;
  readonly retryAfterMs: number | undefined;
  readonly attempts: number;

  constructor(parameters: HubErrorParameters) {
    const known = isHubErrorCode(parameters.code) ? hubErrorCodes[parameters.code] : undefined;
    const retryable = known ? known.retryable : isRetryableStatus(parameters.status);
    const where = `${parameters.request} answered ${parameters.status}${
      parameters.attempts > 1 ? ` after ${parameters.attempts} attempts` : ''
    }`;
    const extra = parameters.details ? ` Hub details: ${safeJson(parameters.details)}.` : '';
    super(parameters.code, `${parameters.code}: ${parameters.message || `the hub answered ${parameters.status}`}`, {
      details: `${known?.advice ?? (retryable ? 'Retry later.' : 'The request was refused.')} (${where}.)${extra}`,
      cause: parameters.cause,
    });
    this.status = parameters.status;
    this.retryable = retryable;
    this.hubMessage = parameters.message;
    this.hubDetails = parameters.details;
    this.retryAfterMs = parameters.retryAfterMs;
    this.attempts = parameters.attempts;
  }
}

/**
 * The hub could not be reached: DNS, refused connection, reset, TLS. Retryable: nothing is known to
 * have happened at the hub, and every hub request is idempotent.
 *
 * @example
 * if (error instanceof HubUnreachableError) useAnotherHub();
 */
export class HubUnreachableError extends ChitError {
  override name = 'HubUnreachableError';
  readonly retryable = true;
  readonly url: string;
  readonly attempts: number;

  constructor(url: string, request: string, attempts: number, cause: unknown) {
    super('HUB_UNREACHABLE', `The hub at ${url} could not be reached`, {
      details: `${request} failed${attempts > 1 ? ` ${attempts} times` : ''}: ${describe(cause)}. Check the URL and the network, or use another hub.`,
      cause,
    });
    this.url = url;
    this.attempts = attempts;
  }
}

/**
 * The hub did not answer within the client's timeout. Retryable; the request may or may not have been
 * applied, and every hub request is idempotent, so sending it again is safe.
 *
 * @example
 * if (error instanceof HubTimeoutError) console.warn(`no answer in ${error.timeoutMs} ms`);
 */
export class HubTimeoutError extends ChitError {
  override name = 'HubTimeoutError';
  readonly retryable = true;
  readonly url: string;
  readonly timeoutMs: number;
  readonly attempts: number;

  constructor(url: string, request: string, timeoutMs: number, attempts: number) {
    super('HUB_TIMEOUT', `The hub at ${url} did not answer within ${timeoutMs} ms`, {
      details: `${request} timed out${attempts > 1 ? ` ${attempts} times` : ''}. Retry later, raise timeoutMs, or use another hub.`,
    });
    this.url = url;
    this.timeoutMs = timeoutMs;
    this.attempts = attempts;
  }
}

/**
 * The caller aborted a hub request through its `signal`. Not retried.
 *
 * @example
 * const controller = new AbortController();
 * hubClient.info({ signal: controller.signal }).catch((error) => error instanceof HubRequestAbortedError);
 * controller.abort();
 */
export class HubRequestAbortedError extends ChitError {
  override name = 'HubRequestAbortedError';

  constructor(request: string, cause: unknown) {
    super('ABORTED', `${request} was aborted by the caller`, { cause });
  }
}

/**
 * Whether `error` is worth retrying: a retryable {@link HubError}, a timeout or an unreachable hub.
 *
 * @example
 * if (isRetryableHubError(error)) scheduleRetry();
 */
export function isRetryableHubError(error: unknown): boolean {
  return (
    (error instanceof HubError && error.retryable) ||
    error instanceof HubUnreachableError ||
    error instanceof HubTimeoutError
  );
}

/**
 * Whether an HTTP status without a known hub code is worth retrying (429 and 5xx but 501 and 505).
 *
 * @example
 * isRetryableStatus(503); // true
 */
export function isRetryableStatus(status: number): boolean {
  return status === 429 || (status >= 500 && status !== 501 && status !== 505);
}

/**
 * The code a hub would have sent for a status, when its body carried none (a proxy's 502 page).
 *
 * @example
 * codeForStatus(502); // 'UNAVAILABLE'
 */
export function codeForStatus(status: number): string {
  if (status === 429) return 'RATE_LIMITED';
  if (status === 500) return 'INTERNAL';
  if (status === 502 || status === 503 || status === 504) return 'UNAVAILABLE';
  if (status === 404) return 'NOT_FOUND';
  return `HTTP_${status}`;
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}

/**
 * An option or argument outside what the SDK accepts: a negative price, a zero attempt count, a second
 * session for the same agreement.
 *
 * @example
 * catch (error) {
 *   if (error instanceof InvalidOptionError) console.error(error.option, error.shortMessage);
 * }
 */
export class InvalidOptionError extends ChitError {
  override name = 'InvalidOptionError';
  /** The option's name, for example `prices.perMinute`. */
  readonly option: string;

  constructor(option: string, problem: string, details?: string) {
    super('INVALID_OPTION', `Invalid ${option}: ${problem}`, { details });
    this.option = option;
  }
}

/** `fetch failed (ECONNREFUSED)`: the message, and the system error code under it when there is one. */
function describe(cause: unknown): string {
  if (!(cause instanceof Error)) return String(cause);
  const inner = (cause as { cause?: { code?: unknown } }).cause;
  return typeof inner?.code === 'string' ? `${cause.message} (${inner.code})` : cause.message;
}
