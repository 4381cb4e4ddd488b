import { type Address, getAddress, type Hex } from 'viem';
import type { Invoice, SignedConsumerPromise } from '../protocol/types.js';
import type { ConsumerLedger } from './consumer-ledger.js';
import { InvoiceRejectedError, OverchargeError } from './errors.js';
import {
  type Allowance,
  allowance,
  checkPrices,
  type Prices,
  type PriceTolerance,
  resolveTolerance,
  toBytes,
} from './pricing.js';
import { sameHex } from './util.js';

/** Options of a {@link ConsumerSession}. */
export interface ConsumerSessionOptions {
  /** The consumer's ledger at the provider's hub, shared by all its sessions there. */
  ledger: ConsumerLedger;
  /** The provider identity this session pays. */
  provider: Address;
  /** The agreement id, when the provider announced it; otherwise the first paid invoice's. */
  agreementId?: Hex;
  /** The provider's prices, as agreed before the session. */
  prices: Prices;
  /** How far an invoice may exceed the measurements; see {@link PriceTolerance} for the defaults. */
  tolerance?: PriceTolerance;
  /** Milliseconds since some epoch; `Date.now` by default. Inject a simulated clock in tests. */
  clock?: () => number;
}

/**
 * The consumer's side of one session with one provider: it measures time (from its construction, by
 * `clock`) and traffic ({@link ConsumerSession.addTraffic}), checks each invoice against them and pays
 * it through the shared {@link ConsumerLedger}.
 *
 * An invoice is paid only when its agreement total is at most what was already paid when the session
 * began plus what the measured time and traffic cost, with the tolerance (5 s, 3 % + 4 MiB by default,
 * see {@link PriceTolerance}). Otherwise it is refused with an {@link OverchargeError}, and invoices for
 * another hub, chain, provider or agreement, with a reused hashlock, or with a total that does not grow
 * with an {@link InvoiceRejectedError}; a refused invoice signs nothing and changes nothing.
 *
 * A session that resumes an agreement (a restart) bills from what was paid: the time between the last
 * payment and the restart is not paid again.
 *
 * @example
 * const session = new ConsumerSession({ ledger, provider, prices: { perMinute: 10n ** 15n, perGiB: 10n ** 16n } });
 * tunnel.on('bytes', (n) => session.addTraffic(n));
 * provider.on('invoice', async (json) => {
 *   const promise = await session.pay(decodeMessage('invoice', json));
 *   provider.send(encodeMessage(promise));
 * });
 */
export class ConsumerSession {
  readonly ledger: ConsumerLedger;
  readonly provider: Address;
  readonly prices: Prices;
  readonly tolerance: Required<PriceTolerance>;
  readonly startedAt: number;
  readonly #clock: () => number;
  #agreementId: Hex | undefined;
  #bytes = 0n;
  #base: bigint | undefined;
  #release: (() => void) | undefined;
  #closed = false;
  #paid = false;

  constructor(options: ConsumerSessionOptions) {
    this.ledger = options.ledger;
    this.provider = getAddress(options.provider);
    this.prices = checkPrices(options.prices);
    this.tolerance = resolveTolerance(options.tolerance);
    this.#clock = options.clock ?? Date.now;
    this.startedAt = this.#clock();
    this.#agreementId = options.agreementId?.toLowerCase() as Hex | undefined;
    if (this.#agreementId) this.#release = this.ledger.attach(this.provider, this.#agreementId);
  }

  /** The agreement this session pays; `undefined` until announced or first paid. */
  get agreementId(): Hex | undefined {
    return this.#agreementId;
  }

  /** Bytes measured since the session began. */
  get bytes(): bigint {
    return this.#bytes;
  }

  /** Milliseconds since the session began. */
  get elapsedMs(): number {
    return Math.max(0, this.#clock() - this.startedAt);
  }

  /**
   * Adds measured traffic (both directions through the provider), in bytes.
   *
   * @example
   * session.addTraffic(1500);
   */
  addTraffic(bytes: number | bigint): void {
    this.#bytes += toBytes(bytes);
  }

  /**
   * What the measurements justify now for this session's time and traffic, and the most it accepts
   * with the tolerance (both without what was paid before the session began).
   *
   * @example
   * const { justified, allowed } = session.allowance();
   */
  allowance(): Allowance {
    return allowance(this.prices, this.elapsedMs, this.#bytes, this.tolerance);
  }

  /**
   * Checks `invoice` and, when it is justified, returns the signed consumer promise that pays it. The
   * very invoice paid last (same hashlock and total) gets the same promise again.
   *
   * @throws {OverchargeError} when the invoice asks more than the measurements justify with the tolerance.
   * @throws {InvoiceRejectedError} for another hub, chain, provider or agreement, a reused hashlock, a
   * total that decreases or adds nothing, or a closed session.
   * @example
   * const promise = await session.pay(decodeMessage('invoice', json));
   */
  async pay(invoice: Invoice): Promise<SignedConsumerPromise> {
    if (this.#closed) {
      throw new InvoiceRejectedError('SESSION_CLOSED', invoice, 'This session is closed', 'Open a new session to pay.');
    }
    if (!sameHex(invoice.provider, this.provider)) {
      throw new InvoiceRejectedError(
        'WRONG_PROVIDER',
        invoice,
        `Wrong provider: the invoice is from ${invoice.provider}, this session pays ${this.provider}`,
        'Send each invoice to the session of the provider that issued it.',
      );
    }
    if (this.#agreementId && !sameHex(invoice.agreementId, this.#agreementId)) {
      throw new InvoiceRejectedError(
        'WRONG_AGREEMENT',
        invoice,
        `Wrong agreement: the invoice is for ${invoice.agreementId}, this session pays ${this.#agreementId}`,
        'A provider invoices one agreement per session; open a new session for a new agreement.',
      );
    }
    const agreementId = invoice.agreementId.toLowerCase() as Hex;
    let adopted = false;
    if (!this.#agreementId) {
      this.#release = this.ledger.attach(this.provider, agreementId);
      this.#agreementId = agreementId;
      adopted = true;
    }
    try {
      const { promise } = await this.ledger.payInvoice(invoice, (paid) => {
        this.#base ??= paid;
        const elapsedMs = this.elapsedMs;
        const bytes = this.#bytes;
        const { justified, allowed } = allowance(this.prices, elapsedMs, bytes, this.tolerance);
        if (invoice.agreementTotal > this.#base + allowed) {
          throw new OverchargeError(invoice, this.#base + justified, this.#base + allowed, {
            elapsedMs,
            bytes,
            base: this.#base,
          });
        }
      });
      this.#paid = true;
      return promise;
    } catch (error) {
      // An agreement adopted from a refused first invoice is not kept: the next invoice may name another.
      if (adopted && !this.#paid) {
        this.#release?.();
        this.#release = undefined;
        this.#agreementId = undefined;
        this.#base = undefined;
      }
      throw error;
    }
  }

  /**
   * Ends the session: no invoice is paid through it any more. Its agreement stays in the ledger; call
   * {@link ConsumerLedger.forget} to drop it.
   *
   * @example
   * session.close();
   */
  close(): void {
    this.#closed = true;
    this.#release?.();
    this.#release = undefined;
  }
}
