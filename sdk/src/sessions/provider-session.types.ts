import type { Address, Hex } from 'viem';
import type { Invoice, SignedHubPromise } from '../protocol/types.js';
import type { Verifier } from '../protocol/verifier.js';
import type { Prices } from './pricing.js';
import type { ProviderLedger, SettlementAttempt } from './provider-ledger.js';

/** Options of a {@link ProviderSession}. */
export interface ProviderSessionOptions {
  /** The provider's ledger at the hub, shared by all its sessions there. */
  ledger: ProviderLedger;
  /** Delivers an invoice to the consumer (the application's transport). */
  send: (invoice: Invoice) => void | Promise<void>;
  /** The provider's prices for this session. */
  prices: Prices;
  /** The consumer, when known; otherwise the first one that pays. Promises from others are refused. */
  consumer?: Address;
  /** The agreement id. Default: a fresh random one. Reuse one only to resume a session after a restart. */
  agreementId?: Hex;
  /** Milliseconds since some epoch; `Date.now` by default. Inject a simulated clock in tests. */
  clock?: () => number;
  /** An invoice at least this often while something is due. Default 60 s. */
  intervalMs?: number;
  /** Invoice early once this much is due and unpaid (token units), at most every `minIntervalMs`. */
  unpaidLimit?: bigint;
  /** The shortest time between two invoices when `unpaidLimit` triggers them. Default 5 s. */
  minIntervalMs?: number;
  /**
   * Stop serving once this many invoices in a row are unpaid, counting the one just sent. Default 3:
   * the consumer had two full intervals to pay.
   */
  maxUnpaidInvoices?: number;
  /** How often {@link ProviderSession.start} ticks. Default 1 s. */
  tickMs?: number;
  /** Checks consumer signatures. Default: the JavaScript verifier. */
  verifier?: Verifier;
}

/** Events of a {@link ProviderSession}. */
export interface ProviderSessionEvents {
  /** An invoice was stored and is being sent. */
  invoice: [invoice: Invoice];
  /** A consumer promise was exchanged: the hub promise, and what the agreement is paid now. */
  paid: [hubPromise: SignedHubPromise, agreementTotal: bigint];
  /** Too many unpaid invoices: stop serving the consumer. */
  stop: [unpaidInvoices: number];
  /** The consumer caught up: serve it again. */
  resume: [];
  /** What a scheduled settlement check did. */
  settlement: [attempt: SettlementAttempt];
  /** A scheduled tick or settlement check failed. */
  error: [error: unknown];
}

/** An invoice sent and not paid yet, with its R. */
export interface PendingInvoice {
  hashlock: Hex;
  preimage: Hex;
  total: bigint;
}
