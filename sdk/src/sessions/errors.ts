import { ChitError } from '../errors/base.js';
import type { Invoice } from '../protocol/types.js';

/** Why a consumer refused an invoice. */
export type InvoiceRejection =
  | 'OVERCHARGE'
  | 'WRONG_HUB'
  | 'WRONG_CHAIN'
  | 'WRONG_PROVIDER'
  | 'WRONG_AGREEMENT'
  | 'DECREASING_TOTAL'
  | 'NOTHING_DUE'
  | 'REUSED_HASHLOCK'
  | 'NOT_LAST'
  | 'SESSION_CLOSED';

/**
 * A consumer refused an invoice: nothing was signed and no state changed. `reason` (also the `code`)
 * says why; the message says what the provider should send instead.
 *
 * @example
 * try {
 *   await session.pay(invoice);
 * } catch (error) {
 *   if (error instanceof InvoiceRejectedError) reply({ refused: error.reason });
 * }
 */
export class InvoiceRejectedError extends ChitError {
  override name = 'InvoiceRejectedError';
  readonly reason: InvoiceRejection;
  readonly invoice: Invoice;

  constructor(reason: InvoiceRejection, invoice: Invoice, shortMessage: string, details: string) {
    super(reason, shortMessage, { details });
    this.reason = reason;
    this.invoice = invoice;
  }
}

/** The measurements behind an {@link OverchargeError}. */
export interface OverchargeBasis {
  /** Milliseconds of service the consumer measured in this session. */
  elapsedMs: number;
  /** Bytes of traffic the consumer measured in this session. */
  bytes: bigint;
  /** What the agreement had been paid when this session began (0 for a new agreement). */
  base: bigint;
}

/**
 * The provider asked for more than the elapsed time and measured traffic justify, even with the
 * consumer's tolerance. Nothing was signed.
 *
 * @example
 * catch (error) {
 *   if (error instanceof OverchargeError) console.warn(`asked ${error.asked}, justified ${error.justified}`);
 * }
 */
export class OverchargeError extends InvoiceRejectedError {
  override name = 'OverchargeError';
  /** The agreement total the invoice asks for. */
  readonly asked: bigint;
  /** What the consumer's measurements justify (cumulative for the agreement, no tolerance). */
  readonly justified: bigint;
  /** The most the consumer accepts: `justified` plus its tolerance. */
  readonly allowed: bigint;
  readonly basis: OverchargeBasis;

  constructor(invoice: Invoice, justified: bigint, allowed: bigint, basis: OverchargeBasis) {
    super(
      'OVERCHARGE',
      invoice,
      `Overcharge: the invoice asks ${invoice.agreementTotal} but ${justified} is justified (at most ${allowed} with the tolerance)`,
      `Measured ${basis.elapsedMs} ms and ${basis.bytes} bytes since this session began, on top of ${basis.base} already paid for agreement ${invoice.agreementId}. Nothing was signed; the provider should invoice at most ${allowed}, or the prices and tolerance should be checked.`,
    );
    this.asked = invoice.agreementTotal;
    this.justified = justified;
    this.allowed = allowed;
    this.basis = basis;
  }
}

/** Why a provider refused a consumer promise before exchanging it. */
export type PromiseRejection =
  | 'WRONG_HUB'
  | 'WRONG_CHAIN'
  | 'WRONG_PROVIDER'
  | 'WRONG_AGREEMENT'
  | 'WRONG_CONSUMER'
  | 'UNKNOWN_HASHLOCK'
  | 'WRONG_TOTAL'
  | 'NOTHING_NEW'
  | 'SESSION_CLOSED';

/**
 * A provider refused a consumer promise: it does not pay an invoice of this session. Nothing was sent
 * to the hub.
 *
 * @example
 * catch (error) {
 *   if (error instanceof PromiseRejectedError && error.reason === 'UNKNOWN_HASHLOCK') resendInvoice();
 * }
 */
export class PromiseRejectedError extends ChitError {
  override name = 'PromiseRejectedError';
  readonly reason: PromiseRejection;

  constructor(reason: PromiseRejection, shortMessage: string, details: string) {
    super(reason, shortMessage, { details });
    this.reason = reason;
  }
}

/** What was wrong with a hub's answer. */
export type HubAnswerProblem =
  | 'WRONG_HUB'
  | 'WRONG_CHAIN'
  | 'WRONG_OPERATOR'
  | 'INVALID_SIGNATURE'
  | 'WRONG_PROVIDER'
  | 'WRONG_HASHLOCK'
  | 'WRONG_TOTAL'
  | 'WRONG_PREIMAGE';

/**
 * A hub answered something the protocol does not allow: a hub promise not signed by its operator, with
 * another hashlock, or with a total other than the previous total plus the increment; a recovered R
 * that does not open the hashlock; an `/v1/info` for another hub or chain. The answer was not stored.
 *
 * @example
 * catch (error) {
 *   if (error instanceof HubAnswerRejectedError) console.error(error.problem, error.expected, error.received);
 * }
 */
export class HubAnswerRejectedError extends ChitError {
  override name = 'HubAnswerRejectedError';
  readonly problem: HubAnswerProblem;
  readonly expected: string;
  readonly received: string;

  constructor(problem: HubAnswerProblem, what: string, expected: string, received: string, advice: string) {
    super('HUB_ANSWER_REJECTED', `The hub answered ${what}: expected ${expected}, got ${received}`, {
      details: advice,
    });
    this.problem = problem;
    this.expected = expected;
    this.received = received;
  }
}

/**
 * Stored session state that cannot be read: written by an incompatible version, or edited by hand.
 *
 * @example
 * catch (error) {
 *   if (error instanceof StoredStateError) console.error(`fix or remove ${error.key}`);
 * }
 */
export class StoredStateError extends ChitError {
  override name = 'StoredStateError';
  readonly key: string;

  constructor(key: string, issue: string, cause?: unknown) {
    super('STORED_STATE', `The state stored under ${key} cannot be read: ${issue}`, {
      details: 'It was written by an incompatible version or changed by hand. Restore it from a backup.',
      cause,
    });
    this.key = key;
  }
}
