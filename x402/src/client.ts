import {
  agreementKey,
  type ConsumerLedger,
  encodeMessage,
  InvalidOptionError,
  type Invoice,
  InvoiceRejectedError,
  type Json,
  MemoryStore,
  Mutex,
  type SignedConsumerPromise,
  type Store,
  StoredStateError,
} from '@chit/sdk';
import type {
  PaymentPayloadContext,
  PaymentPayloadResult,
  PaymentRequirements,
  SchemeNetworkClient,
} from '@x402/core/types';
import type { Address, Hex } from 'viem';
import { RequirementsRejectedError, SpendingLimitError } from './errors.js';
import { KeyedLock } from './keyed-lock.js';
import {
  agreementIdOf,
  CHIT_SCHEME,
  type ChitPayload,
  due,
  MIB,
  networkOf,
  nowSeconds,
  parseAddress,
  parseAmount,
  readExtra,
} from './wire.js';

/** The buyer's spending limits, in token base units; each is off when absent. */
export interface ChitSpendingLimits {
  /** The most one payment may add (its increment). */
  perRequest?: bigint;
  /** The most an agreement total (all payments to one seller price) may reach. */
  perAgreement?: bigint;
  /**
   * The most the payments of the trailing hour may add up to. Kept per minute: a payment counts until an
   * hour after the end of its minute (up to a minute more than the hour, never less).
   */
  perHour?: bigint;
}

/** Options of a {@link ChitClientScheme}. */
export interface ChitClientSchemeOptions {
  /** The consumer's ledger at its hub: signs the promises and keeps the consumer's total. */
  ledger: ConsumerLedger;
  /** The hub's token: the only `asset` paid. */
  token: Address;
  /** The highest price of one request (`amount`) paid. */
  maxPricePerRequest: bigint;
  /** The highest price per MiB of response body (`extra.pricePerMiB`) paid. Default 0: none. */
  maxPricePerMiB?: bigint;
  limits?: ChitSpendingLimits;
  /** When set, only these sellers (`payTo`) are paid. */
  payees?: Address[];
  /** Where the usage meters and the hour's spending are kept: give it the ledger's store. Default: in memory. */
  store?: Store;
  /** The key of the document in `store`. Default `chit/x402/buyer/<chainId>/<hub>/<consumer>`. */
  key?: string;
  /**
   * The most body bytes the buyer accepts to pay without having received them, when a seller's
   * `WRONG_TOTAL` 402 shows that its last payment was credited but the response never arrived
   * ({@link ChitClientScheme.resync}). Default 16 MiB.
   */
  maxUnreceivedBytes?: bigint;
  /** An invoice is paid only if it is valid for this many more seconds. Default 5. */
  expiryMarginSeconds?: number;
  /** Milliseconds since the epoch; `Date.now` by default. */
  clock?: () => number;
}

/** What a buyer signed for a payment requirement. */
export interface ChitAuthorization {
  /** The agreement's key in the ledger (`agreementKey(provider, id)`). */
  agreement: string;
  promise: SignedConsumerPromise;
  /** What the payment adds to the agreement and the consumer's total (0 when an unanswered one is sent again). */
  increment: bigint;
  /** True when the promise is the one signed before for the same invoice, sent again. */
  repeated: boolean;
  payload: ChitPayload;
}

/** An authorization whose agreement stays locked until `release()`. */
export interface HeldAuthorization extends ChitAuthorization {
  release(): void;
}

/** What the buyer counted in an agreement: paid requests answered and the body bytes of their responses. */
export interface ChitUsage {
  requests: bigint;
  bytes: bigint;
}

interface PendingInvoice {
  nonce: Hex;
  hashlock: Hex;
  expiresAt: number;
  total: bigint;
  /** The seller refused the invoice as not its own: the promise is signed again for the next invoice. */
  refused?: boolean;
}

interface Meter extends ChitUsage {
  /** The invoice paid last whose response was not counted yet: sent again while valid, if still due. */
  pending: PendingInvoice | null;
}

interface BuyerState {
  agreements: Record<string, Meter>;
  /**
   * [the minute's start in unix ms, the increments paid in it] of the minutes of the trailing hour: at
   * most 61 entries however many payments, so that a buyer paying hundreds a second stores a few.
   */
  spent: [number, bigint][];
}

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;

/**
 * True while a minute's payments count in the trailing hour: until an hour after the minute ends, so
 * that a payment counts at least the hour after it (up to a minute longer), never less.
 */
const inHour = (minute: number, now: number) => minute + MINUTE_MS > now - HOUR_MS;

interface Checked {
  payTo: Address;
  amount: bigint;
  invoice: Exclude<ReturnType<typeof readExtra>, { ok: false }>['value'];
  agreementId: Hex;
  agreement: string;
}

/**
 * The buyer's side of the `chit` x402 scheme (`SchemeNetworkClient`): pays a seller's 402 with a consumer
 * promise signed by the consumer's {@link ConsumerLedger}, for the agreement total due after this request,
 * `due(n, B)` from its own usage meter (paid requests n, response bytes B, kept in `store`). Before
 * signing it checks the requirements (hub, chain, token, payee, prices within its maximums, invoice not
 * expired) and its spending limits; a refusal throws {@link RequirementsRejectedError} or
 * {@link SpendingLimitError} with nothing signed. The ledger keeps the consumer's cumulative total exact
 * and refuses a hashlock paid before.
 *
 * Use it through {@link chitFetch}, which also counts each paid response into the meter; registered on
 * an `x402Client` by hand, call {@link ChitClientScheme.recordResponse} after each paid response.
 *
 * @example
 * const scheme = new ChitClientScheme({ ledger, token, maxPricePerRequest: 1000n, maxPricePerMiB: 10n ** 15n, store });
 * const pay = chitFetch(fetch, scheme);
 * const response = await pay('https://api.example.com/weather');
 */
export class ChitClientScheme implements SchemeNetworkClient {
  readonly scheme = CHIT_SCHEME;
  readonly ledger: ConsumerLedger;
  readonly token: Address;
  readonly network: `eip155:${number}`;
  readonly maxPricePerRequest: bigint;
  readonly maxPricePerMiB: bigint;
  readonly limits: Readonly<ChitSpendingLimits>;
  readonly key: string;
  readonly #payees: Set<string> | undefined;
  readonly #store: Store;
  readonly #margin: number;
  readonly #maxUnreceived: bigint;
  readonly #clock: () => number;
  readonly #mutex = new Mutex();
  readonly #locks = new KeyedLock();
  #state: BuyerState | undefined;

  constructor(options: ChitClientSchemeOptions) {
    const token = parseAddress(options.token);
    if (!token) throw new InvalidOptionError('token', `expected an address, got ${options.token}`);
    if (options.maxPricePerRequest < 0n) throw new InvalidOptionError('maxPricePerRequest', 'expected >= 0');
    if ((options.maxPricePerMiB ?? 0n) < 0n) throw new InvalidOptionError('maxPricePerMiB', 'expected >= 0');
    this.ledger = options.ledger;
    this.token = token;
    this.network = networkOf(options.ledger.chainId);
    this.maxPricePerRequest = options.maxPricePerRequest;
    this.maxPricePerMiB = options.maxPricePerMiB ?? 0n;
    this.limits = { ...options.limits };
    this.#payees = options.payees ? new Set(options.payees.map((payee) => payee.toLowerCase())) : undefined;
    this.#store = options.store ?? new MemoryStore();
    const { ledger } = options;
    this.key =
      options.key ?? `chit/x402/buyer/${ledger.chainId}/${ledger.hub.toLowerCase()}/${ledger.consumer.toLowerCase()}`;
    this.#margin = options.expiryMarginSeconds ?? 5;
    this.#maxUnreceived = options.maxUnreceivedBytes ?? 16n * MIB;
    this.#clock = options.clock ?? Date.now;
  }

  /**
   * Signs the payment of a chit requirement (called by `x402Client`).
   *
   * @throws {RequirementsRejectedError | SpendingLimitError} nothing was signed.
   * @example
   * const { payload } = await scheme.createPaymentPayload(2, paymentRequired.accepts[0]);
   */
  async createPaymentPayload(
    x402Version: number,
    paymentRequirements: PaymentRequirements,
    _context?: PaymentPayloadContext,
  ): Promise<PaymentPayloadResult> {
    const authorization = await this.authorize(paymentRequirements);
    authorization.release();
    return { x402Version, payload: authorization.payload as unknown as Record<string, unknown> };
  }

  /**
   * Checks a requirement and signs its payment, holding the agreement until `release()` so that the
   * next payment of the agreement waits for this one's response to be counted ({@link chitFetch}
   * releases it after {@link recordResponse}). When the invoice paid last in the agreement was not
   * answered and is still valid and due, its promise is sent again, with its invoice written into
   * `requirements.extra` (the `accepted` requirement the seller sees).
   *
   * @throws {RequirementsRejectedError | SpendingLimitError} nothing was signed (the agreement is released).
   * @example
   * const held = await scheme.authorize(requirements);
   * try { ... } finally { held.release(); }
   */
  async authorize(requirements: PaymentRequirements): Promise<HeldAuthorization> {
    const checked = this.#check(requirements);
    const release = await this.#locks.acquire(checked.agreement);
    try {
      const authorization = await this.#mutex.run(() => this.#sign(requirements, checked));
      return { ...authorization, release };
    } catch (error) {
      release();
      throw error;
    }
  }

  /**
   * Counts a paid response (the seller answered it with a successful PAYMENT-RESPONSE) into the
   * agreement's meter: one request more, `bytes` of body more.
   *
   * @example
   * await scheme.recordResponse(held, body.byteLength);
   */
  recordResponse(authorization: ChitAuthorization, bytes: number | bigint): Promise<void> {
    return this.#mutex.run(async () => {
      const state = await this.#load();
      const meter = state.agreements[authorization.agreement] ?? { requests: 0n, bytes: 0n, pending: null };
      const next: BuyerState = {
        ...state,
        agreements: {
          ...state.agreements,
          [authorization.agreement]: {
            requests: meter.requests + 1n,
            bytes: meter.bytes + BigInt(bytes),
            pending: meter.pending?.hashlock === authorization.promise.hashlock ? null : meter.pending,
          },
        },
      };
      await this.#save(next);
    });
  }

  /**
   * Catches up with a seller whose `WRONG_TOTAL` 402 says (in `extra.meter`) that it served and was
   * credited the payment this buyer sent last, whose response never arrived: the meter takes the
   * seller's count when it is exactly one request ahead, the credited total is the one this buyer
   * signed last, and the bytes not received are at most `maxUnreceivedBytes`. The buyer thus pays for
   * one response it did not get (at most its price and those bytes) rather than staying stuck.
   *
   * @returns true when the meter was moved (pay again with a fresh 402), false when the seller's
   * figures were not accepted (nothing changed).
   * @example
   * if (await scheme.resync(held.agreement, meter)) response = await pay(url);
   */
  resync(agreement: string, seller: { requests: bigint; bytes: bigint; credited: bigint }): Promise<boolean> {
    return this.#mutex.run(async () => {
      const state = await this.#load();
      const meter = state.agreements[agreement];
      if (!meter?.pending || seller.credited !== meter.pending.total) return false;
      if (seller.requests !== meter.requests + 1n) return false;
      const unreceived = seller.bytes - meter.bytes;
      if (unreceived < 0n || unreceived > this.#maxUnreceived) return false;
      await this.#save({
        ...state,
        agreements: {
          ...state.agreements,
          [agreement]: { requests: seller.requests, bytes: seller.bytes, pending: null },
        },
      });
      return true;
    });
  }

  /**
   * Notes that the seller refused the invoice of a payment as not its own (`UNKNOWN_INVOICE`,
   * `HASHLOCK_MISMATCH`: a seller restarted with another secret, an invoice altered on the way), so
   * the promise was never exchanged. The next payment of the agreement, instead of sending the same
   * promise again on that invoice, signs it again for the new invoice (`ConsumerLedger.reissue`: the
   * same totals, nothing more paid).
   *
   * @example
   * if (refusal === 'UNKNOWN_INVOICE') await scheme.refused(held);
   */
  refused(authorization: ChitAuthorization): Promise<void> {
    return this.#mutex.run(async () => {
      const state = await this.#load();
      const meter = state.agreements[authorization.agreement];
      if (!meter?.pending || meter.pending.hashlock !== authorization.promise.hashlock.toLowerCase()) return;
      await this.#save({
        ...state,
        agreements: {
          ...state.agreements,
          [authorization.agreement]: { ...meter, pending: { ...meter.pending, refused: true } },
        },
      });
    });
  }

  /**
   * What the buyer counted in an agreement with a seller.
   *
   * @example
   * const { requests, bytes } = await scheme.usage(seller, agreementId);
   */
  usage(provider: Address, agreementId: Hex): Promise<ChitUsage> {
    return this.#mutex.run(async () => {
      const meter = (await this.#load()).agreements[agreementKey(provider, agreementId)];
      return { requests: meter?.requests ?? 0n, bytes: meter?.bytes ?? 0n };
    });
  }

  /**
   * What the payments of the trailing hour added up to (per minute, as `limits.perHour` counts them).
   *
   * @example
   * const spent = await scheme.spentLastHour();
   */
  spentLastHour(): Promise<bigint> {
    return this.#mutex.run(async () => this.#hourly(await this.#load()));
  }

  #check(requirements: PaymentRequirements): Checked {
    const reject = (
      reason: ConstructorParameters<typeof RequirementsRejectedError>[0],
      what: string,
      details: string,
    ) => new RequirementsRejectedError(reason, what, `${details} Nothing was signed.`);
    if (requirements.scheme !== CHIT_SCHEME) {
      throw reject(
        'MALFORMED',
        `Not a chit requirement: scheme ${requirements.scheme}`,
        'Register this scheme for chit only.',
      );
    }
    if (requirements.network !== this.network) {
      throw reject(
        'WRONG_NETWORK',
        `Wrong network: the seller asks on ${requirements.network}, this consumer pays on ${this.network}`,
        'The seller must use a hub on the chain of the consumer’s channel.',
      );
    }
    const extra = readExtra(requirements.extra);
    if (!extra.ok) {
      throw reject(
        'MALFORMED',
        `Malformed requirement: ${extra.field} is missing or invalid`,
        'The seller’s 402 does not follow the chit scheme.',
      );
    }
    const invoice = extra.value;
    if (invoice.hub.toLowerCase() !== this.ledger.hub.toLowerCase()) {
      throw reject(
        'WRONG_HUB',
        `Wrong hub: the seller asks at hub ${invoice.hub}, this consumer pays through ${this.ledger.hub}`,
        'The seller must use the hub the consumer has its channel at.',
      );
    }
    if (requirements.asset.toLowerCase() !== this.token.toLowerCase()) {
      throw reject(
        'WRONG_ASSET',
        `Wrong asset: the seller asks for ${requirements.asset}, this consumer pays in ${this.token}`,
        'The asset must be the hub’s token.',
      );
    }
    const payTo = parseAddress(requirements.payTo);
    if (!payTo) throw reject('MALFORMED', `Malformed requirement: payTo ${requirements.payTo}`, 'Expected an address.');
    if (this.#payees && !this.#payees.has(payTo.toLowerCase())) {
      throw reject(
        'WRONG_PAYEE',
        `Unknown payee: ${payTo} is not one of the sellers this consumer pays`,
        'Add it to `payees`.',
      );
    }
    const amount = parseAmount(requirements.amount);
    if (amount === undefined || amount === 0n) {
      throw reject(
        'MALFORMED',
        `Malformed requirement: amount ${requirements.amount}`,
        'Expected a positive decimal string of base units.',
      );
    }
    if (amount > this.maxPricePerRequest) {
      throw reject(
        'PRICE_TOO_HIGH',
        `Price too high: ${amount} per request, this consumer pays at most ${this.maxPricePerRequest}`,
        'Raise maxPricePerRequest to pay this seller.',
      );
    }
    if (invoice.pricePerMiBValue > this.maxPricePerMiB) {
      throw reject(
        'PRICE_TOO_HIGH',
        `Price too high: ${invoice.pricePerMiBValue} per MiB, this consumer pays at most ${this.maxPricePerMiB}`,
        'Raise maxPricePerMiB to pay this seller.',
      );
    }
    const agreementId = agreementIdOf(invoice.agreementSalt, this.ledger.consumer);
    return { payTo, amount, invoice, agreementId, agreement: agreementKey(payTo, agreementId) };
  }

  async #sign(requirements: PaymentRequirements, checked: Checked) {
    const { payTo, amount, invoice, agreementId, agreement } = checked;
    const state = await this.#load();
    const meter = state.agreements[agreement] ?? { requests: 0n, bytes: 0n, pending: null };
    const total = due(meter.requests + 1n, meter.bytes, amount, invoice.pricePerMiBValue);
    const now = nowSeconds(this.#clock);
    const pending = meter.pending;
    let paying = { nonce: invoice.nonce, hashlock: invoice.hashlock, expiresAt: invoice.expiresAt };
    const again = pending?.total === total ? pending : null;
    // The payment sent last was not answered: the same promise again, on its own invoice (the seller
    // takes the exact next payment on any invoice it issued, however old).
    if (again && !again.refused) {
      paying = { nonce: again.nonce, hashlock: again.hashlock, expiresAt: again.expiresAt };
      Object.assign(requirements.extra, paying);
    } else if (invoice.expiresAt - this.#margin < now) {
      throw new RequirementsRejectedError(
        'INVOICE_EXPIRED',
        `Invoice expired: it is valid until ${invoice.expiresAt}, now is ${now}`,
        'Nothing was signed. Ask the seller again for a fresh 402.',
      );
    }
    const chitInvoice: Invoice = {
      hub: this.ledger.hub,
      chainId: this.ledger.chainId,
      provider: payTo,
      agreementId,
      agreementTotal: total,
      hashlock: paying.hashlock,
      fee: 0,
    };
    let payment: Awaited<ReturnType<ConsumerLedger['payInvoice']>>;
    try {
      // The seller refused the last invoice as not its own: the same totals again, for this invoice.
      payment = again?.refused
        ? await this.ledger.reissue(chitInvoice, again.hashlock)
        : await this.ledger.payInvoice(chitInvoice, (paid) => this.#checkLimits(state, total, total - paid));
    } catch (error) {
      if (
        error instanceof InvoiceRejectedError &&
        (error.reason === 'NOTHING_DUE' || error.reason === 'DECREASING_TOTAL')
      ) {
        throw new RequirementsRejectedError(
          'OUT_OF_SYNC',
          `Out of sync: agreement ${agreementId} with ${payTo} was paid ${total} or more already, for a request whose answer was not counted`,
          'Nothing was signed. The payment before was signed but its response never arrived; the seller and this buyer no longer agree on the usage of the agreement.',
        );
      }
      throw error;
    }
    if (!payment.repeated) {
      const at = this.#clock();
      const minute = at - (at % MINUTE_MS);
      const spent = state.spent.filter(([start]) => inHour(start, at));
      const last = spent.at(-1);
      if (payment.increment > 0n) {
        if (last?.[0] === minute) spent[spent.length - 1] = [minute, last[1] + payment.increment];
        else spent.push([minute, payment.increment]);
      }
      const next: BuyerState = {
        spent,
        agreements: { ...state.agreements, [agreement]: { ...meter, pending: { ...paying, total } } },
      };
      await this.#save(next);
    }
    const payload: ChitPayload = {
      promise: encodeMessage(payment.promise),
      usage: { requests: String(meter.requests + 1n), bytes: String(meter.bytes) },
    };
    return { agreement, promise: payment.promise, increment: payment.increment, repeated: payment.repeated, payload };
  }

  #checkLimits(state: BuyerState, total: bigint, increment: bigint): void {
    const { perRequest, perAgreement, perHour } = this.limits;
    if (perRequest !== undefined && increment > perRequest) {
      throw new SpendingLimitError('perRequest', perRequest, increment, 'this payment');
    }
    if (perAgreement !== undefined && total > perAgreement) {
      throw new SpendingLimitError('perAgreement', perAgreement, total, 'the agreement total');
    }
    if (perHour !== undefined) {
      const hour = this.#hourly(state) + increment;
      if (hour > perHour) throw new SpendingLimitError('perHour', perHour, hour, 'the trailing hour’s spending');
    }
  }

  #hourly(state: BuyerState): bigint {
    const now = this.#clock();
    return state.spent.reduce((sum, [minute, amount]) => (inHour(minute, now) ? sum + amount : sum), 0n);
  }

  async #load(): Promise<BuyerState> {
    if (this.#state) return this.#state;
    const json = await this.#store.get(this.key);
    this.#state = json === undefined ? { agreements: {}, spent: [] } : this.#decode(json);
    return this.#state;
  }

  #decode(json: Json): BuyerState {
    try {
      const doc = json as {
        version: number;
        hub: string;
        chainId: number;
        consumer: string;
        agreements: Record<
          string,
          {
            requests: string;
            bytes: string;
            pending: (Omit<PendingInvoice, 'total'> & { total: string }) | null;
          }
        >;
        spent: [number, string][];
      };
      if (doc.version !== 1) throw new Error(`version ${doc.version}`);
      if (
        doc.hub.toLowerCase() !== this.ledger.hub.toLowerCase() ||
        doc.chainId !== this.ledger.chainId ||
        doc.consumer.toLowerCase() !== this.ledger.consumer.toLowerCase()
      ) {
        throw new Error('it belongs to another hub, chain or consumer');
      }
      const amount = (value: string) => {
        const parsed = parseAmount(value);
        if (parsed === undefined) throw new Error(`bad amount ${value}`);
        return parsed;
      };
      const agreements: Record<string, Meter> = {};
      for (const [key, meter] of Object.entries(doc.agreements)) {
        agreements[key] = {
          requests: amount(meter.requests),
          bytes: amount(meter.bytes),
          pending: meter.pending
            ? { ...meter.pending, total: amount(meter.pending.total), refused: meter.pending.refused === true }
            : null,
        };
      }
      return { agreements, spent: doc.spent.map(([at, value]) => [at, amount(value)]) };
    } catch (error) {
      throw new StoredStateError(this.key, error instanceof Error ? error.message : String(error), error);
    }
  }

  async #save(state: BuyerState): Promise<void> {
    const document: Json = {
      version: 1,
      hub: this.ledger.hub,
      chainId: this.ledger.chainId,
      consumer: this.ledger.consumer,
      agreements: Object.fromEntries(
        Object.entries(state.agreements).map(([key, meter]) => [
          key,
          {
            requests: meter.requests.toString(),
            bytes: meter.bytes.toString(),
            pending: meter.pending ? { ...meter.pending, total: meter.pending.total.toString() } : null,
          },
        ]),
      ),
      spent: state.spent.map(([at, amount]) => [at, amount.toString()]),
    };
    await this.#store.put(this.key, document);
    this.#state = state;
  }
}
