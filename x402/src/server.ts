import { createHmac, randomBytes } from 'node:crypto';
import {
  decodeMessage,
  encodeMessage,
  hashlockOf,
  InvalidOptionError,
  type Json,
  type ProviderLedger,
  type SignedConsumerPromise,
  type SignedHubPromise,
  StoredStateError,
  verifyConsumerPromise,
} from '@chit/sdk';
import type { HTTPTransportContext } from '@x402/core/server';
import type {
  AssetAmount,
  DeepReadonly,
  Network,
  PaymentPayload,
  PaymentRequirements,
  Price,
  SchemeNetworkServer,
  SchemePaymentRequiredContext,
  SchemeServerHooks,
  SettleResponse,
  SupportedKind,
} from '@x402/core/types';
import { type Address, bytesToHex, type Hex, hexToBytes } from 'viem';
import { KeyedLock } from './keyed-lock.js';
import {
  agreementIdOf,
  CHIT_SCHEME,
  type ChitInvoiceExtra,
  DYNAMIC_EXTRA_FIELDS,
  due,
  networkOf,
  nowSeconds,
  parseAddress,
  parseAmount,
  parseBytes32,
  readExtra,
} from './wire.js';

/** Options of a {@link ChitServerScheme}. */
export interface ChitServerSchemeOptions {
  /** The seller's ledger at the hub, opened (`await ledger.open()`): it exchanges the buyers' promises. */
  ledger: ProviderLedger;
  /**
   * The seller's invoice secret, at least 32 bytes (0x-hex or bytes): R = HMAC-SHA256(secret, nonce).
   * Keep it across restarts, or invoices issued before a restart are refused.
   */
  secret: Hex | Uint8Array;
  /** The hub service URL, written into `extra.hubUrl`. */
  hubUrl: string;
  /** How long a 402's invoice may be paid, in seconds. Default 300. */
  invoiceTtlSeconds?: number;
  /**
   * Who verifies a payment before the request is served:
   * - `'seller'` (default): the seller checks it alone (its invoice, the agreement total, the consumer's
   *   signature with the ledger's verifier), and asks the hub (`/x402/verify`) only for the first
   *   payment of an agreement since the seller started, and the first after an exchange the hub
   *   refused. The hub checks every promise anyway when it is exchanged, before the response leaves: a
   *   refused exchange withholds the response (the 402 of a failed settlement). So a payment the seller
   *   accepts and the hub refuses costs one call to the API, never a free response.
   * - `'hub'`: every payment is also verified at the hub before the API is called.
   */
  verify?: 'seller' | 'hub';
  /** Milliseconds since the epoch; `Date.now` by default. */
  clock?: () => number;
}

/** Why a seller refused a chit payment (the `invalidReason` / `errorReason` of the 402). */
export type ChitPaymentRejection =
  | 'MALFORMED'
  | 'UNKNOWN_INVOICE'
  | 'HASHLOCK_MISMATCH'
  | 'WRONG_HUB'
  | 'WRONG_CHAIN'
  | 'WRONG_PAYEE'
  | 'WRONG_AGREEMENT'
  | 'WRONG_TOTAL'
  | 'INVALID_SIGNATURE';

/** What the seller counted in an agreement: paid requests served and the body bytes of their responses. */
export interface ChitSellerUsage {
  requests: bigint;
  bytes: bigint;
}

interface SellerMeter extends ChitSellerUsage {
  /**
   * The settlement last sent to the hub: counted once the hub credited `total`. The store keeps it after
   * the exchange too; the ledger's credited total, stored by the exchange, tells whether it counts.
   */
  pending: { total: bigint; bytes: bigint } | null;
}

/** Meters kept in memory, at most: past this many agreements the cache starts again from the store. */
const METERS_CACHED = 10_000;

interface CheckedPayment {
  promise: SignedConsumerPromise;
  preimage: Hex;
  agreementId: Hex;
  meter: SellerMeter;
  total: bigint;
}

type Rejection = { reason: ChitPaymentRejection; message: string };

/** A payment's checks that do not depend on the meter (`#checkInvoice`). */
interface InvoiceCheck {
  promise: SignedConsumerPromise;
  preimage: Hex;
  agreementId: Hex;
  amount: bigint;
  pricePerMiB: bigint;
}

/**
 * The seller's side of the `chit` x402 scheme (`SchemeNetworkServer`). Prices are token base units.
 * For each unpaid request it mints an invoice (nonce, hashlock, expiresAt) into the 402; on a paid
 * request it checks that the invoice is its own, that the promise pays its hashlock and the buyer's
 * agreement with this seller at this price, and that the agreement total is exactly `due(n, B)` by its
 * own meter; then the consumer's signature itself, or the hub's `/x402/verify` for an agreement's first
 * payment (see {@link ChitServerSchemeOptions.verify}). An invoice's `expiresAt` bounds when a buyer signs a
 * new one; the seller takes the exact next payment of an agreement on any invoice it issued, so that a
 * buyer can send an unanswered payment again. A `WRONG_TOTAL` 402 carries the seller's meter of the
 * agreement (`extra.meter`), so that a buyer whose last response was lost can catch up. After the handler it exchanges the promise
 * through its {@link ProviderLedger} (not the hub's `/x402/settle`), so the provider's store stays exact
 * and crash-safe, and counts the response body into the meter (kept in the ledger's store). The
 * PAYMENT-RESPONSE carries the hub promise and the invoice of the buyer's next request
 * (`extra.nextInvoice`), minted as a 402's and stored nowhere, so that a buyer pays it in one round trip.
 *
 * @example
 * await ledger.open();
 * const scheme = new ChitServerScheme({ ledger, secret, hubUrl });
 * const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: `${hubUrl}/x402` })).register(scheme.network, scheme);
 */
export class ChitServerScheme implements SchemeNetworkServer {
  readonly scheme = CHIT_SCHEME;
  readonly defaultAssetTransferMethod = 'default';
  readonly paymentFlows = { default: { supported: ['authorization'], default: 'authorization' } } as const;
  readonly dynamicExtraFields = [...DYNAMIC_EXTRA_FIELDS];
  readonly schemeHooks: SchemeServerHooks;
  readonly ledger: ProviderLedger;
  readonly network: Network;
  readonly hub: Address;
  readonly token: Address;
  readonly provider: Address;
  readonly hubUrl: string;
  readonly #secret: Uint8Array;
  readonly #ttl: number;
  readonly #clock: () => number;
  readonly #locks = new KeyedLock();
  readonly #verify: 'seller' | 'hub';
  /** Agreements whose last exchange the hub accepted since this seller started: verified here alone. */
  readonly #inGoodStanding = new Set<Hex>();
  readonly #salts = new Map<string, Hex>();
  /** Each agreement's meter as the store and the ledger's credited totals give it, with no pending left. */
  readonly #meters = new Map<Hex, SellerMeter>();
  /** Changes to the meters so far: a read of the store that saw one happen under it is not kept. */
  #meterChanges = 0;

  constructor(options: ChitServerSchemeOptions) {
    const secret = typeof options.secret === 'string' ? hexToBytes(options.secret) : options.secret;
    if (secret.length < 32) throw new InvalidOptionError('secret', `expected at least 32 bytes, got ${secret.length}`);
    const info = options.ledger.info;
    this.ledger = options.ledger;
    this.network = networkOf(info.chainId);
    this.hub = info.hub;
    this.token = info.token;
    this.provider = options.ledger.provider;
    this.hubUrl = options.hubUrl;
    this.#secret = Uint8Array.from(secret);
    this.#ttl = options.invoiceTtlSeconds ?? 300;
    this.#clock = options.clock ?? Date.now;
    this.#verify = options.verify ?? 'seller';
    this.schemeHooks = {
      onBeforeVerify: async (context) => {
        try {
          const checked = await this.#check(context.paymentPayload, context.requirements);
          if ('reason' in checked) return { abort: true, reason: checked.reason, message: checked.message };
          if (this.#verify === 'seller' && this.#inGoodStanding.has(checked.agreementId)) {
            if (!verifyConsumerPromise(checked.promise, this.ledger.verifier)) {
              return { abort: true, reason: 'INVALID_SIGNATURE', message: 'the promise is not signed by its consumer' };
            }
            return { skip: true, result: { isValid: true, payer: checked.promise.consumer } };
          }
        } catch (error) {
          return { abort: true, reason: 'SELLER_ERROR', message: messageOf(error) };
        }
      },
      onBeforeSettle: async (context) => {
        try {
          const result = await this.#settle(context.paymentPayload, context.requirements, context.transportContext);
          if ('reason' in result) return { abort: true, reason: result.reason, message: result.message };
          return { skip: true, result };
        } catch (error) {
          const code = (error as { code?: unknown }).code;
          return {
            abort: true,
            reason: typeof code === 'string' ? code : 'EXCHANGE_FAILED',
            message: messageOf(error),
          };
        }
      },
    };
  }

  /**
   * A route's price as `amount` of the hub's token: an `AssetAmount` in the hub's token, or a decimal
   * string (or safe integer) of base units. Dollar prices are refused: the token has no dollar table.
   *
   * @example
   * await scheme.parsePrice('1000', scheme.network); // { amount: '1000', asset: token }
   */
  async parsePrice(price: Price, network: Network): Promise<AssetAmount> {
    if (network !== this.network) throw new Error(`chit: this seller's hub is on ${this.network}, not ${network}`);
    const raw = typeof price === 'object' ? price.amount : typeof price === 'number' ? String(price) : price;
    if (typeof price === 'object' && price.asset.toLowerCase() !== this.token.toLowerCase()) {
      throw new Error(`chit: prices are in the hub's token ${this.token}, not ${price.asset}`);
    }
    if (parseAmount(raw) === undefined) {
      throw new Error(`chit: a price is a decimal string of token base units, got ${JSON.stringify(raw)}`);
    }
    return { amount: raw, asset: this.token };
  }

  /**
   * Adds the static `extra`: hub, hubUrl, pricePerMiB (default "0") and agreementSalt (default one
   * derived from the secret and the prices, so that a price change starts new agreements).
   *
   * @example
   * const requirements = await scheme.enhancePaymentRequirements(base, supportedKind, []);
   */
  async enhancePaymentRequirements(
    paymentRequirements: PaymentRequirements,
    supportedKind: SupportedKind,
    _facilitatorExtensions: string[],
  ): Promise<PaymentRequirements> {
    const kindHub = parseAddress(supportedKind.extra?.hub);
    if (kindHub && kindHub !== this.hub) {
      throw new Error(`chit: the facilitator is hub ${kindHub}, this seller's ledger is at ${this.hub}`);
    }
    const extra = paymentRequirements.extra ?? {};
    const pricePerMiB = extra.pricePerMiB === undefined ? '0' : String(extra.pricePerMiB);
    if (parseAmount(pricePerMiB) === undefined) throw new Error(`chit: pricePerMiB ${pricePerMiB} is not base units`);
    const agreementSalt = parseBytes32(extra.agreementSalt) ?? this.#saltOf(paymentRequirements.amount, pricePerMiB);
    return {
      ...paymentRequirements,
      extra: { ...extra, hub: this.hub, hubUrl: this.hubUrl, pricePerMiB, agreementSalt },
    };
  }

  /**
   * Mints the invoice of an unpaid request into each chit requirement: nonce, hashlock = keccak256(R)
   * with R = HMAC-SHA256(secret, nonce), expiresAt. Nothing is minted on a paid request (its 402 is
   * a refusal), nor twice (the hook runs once per chit requirement). A payment refused as `WRONG_TOTAL`
   * gets the seller's meter of its agreement in `extra.meter` instead (`{ agreementId, requests, bytes,
   * credited }`), so that a buyer whose last response was lost can catch up (`ChitClientScheme.resync`).
   *
   * @example
   * await scheme.enrichPaymentRequiredResponse(context);
   */
  async enrichPaymentRequiredResponse(context: SchemePaymentRequiredContext): Promise<void> {
    const transport = context.transportContext as HTTPTransportContext | undefined;
    if (context.paymentPayload) {
      if (context.error === 'WRONG_TOTAL') await this.#addMeter(context);
      return;
    }
    if (transport?.request?.paymentHeader) return;
    for (const requirements of context.requirements) {
      if (requirements.scheme !== CHIT_SCHEME || requirements.network !== this.network) continue;
      if (requirements.extra.nonce !== undefined) continue;
      Object.assign(requirements.extra, this.#mint());
    }
  }

  /** A fresh invoice: nonce (binding expiresAt), hashlock = keccak256(HMAC-SHA256(secret, nonce)), expiresAt. */
  #mint(): ChitInvoiceExtra {
    const expiresAt = nowSeconds(this.#clock) + this.#ttl;
    const nonce = this.#nonce(randomBytes(16), expiresAt);
    return { nonce, hashlock: hashlockOf(this.#preimage(nonce)), expiresAt };
  }

  /**
   * What the seller counted in a buyer's agreement.
   *
   * @example
   * const { requests, bytes } = await scheme.usage(agreementId);
   */
  async usage(agreementId: Hex): Promise<ChitSellerUsage> {
    const { requests, bytes } = await this.#meter(agreementId);
    return { requests, bytes };
  }

  /**
   * Counts a paid response's body into its agreement's meter once it was sent, for a payment this seller
   * settled without its body (`responseBody` empty in the settlement's transport context): what
   * the gateway does, so that the body streams to the buyer after the payment. The bytes of a response
   * are paid with the agreement's next request, so its own settlement never needs them.
   *
   * @example
   * await scheme.addResponseBytes(paymentPayload, relayedBytes);
   */
  async addResponseBytes(paymentPayload: DeepReadonly<PaymentPayload>, bytes: number): Promise<void> {
    if (bytes <= 0) return;
    const promise = decodePromise((paymentPayload.payload as { promise?: unknown }).promise);
    const agreementId = promise.agreement.id;
    const release = await this.#locks.acquire(agreementOfPayload(paymentPayload) ?? agreementId);
    try {
      const meter = await this.#meter(agreementId);
      await this.#saveMeter(agreementId, { ...meter, bytes: meter.bytes + BigInt(bytes) });
    } finally {
      release();
    }
  }

  /** Writes the seller's meter of the refused payment's agreement into the 402's chit requirements. */
  async #addMeter(context: SchemePaymentRequiredContext): Promise<void> {
    const promise = (
      context.paymentPayload?.payload as { promise?: { consumer?: unknown; agreement?: { id?: unknown } } }
    )?.promise;
    const consumer = parseAddress(promise?.consumer);
    const id = parseBytes32(promise?.agreement?.id);
    for (const requirements of context.requirements) {
      if (requirements.scheme !== CHIT_SCHEME || requirements.network !== this.network) continue;
      const salt = parseBytes32(requirements.extra.agreementSalt);
      if (!consumer || !id || !salt || requirements.extra.meter !== undefined) continue;
      const agreementId = agreementIdOf(salt, consumer);
      if (agreementId !== id) continue;
      const meter = await this.#meter(agreementId);
      const credited = await this.ledger.credited(agreementId);
      requirements.extra.meter = {
        agreementId,
        requests: meter.requests.toString(),
        bytes: meter.bytes.toString(),
        credited: credited.toString(),
      };
    }
  }

  async #settle(
    paymentPayload: DeepReadonly<PaymentPayload>,
    requirements: DeepReadonly<PaymentRequirements>,
    transportContext: unknown,
  ): Promise<SettleResponse | Rejection> {
    const promiseAgreement = agreementOfPayload(paymentPayload);
    const release = await this.#locks.acquire(promiseAgreement ?? 'malformed');
    try {
      // Checked again under the agreement's lock: a payment verified twice at once is served once.
      const checked = await this.#check(paymentPayload, requirements);
      if ('reason' in checked) return checked;
      const { promise, preimage, agreementId, meter } = checked;
      const bytes = BigInt((transportContext as HTTPTransportContext | undefined)?.responseBody?.length ?? 0);
      const before = await this.ledger.credited(agreementId);
      await this.#saveMeter(agreementId, { ...meter, pending: { total: promise.agreement.total, bytes } });
      let hubPromise: SignedHubPromise;
      try {
        hubPromise = await this.ledger.exchange(promise, preimage);
      } catch (error) {
        this.#inGoodStanding.delete(agreementId);
        // Read again from the store: the hub may have credited a promise it did not answer.
        this.#meterChanges++;
        this.#meters.delete(agreementId);
        throw error;
      }
      this.#inGoodStanding.add(agreementId);
      // Counted in memory only, with no write of its own: the meter stored above and the credited total
      // the exchange stored say the same (a later write, or a restart's read, folds the pending in).
      this.#meterChanges++;
      this.#remember(agreementId, { requests: meter.requests + 1n, bytes: meter.bytes + bytes, pending: null });
      return {
        success: true,
        transaction: '',
        network: this.network,
        payer: promise.consumer,
        amount: String(promise.agreement.total - before),
        // The invoice of the buyer's next request of this route, so that it pays without a 402 first.
        extra: { hubPromise: encodeMessage(hubPromise), nextInvoice: this.#mint() },
      };
    } finally {
      release();
    }
  }

  /**
   * What a payment's check needs that does not depend on the meter: the invoice is this seller's, the
   * promise pays it, this hub, chain, seller and agreement. A pure function of the payload and the
   * route's prices, so a payment checked at verify is not checked again at settle (the same payload
   * object, see {@link decodePromise}); the meter is read afresh each time.
   */
  #checkInvoice(
    paymentPayload: DeepReadonly<PaymentPayload>,
    requirements: DeepReadonly<PaymentRequirements>,
  ): InvoiceCheck | Rejection {
    const prices = `${requirements.amount}|${String(requirements.extra?.pricePerMiB)}|${String(requirements.extra?.agreementSalt)}|${requirements.payTo}`;
    const cached = checkedInvoices.get(paymentPayload);
    if (cached?.prices === prices) return cached.result;
    const result = this.#checkInvoiceOnce(paymentPayload, requirements);
    checkedInvoices.set(paymentPayload, { prices, result });
    return result;
  }

  #checkInvoiceOnce(
    paymentPayload: DeepReadonly<PaymentPayload>,
    requirements: DeepReadonly<PaymentRequirements>,
  ): InvoiceCheck | Rejection {
    const reject = (reason: ChitPaymentRejection, message: string): Rejection => ({ reason, message });
    const accepted = readExtra(paymentPayload.accepted?.extra as Record<string, unknown> | undefined);
    if (!accepted.ok) return reject('MALFORMED', `accepted.${accepted.field} is missing or invalid`);
    const amount = parseAmount(requirements.amount);
    const pricePerMiB = parseAmount(requirements.extra?.pricePerMiB);
    const salt = parseBytes32(requirements.extra?.agreementSalt);
    if (amount === undefined || pricePerMiB === undefined || !salt) {
      return reject('MALFORMED', 'the route’s requirement has no chit amount, pricePerMiB or agreementSalt');
    }
    let promise: SignedConsumerPromise;
    try {
      promise = decodePromise((paymentPayload.payload as { promise?: unknown }).promise);
    } catch (error) {
      return reject('MALFORMED', `payload.promise: ${messageOf(error)}`);
    }
    const { nonce, hashlock, expiresAt } = accepted.value;
    if (!this.#ownNonce(nonce, expiresAt))
      return reject('UNKNOWN_INVOICE', `nonce ${nonce} was not issued by this seller`);
    const preimage = this.#preimage(nonce);
    if (hashlockOf(preimage) !== hashlock)
      return reject('UNKNOWN_INVOICE', `hashlock ${hashlock} is not this seller's for nonce ${nonce}`);
    if (promise.hashlock !== hashlock) {
      return reject('HASHLOCK_MISMATCH', `the promise pays hashlock ${promise.hashlock}, the invoice is ${hashlock}`);
    }
    if (promise.hub !== this.hub)
      return reject('WRONG_HUB', `the promise is for hub ${promise.hub}, this seller's is ${this.hub}`);
    if (promise.chainId !== Number(this.network.slice('eip155:'.length))) {
      return reject(
        'WRONG_CHAIN',
        `the promise is for chain ${promise.chainId}, this seller's hub is on ${this.network}`,
      );
    }
    if (promise.agreement.provider !== this.provider || parseAddress(requirements.payTo) !== this.provider) {
      return reject('WRONG_PAYEE', `the promise pays ${promise.agreement.provider}, this seller is ${this.provider}`);
    }
    const agreementId = agreementIdOf(salt, promise.consumer);
    if (promise.agreement.id !== agreementId) {
      return reject(
        'WRONG_AGREEMENT',
        `the promise pays agreement ${promise.agreement.id}, ${promise.consumer}'s at this price is ${agreementId}`,
      );
    }
    return { promise, preimage, agreementId, amount, pricePerMiB };
  }

  async #check(
    paymentPayload: DeepReadonly<PaymentPayload>,
    requirements: DeepReadonly<PaymentRequirements>,
  ): Promise<CheckedPayment | Rejection> {
    const checked = this.#checkInvoice(paymentPayload, requirements);
    if ('reason' in checked) return checked;
    const { promise, preimage, agreementId, amount, pricePerMiB } = checked;
    let meter = await this.#meter(agreementId);
    let total = due(meter.requests + 1n, meter.bytes, amount, pricePerMiB);
    const usage = buyerUsage(paymentPayload);
    if (
      promise.agreement.total > total &&
      usage?.requests === meter.requests + 1n &&
      usage.bytes > meter.bytes &&
      due(usage.requests, usage.bytes, amount, pricePerMiB) === promise.agreement.total
    ) {
      // The buyer counted more body bytes than this meter holds: a relayed body whose count this seller
      // lost (a crash after the body went out). The buyer's count is taken: it pays more, never less.
      meter = { ...meter, bytes: usage.bytes };
      total = promise.agreement.total;
    }
    if (promise.agreement.total !== total) {
      return {
        reason: 'WRONG_TOTAL',
        message: `the promise's agreement total is ${promise.agreement.total}, due is ${total} (${meter.requests + 1n} requests, ${meter.bytes} bytes before)`,
      };
    }
    return { promise, preimage, agreementId, meter, total };
  }

  #hmac(message: string | Uint8Array): Uint8Array {
    return new Uint8Array(createHmac('sha256', this.#secret).update(message).digest());
  }

  /** A route's default agreement salt, HMAC(secret, its prices): built for every request, computed once. */
  #saltOf(amount: string, pricePerMiB: string): Hex {
    const key = `${amount}|${pricePerMiB}`;
    let salt = this.#salts.get(key);
    if (!salt) {
      salt = bytesToHex(this.#hmac(`chit/x402/agreement-salt|${key}`));
      if (this.#salts.size >= 1_024) this.#salts.clear();
      this.#salts.set(key, salt);
    }
    return salt;
  }

  #preimage(nonce: Hex): Hex {
    return bytesToHex(this.#hmac(hexToBytes(nonce)));
  }

  /** random (16 bytes) ‖ the first 16 bytes of HMAC(secret, "chit/x402/expiry" ‖ random ‖ expiresAt): binds expiresAt. */
  #nonce(random: Uint8Array, expiresAt: number): Hex {
    const tag = this.#hmac(Buffer.concat([Buffer.from('chit/x402/expiry'), random, u64(expiresAt)])).subarray(0, 16);
    return bytesToHex(Buffer.concat([random, tag]));
  }

  #ownNonce(nonce: Hex, expiresAt: number): boolean {
    const bytes = hexToBytes(nonce);
    return this.#nonce(bytes.subarray(0, 16), expiresAt) === nonce.toLowerCase();
  }

  #meterKey(agreementId: Hex): string {
    return `chit/x402/seller/${this.network}/${this.hub.toLowerCase()}/${this.provider.toLowerCase()}/${agreementId.toLowerCase()}`;
  }

  async #meter(agreementId: Hex): Promise<SellerMeter> {
    const cached = this.#meters.get(agreementId);
    if (cached) return cached;
    const changes = this.#meterChanges;
    const key = this.#meterKey(agreementId);
    const json = (await this.ledger.store.get(key)) as
      | { version: number; requests: string; bytes: string; pending: { total: string; bytes: string } | null }
      | undefined;
    if (json === undefined) return this.#remember(agreementId, { requests: 0n, bytes: 0n, pending: null }, changes);
    const requests = parseAmount(json.requests);
    const bytes = parseAmount(json.bytes);
    if (json.version !== 1 || requests === undefined || bytes === undefined) {
      throw new StoredStateError(key, 'not a chit x402 seller meter');
    }
    const pending = json.pending;
    // The settlement last sent: counted when the hub credited it (the ledger stored its answer).
    if (pending && (await this.ledger.credited(agreementId)) >= BigInt(pending.total)) {
      const counted = { requests: requests + 1n, bytes: bytes + BigInt(pending.bytes), pending: null };
      return this.#remember(agreementId, counted, changes);
    }
    return this.#remember(agreementId, { requests, bytes, pending: null }, changes);
  }

  /**
   * Keeps `meter` in memory, unless it was read from the store since `readAt` (the meter changes seen
   * when the read began) and a meter changed meanwhile: the read may be older than the change.
   */
  #remember(agreementId: Hex, meter: SellerMeter, readAt = this.#meterChanges): SellerMeter {
    if (readAt !== this.#meterChanges) return meter;
    if (this.#meters.size >= METERS_CACHED && !this.#meters.has(agreementId)) this.#meters.clear();
    this.#meters.set(agreementId, meter);
    return meter;
  }

  async #saveMeter(agreementId: Hex, meter: SellerMeter): Promise<void> {
    const document: Json = {
      version: 1,
      requests: meter.requests.toString(),
      bytes: meter.bytes.toString(),
      pending: meter.pending ? { total: meter.pending.total.toString(), bytes: meter.pending.bytes.toString() } : null,
    };
    this.#meterChanges++;
    try {
      await this.ledger.store.put(this.#meterKey(agreementId), document);
    } finally {
      // What a read of the store gives now (or, after a failed write, gives afresh).
      this.#meters.delete(agreementId);
    }
    if (!meter.pending) this.#remember(agreementId, meter);
  }
}

/**
 * The payload's promise decoded, once per payload object: x402 hands the same decoded header to the
 * verify and the settle hooks, so the second check of a payment does not decode it again. Decoding is a
 * pure function of the object, which nothing mutates; another object is decoded afresh.
 */
const decodedPromises = new WeakMap<object, SignedConsumerPromise>();
/** The invoice checks of each payload object, with the route's prices they were made against. */
const checkedInvoices = new WeakMap<object, { prices: string; result: InvoiceCheck | Rejection }>();
function decodePromise(raw: unknown): SignedConsumerPromise {
  if (raw === null || typeof raw !== 'object') return decodeMessage('consumerPromise', raw);
  let promise = decodedPromises.get(raw);
  if (!promise) {
    promise = decodeMessage('consumerPromise', raw);
    decodedPromises.set(raw, promise);
  }
  return promise;
}

function u64(value: number): Buffer {
  const buffer = Buffer.alloc(8);
  buffer.writeBigUInt64BE(BigInt(value));
  return buffer;
}

function messageOf(error: unknown): string {
  if (error && typeof error === 'object' && 'shortMessage' in error) return String(error.shortMessage);
  return error instanceof Error ? error.message : String(error);
}

/** The buyer's own count in a payload (`payload.usage`: paid requests, this one included, and bytes), if readable. */
function buyerUsage(paymentPayload: DeepReadonly<PaymentPayload>): { requests: bigint; bytes: bigint } | undefined {
  const usage = (paymentPayload.payload as { usage?: { requests?: unknown; bytes?: unknown } }).usage;
  const requests = parseAmount(usage?.requests);
  const bytes = parseAmount(usage?.bytes);
  return requests === undefined || bytes === undefined ? undefined : { requests, bytes };
}

/** The consumer and agreement a payload's promise names, for the agreement lock (unchecked). */
function agreementOfPayload(paymentPayload: DeepReadonly<PaymentPayload>): string | undefined {
  const promise = (paymentPayload.payload as { promise?: { consumer?: unknown; agreement?: { id?: unknown } } })
    .promise;
  const id = parseBytes32(promise?.agreement?.id);
  return id;
}
