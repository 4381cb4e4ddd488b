import { ChitError } from '@chit/sdk';

/** Why a buyer refused a seller's chit payment requirements. */
export type RequirementsRejection =
  | 'MALFORMED'
  | 'WRONG_NETWORK'
  | 'WRONG_HUB'
  | 'WRONG_ASSET'
  | 'WRONG_PAYEE'
  | 'PRICE_TOO_HIGH'
  | 'INVOICE_EXPIRED'
  | 'OUT_OF_SYNC';

/**
 * The buyer refused a seller's payment requirements before signing anything: another hub, chain or
 * token than its ledger's, a payee it does not pay, a price above its maximums, an expired invoice.
 *
 * @example
 * catch (error) {
 *   if (error instanceof RequirementsRejectedError && error.reason === 'PRICE_TOO_HIGH') console.warn(error.shortMessage);
 * }
 */
export class RequirementsRejectedError extends ChitError {
  override name = 'RequirementsRejectedError';
  readonly reason: RequirementsRejection;

  constructor(reason: RequirementsRejection, shortMessage: string, details: string) {
    super(reason, shortMessage, { details });
    this.reason = reason;
  }
}

/** The spending limit a payment would have broken. */
export type SpendingLimit = 'perRequest' | 'perAgreement' | 'perHour';

/**
 * A payment would break one of the buyer's spending limits: nothing was signed. `limit` names it,
 * `allowed` is its value and `attempted` what the payment would have made of it.
 *
 * @example
 * catch (error) {
 *   if (error instanceof SpendingLimitError) console.warn(`${error.limit}: ${error.attempted} > ${error.allowed}`);
 * }
 */
export class SpendingLimitError extends ChitError {
  override name = 'SpendingLimitError';
  readonly limit: SpendingLimit;
  readonly allowed: bigint;
  readonly attempted: bigint;

  constructor(limit: SpendingLimit, allowed: bigint, attempted: bigint, what: string) {
    super('SPENDING_LIMIT', `Spending limit ${limit} (${allowed}) exceeded: ${what} would be ${attempted}`, {
      details: 'Nothing was signed. Raise the limit in the ChitClientScheme options, or wait for the hourly window.',
    });
    this.limit = limit;
    this.allowed = allowed;
    this.attempted = attempted;
  }
}
