import { type HubErrorCode, hubErrorCodes } from '@chit/sdk';

/**
 * Stable error codes of the hub API (docs/protocol.md, "Error codes"). One table, the SDK's
 * `hubErrorCodes`: the hub answers with its statuses, and clients read the same codes, retry rules
 * and advice.
 */
export type { HubErrorCode };

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

/** HTTP status of each code, from the SDK's table. */
export const STATUS_OF = Object.fromEntries(
  Object.entries(hubErrorCodes).map(([code, { status }]) => [code, status]),
) as Record<HubErrorCode, number>;
