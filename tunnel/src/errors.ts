import { ChitError } from '@chit/sdk';

/** Why a tunnel operation failed. */
export type TunnelErrorCode =
  /** The provider's offer asks more than the consumer allows, or names another hub or chain. */
  | 'OFFER_REFUSED'
  /** The other side sent something that is not a message of the control protocol. */
  | 'MALFORMED_MESSAGE'
  /** The provider did not answer in time, or the connection closed before it did. */
  | 'NO_ANSWER'
  /** The provider's invoice was refused (overcharge, wrong agreement…): the tunnel was closed. */
  | 'INVOICE_REFUSED'
  /** A SOCKS5 or HTTP CONNECT handshake failed. */
  | 'HANDSHAKE_FAILED'
  /** The tunnel is closed. */
  | 'CLOSED';

/**
 * A tunnel failed; `code` says why. Nothing is signed on a refused offer or invoice.
 *
 * @example
 * try {
 *   await connectTunnel({ provider: 'tcp://node.example:1080', ledger, maxPrices });
 * } catch (error) {
 *   if (error instanceof TunnelError && error.code === 'OFFER_REFUSED') console.warn(error.shortMessage);
 * }
 */
export class TunnelError extends ChitError {
  override name = 'TunnelError';
  declare readonly code: TunnelErrorCode;

  constructor(code: TunnelErrorCode, shortMessage: string, details?: string, cause?: unknown) {
    super(code, shortMessage, { ...(details ? { details } : {}), ...(cause ? { cause } : {}) });
  }
}
