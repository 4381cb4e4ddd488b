import { type Address, getAddress, type Hex } from 'viem';
import { z } from 'zod';
import { InvalidSignatureError } from '../errors/protocol.js';
import { InvalidOptionError } from '../hub-client/errors.js';
import { encodeMessage, wireSchemas } from '../protocol/codec.js';
import { newHashlock } from '../protocol/hashlock.js';
import type { Invoice, SignedConsumerPromise, SignedHubPromise } from '../protocol/types.js';
import { jsVerifier, type Verifier } from '../protocol/verifier.js';
import { recoverConsumerPromiseSigner } from '../protocol/verify.js';
import { Emitter } from './emitter.js';
import { Mutex } from './mutex.js';
import { amountDue, checkPrices, type Prices, toBytes } from './pricing.js';
import type { ProviderLedger } from './provider-ledger.js';
import { checkPromise, positive, reject } from './provider-session.checks.js';
import type { PendingInvoice, ProviderSessionEvents, ProviderSessionOptions } from './provider-session.types.js';
import { readState, storedAmount, storedBytes32 } from './state.js';
import type { Json } from './store.js';
import { newAgreementId, sameHex } from './util.js';

export type { ProviderSessionEvents, ProviderSessionOptions } from './provider-session.types.js';

const documentSchema = z.strictObject({
  version: z.literal(1),
  consumer: z.string().nullable(),
  invoicedTotal: storedAmount,
  pending: z.array(z.strictObject({ hashlock: storedBytes32, preimage: storedBytes32, total: storedAmount })),
  lastPaid: z.strictObject({ signature: z.string(), hubPromise: wireSchemas.hubPromise }).nullable(),
});

/**
 * The provider's side of one session with one consumer. It measures time (from its construction, by
 * `clock`) and traffic ({@link ProviderSession.addTraffic}), and invoices what is due at its prices,
 * rounded down: every `intervalMs`, and as soon as `unpaidLimit` is due and unpaid. Each invoice has a
 * fresh R, stored before the invoice is sent.
 *
 * On the consumer's promise ({@link ProviderSession.receivePromise}) it checks the promise against the
 * invoice it pays (hub, chain, provider, agreement, hashlock, total, consumer signature), exchanges it
 * through the {@link ProviderLedger}, which checks and stores the hub promise, and returns the hub
 * promise.
 *
 * After `maxUnpaidInvoices` unpaid invoices in a row, {@link ProviderSession.shouldServe} turns false and
 * `stop` is emitted; a payment that catches up emits `resume`. Time is billed from the session's start,
 * paused or not: close the session when the service ends. With a settlement policy on the ledger, each
 * tick lets the ledger settle by it.
 *
 * @example
 * const session = new ProviderSession({
 *   ledger,
 *   consumer,
 *   prices: { perMinute: 10n ** 15n, perGiB: 10n ** 16n },
 *   send: (invoice) => peer.send(encodeMessage(invoice)),
 * });
 * session.on('stop', () => tunnel.close());
 * tunnel.on('bytes', (n) => session.addTraffic(n));
 * peer.on('promise', async (json) => session.receivePromise(decodeMessage('consumerPromise', json)));
 * session.start();
 */
export class ProviderSession {
  readonly ledger: ProviderLedger;
  readonly agreementId: Hex;
  readonly prices: Prices;
  readonly startedAt: number;
  readonly #send: (invoice: Invoice) => void | Promise<void>;
  readonly #clock: () => number;
  readonly #intervalMs: number;
  readonly #minIntervalMs: number;
  readonly #unpaidLimit: bigint | undefined;
  readonly #maxUnpaid: number;
  readonly #tickMs: number;
  readonly #verifier: Verifier;
  readonly #events = new Emitter<ProviderSessionEvents>();
  readonly #mutex = new Mutex();
  #consumer: Address | undefined;
  #bytes = 0n;
  #base = 0n;
  #credited = 0n;
  #invoicedTotal = 0n;
  #lastInvoiceAt: number;
  #pending: PendingInvoice[] = [];
  #lastPaid: { signature: Hex; hubPromise: SignedHubPromise } | null = null;
  #serving = true;
  #closed = false;
  #ready: Promise<void> | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticking = false;

  constructor(options: ProviderSessionOptions) {
    this.ledger = options.ledger;
    this.#send = options.send;
    this.prices = checkPrices(options.prices);
    this.#consumer = options.consumer ? getAddress(options.consumer) : undefined;
    this.agreementId = (options.agreementId ?? newAgreementId()).toLowerCase() as Hex;
    if (!/^0x[0-9a-f]{64}$/.test(this.agreementId)) {
      throw new InvalidOptionError('agreementId', `expected 32 bytes as 0x-hex, got ${options.agreementId}`);
    }
    this.#clock = options.clock ?? Date.now;
    this.#intervalMs = positive('intervalMs', options.intervalMs ?? 60_000);
    this.#minIntervalMs = positive('minIntervalMs', options.minIntervalMs ?? 5_000);
    this.#unpaidLimit = options.unpaidLimit;
    if (this.#unpaidLimit !== undefined && this.#unpaidLimit <= 0n) {
      throw new InvalidOptionError('unpaidLimit', 'expected a positive bigint');
    }
    this.#maxUnpaid = options.maxUnpaidInvoices ?? 3;
    if (!Number.isInteger(this.#maxUnpaid) || this.#maxUnpaid < 1) {
      throw new InvalidOptionError('maxUnpaidInvoices', `expected an integer >= 1, got ${this.#maxUnpaid}`);
    }
    this.#tickMs = positive('tickMs', options.tickMs ?? 1_000);
    this.#verifier = options.verifier ?? jsVerifier;
    this.startedAt = this.#clock();
    this.#lastInvoiceAt = this.startedAt;
  }

  /** The consumer this session serves, once known. */
  get consumer(): Address | undefined {
    return this.#consumer;
  }

  /** Bytes measured since the session began. */
  get bytes(): bigint {
    return this.#bytes;
  }

  /** Invoices sent and not paid yet. */
  get unpaidInvoices(): number {
    return this.#pending.length;
  }

  /** The agreement total the hub credited: what the consumer has paid in this agreement. */
  get paid(): bigint {
    return this.#credited;
  }

  /**
   * Subscribes to an event; returns a function that unsubscribes.
   *
   * @example
   * const off = session.on('stop', (unpaid) => console.warn(`${unpaid} unpaid invoices: stopping`));
   */
  on<K extends keyof ProviderSessionEvents>(
    event: K,
    listener: (...args: ProviderSessionEvents[K]) => void,
  ): () => void {
    return this.#events.on(event, listener);
  }

  /**
   * Whether to keep serving the consumer: false after `maxUnpaidInvoices` unpaid invoices in a row,
   * and once the session is closed.
   *
   * @example
   * if (!session.shouldServe()) tunnel.pause();
   */
  shouldServe(): boolean {
    return this.#serving && !this.#closed;
  }

  /**
   * Adds measured traffic (both directions to and from the consumer), in bytes.
   *
   * @example
   * session.addTraffic(1500);
   */
  addTraffic(bytes: number | bigint): void {
    this.#bytes += toBytes(bytes);
  }

  /**
   * The agreement total due now: what was credited when the session began plus the session's time and
   * traffic at its prices, rounded down.
   *
   * @example
   * const due = session.due();
   */
  due(): bigint {
    return this.#base + amountDue(this.prices, this.#clock() - this.startedAt, this.#bytes, 'down');
  }

  /**
   * Sends an invoice when one is due: `intervalMs` after the last one, or `unpaidLimit` unpaid (at most
   * every `minIntervalMs`), and only while serving. Lets the ledger settle by its policy. Returns the
   * invoice sent, if any. {@link ProviderSession.start} calls it every `tickMs`; call it yourself to
   * drive the session from your own loop or a simulated clock.
   *
   * @throws whatever `send` throws; the invoice stays stored and counts as unpaid.
   * @example
   * const invoice = await session.tick();
   */
  async tick(): Promise<Invoice | undefined> {
    return this.#tick(false);
  }

  /**
   * Invoices what is due now, whatever the interval: for a consumer about to leave, so that the time
   * and traffic since the last invoice are paid too. Sends nothing when nothing new is due, after
   * {@link ProviderSession.close}, or while not serving. Returns the invoice sent, if any.
   *
   * @throws whatever `send` throws; the invoice stays stored and counts as unpaid.
   * @example
   * peer.on('bye', () => session.invoiceNow());
   */
  async invoiceNow(): Promise<Invoice | undefined> {
    return this.#tick(true);
  }

  async #tick(anyTime: boolean): Promise<Invoice | undefined> {
    const invoice = await this.#mutex.run(async () => {
      await this.#init();
      if (this.#closed) return undefined;
      await this.#sync();
      if (!this.#serving) return undefined;
      const now = this.#clock();
      const due = this.due();
      if (due <= this.#invoicedTotal) return undefined;
      const sinceLast = now - this.#lastInvoiceAt;
      const byTime = sinceLast >= this.#intervalMs;
      const byAmount =
        this.#unpaidLimit !== undefined &&
        due - this.#credited >= this.#unpaidLimit &&
        sinceLast >= this.#minIntervalMs;
      if (!anyTime && !byTime && !byAmount) return undefined;
      return this.#issue(due, now);
    });
    if (invoice) {
      this.#events.emit('invoice', invoice);
      if (!this.#serving) this.#events.emit('stop', this.#pending.length);
      await this.#send(invoice);
    }
    if (this.ledger.hasSettlementPolicy && !this.#closed) {
      try {
        const attempt = await this.ledger.maybeSettle();
        if (!attempt.throttled) this.#events.emit('settlement', attempt);
      } catch (error) {
        this.#events.emit('error', error);
      }
    }
    return invoice;
  }

  /**
   * Checks a consumer promise against the invoice it pays, exchanges it at the hub through the ledger,
   * and returns the hub promise. The same promise received twice gets the same hub promise.
   *
   * @throws {PromiseRejectedError} the promise does not pay an open invoice of this session.
   * @throws {InvalidSignatureError} it is not signed by its consumer.
   * @throws {HubError} the hub refused it (`OVERSPEND`: the consumer cannot pay).
   * @throws {HubAnswerRejectedError} the hub's answer breaks the protocol.
   * @example
   * const hubPromise = await session.receivePromise(decodeMessage('consumerPromise', json));
   */
  async receivePromise(promise: SignedConsumerPromise): Promise<SignedHubPromise> {
    const result = await this.#mutex.run(async () => {
      await this.#init();
      if (this.#lastPaid && this.#lastPaid.signature === promise.signature.toLowerCase()) {
        return { hubPromise: this.#lastPaid.hubPromise, fresh: false, resumed: false, total: 0n };
      }
      if (this.#closed) reject('SESSION_CLOSED', 'This session is closed', 'Open a new session.');
      const pending = checkPromise(promise, this.ledger, this.agreementId, this.#consumer, this.#pending);
      const signer = recoverConsumerPromiseSigner(promise, this.#verifier);
      if (!signer || !sameHex(signer, promise.consumer)) throw new InvalidSignatureError(promise.consumer, signer);
      const hubPromise = await this.ledger.exchange(promise, pending.preimage);
      const wasServing = this.#serving;
      this.#consumer ??= getAddress(promise.consumer);
      if (promise.agreement.total > this.#credited) this.#credited = promise.agreement.total;
      if (this.#invoicedTotal < this.#credited) this.#invoicedTotal = this.#credited;
      this.#pending = this.#pending.filter((invoice) => invoice.total > this.#credited);
      this.#lastPaid = { signature: promise.signature.toLowerCase() as Hex, hubPromise };
      this.#serving = this.#pending.length < this.#maxUnpaid;
      await this.#save();
      return { hubPromise, fresh: true, resumed: !wasServing && this.#serving, total: this.#credited };
    });
    if (result.fresh) this.#events.emit('paid', result.hubPromise, result.total);
    if (result.resumed) this.#events.emit('resume');
    return result.hubPromise;
  }

  /**
   * Ticks every `tickMs` until {@link ProviderSession.close}; failures are emitted as `error`.
   *
   * @example
   * session.start();
   */
  start(): void {
    if (this.#timer || this.#closed) return;
    this.#timer = setInterval(() => {
      if (this.#ticking) return;
      this.#ticking = true;
      this.tick()
        .catch((error: unknown) => this.#events.emit('error', error))
        .finally(() => {
          this.#ticking = false;
        });
    }, this.#tickMs);
    (this.#timer as { unref?: () => void }).unref?.();
  }

  /**
   * Stops ticking and refuses further promises. The stored preimages stay: a late promise can still
   * be exchanged by a session opened again with the same `agreementId`.
   *
   * @example
   * session.close();
   */
  close(): void {
    this.#closed = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  async #issue(total: bigint, now: number): Promise<Invoice> {
    const info = this.ledger.info;
    const { preimage, hashlock } = newHashlock();
    const invoice: Invoice = {
      hub: info.hub,
      chainId: info.chainId,
      provider: this.ledger.provider,
      agreementId: this.agreementId,
      agreementTotal: total,
      hashlock,
      fee: info.fee,
    };
    this.#pending = [...this.#pending, { hashlock, preimage, total }];
    this.#invoicedTotal = total;
    this.#lastInvoiceAt = now;
    this.#serving = this.#pending.length < this.#maxUnpaid;
    await this.#save(); // R is stored before the invoice leaves
    return invoice;
  }

  /** Drops invoices the hub credited through another path (an exchange completed by the ledger later). */
  async #sync(): Promise<void> {
    const credited = await this.ledger.credited(this.agreementId);
    if (credited <= this.#credited) return;
    this.#credited = credited;
    if (this.#invoicedTotal < credited) this.#invoicedTotal = credited;
    const before = this.#pending.length;
    this.#pending = this.#pending.filter((invoice) => invoice.total > credited);
    if (this.#pending.length !== before) {
      const wasServing = this.#serving;
      this.#serving = this.#pending.length < this.#maxUnpaid;
      await this.#save();
      if (!wasServing && this.#serving) this.#events.emit('resume');
    }
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      await this.ledger.open();
      const stored = await readState(this.ledger.store, this.#key(), documentSchema);
      this.#credited = await this.ledger.credited(this.agreementId);
      this.#base = this.#credited;
      if (stored) {
        if (stored.consumer) this.#consumer ??= getAddress(stored.consumer);
        this.#pending = stored.pending.filter((invoice) => invoice.total > this.#credited);
        this.#invoicedTotal = stored.invoicedTotal;
        this.#lastPaid = stored.lastPaid
          ? { signature: stored.lastPaid.signature.toLowerCase() as Hex, hubPromise: stored.lastPaid.hubPromise }
          : null;
      }
      if (this.#invoicedTotal < this.#credited) this.#invoicedTotal = this.#credited;
      this.#serving = this.#pending.length < this.#maxUnpaid;
    })().catch((error: unknown) => {
      this.#ready = undefined;
      throw error;
    });
    return this.#ready;
  }

  #key(): string {
    return `${this.ledger.key}/agreements/${this.agreementId}`;
  }

  async #save(): Promise<void> {
    const document: Json = {
      version: 1,
      consumer: this.#consumer ?? null,
      invoicedTotal: this.#invoicedTotal.toString(),
      pending: this.#pending.map((invoice) => ({
        hashlock: invoice.hashlock,
        preimage: invoice.preimage,
        total: invoice.total.toString(),
      })),
      lastPaid: this.#lastPaid
        ? { signature: this.#lastPaid.signature, hubPromise: encodeMessage(this.#lastPaid.hubPromise) }
        : null,
    };
    await this.ledger.store.put(this.#key(), document);
  }
}
