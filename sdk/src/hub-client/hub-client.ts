import { type Address, getAddress, type Hex, isAddress } from 'viem';
import { createSiweMessage } from 'viem/siwe';
import type { z } from 'zod';
import { MalformedMessageError } from '../errors/protocol.js';
import { decodeMessage, encodeMessage, type MessageName, wireIssuePath } from '../protocol/codec.js';
import type {
  ExchangeRequest,
  ExchangeResponse,
  RecoveryResponse,
  Reveal,
  SignedHubPromise,
  SignedRecoveryRequest,
} from '../protocol/types.js';
import {
  type HistoryBucket,
  type HubConsumerHistory,
  type HubConsumerProviders,
  type HubHistory,
  type HubProviderConsumers,
  type HubProviderHistory,
  type HubProviderSettlements,
  type HubSession,
  historyAnswerSchemas,
} from '../wire/history.js';
import {
  codeForStatus,
  HubError,
  HubRequestAbortedError,
  HubTimeoutError,
  HubUnreachableError,
  hubErrorCodes,
  InvalidOptionError,
  isHubErrorCode,
  isRetryableHubError,
} from './errors.js';
import {
  backoffDelay,
  type HubRetryOptions,
  parseRetryAfter,
  type ResolvedRetryOptions,
  resolveRetryOptions,
  sleep,
} from './retry.js';
import {
  decodeHubAnswer,
  type HubAnswerName,
  type HubConsumerAccount,
  type HubExchangeItemAnswer,
  type HubInstantExit,
  type HubJob,
  type HubProviderAccount,
  type HubRelayKind,
  type HubRelayQuote,
  type HubServiceInfo,
  type HubSettlement,
  type HubSettlementQuote,
} from './schemas.js';

/** Options of a {@link HubClient}. */
export interface HubClientOptions {
  /** The hub's base URL, as the Registry lists it: `https://hub.example` (the client appends `/v1/...`). */
  url: string;
  /** The `fetch` to use; `globalThis.fetch` by default. Inject one for tests, proxies or metrics. */
  fetch?: typeof globalThis.fetch;
  /** Per-attempt timeout, from sending the request to the end of the answer. Default 10 s. */
  timeoutMs?: number;
  /** Retries of retryable failures. */
  retry?: HubRetryOptions;
  /** Extra headers sent with every request (an API key, a user agent). */
  headers?: Record<string, string>;
  /** Source of randomness for the backoff jitter, in [0, 1). Default `Math.random`. */
  random?: () => number;
}

/** Options of one request. */
export interface HubRequestOptions {
  /** Aborts the request (and its retries) with a {@link HubRequestAbortedError}. */
  signal?: AbortSignal;
  /** Overrides the client's per-attempt timeout. */
  timeoutMs?: number;
  /** `false` sends the request once, whatever happens. Default true. */
  retry?: boolean;
}

/**
 * Most exchange requests in one `POST /v1/exchanges` (the body must also fit the hub's 64 KiB limit,
 * as 64 usual requests do).
 *
 * @example
 * for (let i = 0; i < requests.length; i += maxExchangesPerRequest) await hub.exchangeMany(requests.slice(i, i + maxExchangesPerRequest));
 */
export const maxExchangesPerRequest = 64;

/** One item of {@link HubClient.exchangeMany}'s answer: the hub promise, or the hub's error for that item. */
export type HubExchangeResult = { ok: true; hubPromise: SignedHubPromise } | { ok: false; error: HubError };

/** Body of `POST /v1/settlements`. */
export interface HubSettlementRequest {
  provider: Address;
  /** What the relayer may keep, as the authorization signs it. */
  relayerFee: bigint;
  /** The provider's `SettlementAuthorization` signature over its latest hub promise, `relayerFee` and the
   * hub's relayer (the settlement quote's `relayer`). */
  authorization: Hex;
}

/**
 * Body of `POST /v1/exits/instant`: the consumer's `InstantExitRequest` and its signature. A
 * `SignedInstantExitRequest` from `signInstantExitRequest` is one (its `hub` and `chainId` are not sent).
 */
export interface HubInstantExitRequest {
  consumer: Address;
  amount: bigint;
  /** Unix seconds, as signed; the hub accepts requests a few minutes old at most. */
  issuedAt: bigint;
  /** The consumer's `InstantExitRequest` signature in the hub's domain. */
  signature: Hex;
}

/** Body of `POST /v1/relay/identities`: a `RegisterIdentity` signature naming the hub's relayer (the relay
 * quote's `relayer`), for it to submit. */
export interface HubRelayIdentityRequest {
  identity: Address;
  beneficiary: Address;
  relayerFee: bigint;
  signature: Hex;
  /**
   * The identity's EIP-2612 permit of `relayerFee` to the Registry (from {@link signDepositPermit} with the
   * Registry as spender), for an identity without the allowance: the relayer submits it first. Quote with
   * `relayQuote('identity-permit')`.
   */
  permit?: { deadline: bigint; signature: Hex } | undefined;
}

/** Body of `POST /v1/relay/beneficiaries`: a `SetBeneficiary` signature for the hub's relayer to submit. */
export interface HubRelayBeneficiaryRequest {
  identity: Address;
  beneficiary: Address;
  signature: Hex;
}

type Decoder<T> = (json: unknown) => T;

interface Call<T> {
  method: 'GET' | 'POST';
  path: string;
  body?: unknown;
  /** Headers of this request besides the client's (a session's Authorization). */
  headers?: Record<string, string>;
  /** Decode the answer's text as it is (CSV), not as JSON. */
  text?: boolean;
  decode: Decoder<T>;
}

interface RawAnswer {
  status: number;
  text: string;
  headers: Headers;
}

const wire =
  <N extends MessageName>(name: N) =>
  (json: unknown) =>
    decodeMessage(name, json);
const answer =
  <N extends HubAnswerName>(name: N) =>
  (json: unknown) =>
    decodeHubAnswer(name, json);

/**
 * Removes a trailing slash and checks the scheme, so that one hub has one key in a {@link HubDirectory}.
 *
 * @example
 * normalizeHubUrl('https://hub.example/'); // 'https://hub.example'
 */
export function normalizeHubUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch (cause) {
    throw new MalformedMessageError('hub URL', '', `not a URL: ${url}`, cause);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new MalformedMessageError('hub URL', '', `expected http or https, got ${parsed.protocol}`);
  }
  if (parsed.search || parsed.hash) {
    throw new MalformedMessageError('hub URL', '', 'a hub URL has no query or fragment');
  }
  return `${parsed.origin}${parsed.pathname.replace(/\/+$/, '')}`;
}

function pathAddress(value: string, name: string): Address {
  if (!isAddress(value, { strict: false })) {
    throw new MalformedMessageError(`${name} address`, name, `expected a 20-byte 0x-hex address, got ${value}`);
  }
  return getAddress(value);
}

/**
 * A typed client of one hub's HTTP API (docs/protocol.md, "Hub endpoints"). Bodies are encoded with
 * {@link encodeMessage} and checked against the wire format before they leave; answers are decoded
 * strictly, so a malformed answer is a {@link MalformedMessageError}, never a half-read object.
 *
 * Errors: a hub's error answer is a {@link HubError} (`code`, `status`, `retryable`); no answer is a
 * {@link HubUnreachableError} or {@link HubTimeoutError}. Retryable failures (`RATE_LIMITED` honouring
 * `Retry-After`, `UNAVAILABLE`, `INTERNAL`, network errors, timeouts) are retried with exponential
 * backoff and full jitter; every hub request is idempotent, so a retry never applies anything twice.
 * Nothing else is retried. Browser-safe: it needs only `fetch`, `AbortController` and timers.
 *
 * @example
 * const hub = new HubClient({ url: 'https://hub.example', timeoutMs: 5_000, retry: { attempts: 3 } });
 * const info = await hub.info();
 * const { hubPromise } = await hub.exchange({ promise, encryptedPreimage: sealPreimage(info.publicKey, preimage) });
 */
export class HubClient {
  /** The normalized base URL. */
  readonly url: string;
  readonly timeoutMs: number;
  readonly retry: ResolvedRetryOptions;
  readonly #fetch: typeof globalThis.fetch;
  readonly #headers: Record<string, string>;
  readonly #random: () => number;

  constructor(options: HubClientOptions) {
    this.url = normalizeHubUrl(options.url);
    this.timeoutMs = options.timeoutMs ?? 10_000;
    if (!(this.timeoutMs > 0)) throw new InvalidOptionError('timeoutMs', `expected > 0, got ${this.timeoutMs}`);
    this.retry = resolveRetryOptions(options.retry);
    const fetchFunction = options.fetch ?? globalThis.fetch;
    if (typeof fetchFunction !== 'function') {
      throw new InvalidOptionError(
        'fetch',
        'no fetch function is available',
        'Pass options.fetch on platforms without one.',
      );
    }
    // Unbound, window.fetch throws "Illegal invocation" in browsers.
    this.#fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.#headers = { ...options.headers };
    this.#random = options.random ?? Math.random;
  }

  /**
   * `GET /v1/info`: the hub contract, chain, operator, the public key to encrypt preimages to, fee, status.
   *
   * @example
   * const { operator, publicKey } = await hub.info();
   */
  async info(options?: HubRequestOptions): Promise<HubServiceInfo> {
    return this.#call({ method: 'GET', path: '/v1/info', decode: answer('info') }, options);
  }

  /**
   * `POST /v1/exchange`: swaps a consumer promise for a hub promise. The caller checks the hub
   * promise (operator signature, total, hashlock) before trusting it; {@link ProviderLedger} does.
   *
   * @throws {HubError} `OVERSPEND`, `PROMISE_TOO_LOW`, `PREVIOUS_R_NOT_REVEALED`, `INVALID_SIGNATURE`, ...
   * @example
   * const { hubPromise } = await hub.exchange({ promise, encryptedPreimage, previousPreimage });
   */
  async exchange(request: ExchangeRequest, options?: HubRequestOptions): Promise<ExchangeResponse> {
    return this.#call(
      {
        method: 'POST',
        path: '/v1/exchange',
        body: outgoing('exchangeRequest', request),
        decode: wire('exchangeResponse'),
      },
      options,
    );
  }

  /**
   * `POST /v1/exchanges`: swaps up to {@link maxExchangesPerRequest} consumer promises in one request.
   * Each result, in request order, is what {@link exchange} would have answered for that request alone:
   * its hub promise, or its {@link HubError} (one item's refusal never affects another). A failure of
   * the whole request (the hub unreachable, `UNAVAILABLE`, a malformed body) throws, as `exchange` does.
   *
   * @throws {InvalidOptionError} for no requests or more than {@link maxExchangesPerRequest}.
   * @example
   * const results = await hub.exchangeMany(requests);
   * for (const [i, result] of results.entries()) {
   *   if (result.ok) store(result.hubPromise);
   *   else if (result.error.code === 'OVERSPEND') stopServing(requests[i].promise.consumer);
   * }
   */
  async exchangeMany(requests: readonly ExchangeRequest[], options?: HubRequestOptions): Promise<HubExchangeResult[]> {
    if (requests.length < 1 || requests.length > maxExchangesPerRequest) {
      throw new InvalidOptionError('requests', `expected 1 to ${maxExchangesPerRequest}, got ${requests.length}`);
    }
    const path = '/v1/exchanges';
    const body = { exchanges: requests.map((request) => outgoing('exchangeRequest', request)) };
    const { results } = await this.#call({ method: 'POST', path, body, decode: answer('exchangeResults') }, options);
    if (results.length !== requests.length) {
      throw new MalformedMessageError(
        'exchangeResults',
        'results',
        `expected ${requests.length} results, got ${results.length}`,
      );
    }
    return results.map((item, i) => toExchangeResult(item, `POST ${path} (item ${i})`));
  }

  /**
   * `POST /v1/reveal`: gives the hub the R of a hub promise. Revealing twice is harmless.
   *
   * @throws {HubError} `UNKNOWN_PREIMAGE` when R matches none of the provider's hashlocks.
   * @example
   * await hub.reveal({ hub: info.hub, chainId: info.chainId, provider, preimage });
   */
  async reveal(reveal: Reveal, options?: HubRequestOptions): Promise<void> {
    await this.#call(
      { method: 'POST', path: '/v1/reveal', body: outgoing('reveal', reveal), decode: answer('revealed') },
      options,
    );
  }

  /**
   * `POST /v1/recovery`: a provider's latest hub promise, re-signed, and its R, after it lost its store.
   *
   * @throws {HubError} `STALE_REQUEST` when `issuedAt` is more than five minutes off the hub's clock.
   * @example
   * const request = await signRecoveryRequest(account, { hub, chainId, provider, issuedAt: BigInt(Math.floor(Date.now() / 1000)) });
   * const { hubPromise, preimage } = await hub.recovery(request);
   */
  async recovery(request: SignedRecoveryRequest, options?: HubRequestOptions): Promise<RecoveryResponse> {
    return this.#call(
      {
        method: 'POST',
        path: '/v1/recovery',
        body: outgoing('recoveryRequest', request),
        decode: wire('recoveryResponse'),
      },
      options,
    );
  }

  /**
   * `GET /v1/consumers/{address}`: a consumer's channel as the hub sees it.
   *
   * @throws {HubError} `UNKNOWN_CONSUMER` when it has no channel at this hub.
   * @example
   * const { available } = await hub.consumer(account.address);
   */
  async consumer(address: Address, options?: HubRequestOptions): Promise<HubConsumerAccount> {
    const path = `/v1/consumers/${pathAddress(address, 'consumer')}`;
    return this.#call({ method: 'GET', path, decode: answer('consumerAccount') }, options);
  }

  /**
   * `GET /v1/providers/{address}`: what the hub owes a provider, and its latest hub promise.
   *
   * @throws {HubError} `UNKNOWN_PROVIDER` when the hub holds no promise for it.
   * @example
   * const { unsettled } = await hub.provider(account.address);
   */
  async provider(address: Address, options?: HubRequestOptions): Promise<HubProviderAccount> {
    const path = `/v1/providers/${pathAddress(address, 'provider')}`;
    return this.#call({ method: 'GET', path, decode: answer('providerAccount') }, options);
  }

  /**
   * `GET /v1/quotes/settlement?provider=`: what settling the provider's unsettled amount would cost now.
   *
   * @example
   * const { amount, hubFee, relayerFee, relayer } = await hub.settlementQuote(provider);
   */
  async settlementQuote(provider: Address, options?: HubRequestOptions): Promise<HubSettlementQuote> {
    const path = `/v1/quotes/settlement?provider=${pathAddress(provider, 'provider')}`;
    return this.#call({ method: 'GET', path, decode: answer('settlementQuote') }, options);
  }

  /**
   * `GET /v1/quotes/relay?kind=`: the relayer fee the hub asks now for relaying a registration
   * (`identity`; `identity-permit` when the relayer also submits the identity's permit of the fee) or a
   * beneficiary change (`beneficiary`; the Registry pays none for it, so the hub relays it only when this
   * is 0).
   *
   * @example
   * const { relayerFee, relayer } = await hub.relayQuote('identity');
   */
  async relayQuote(kind: HubRelayKind, options?: HubRequestOptions): Promise<HubRelayQuote> {
    const path = `/v1/quotes/relay?kind=${encodeURIComponent(kind)}`;
    return this.#call({ method: 'GET', path, decode: answer('relayQuote') }, options);
  }

  /**
   * `POST /v1/settlements`: asks the hub's relayer to settle the provider's latest hub promise.
   *
   * @example
   * const authorization = await signSettlementAuthorization(account, latest, quote.relayerFee, quote.relayer);
   * const { id } = await hub.requestSettlement({ provider, relayerFee: quote.relayerFee, authorization });
   */
  async requestSettlement(request: HubSettlementRequest, options?: HubRequestOptions): Promise<HubJob> {
    const body = encodeMessage({
      provider: pathAddress(request.provider, 'provider'),
      relayerFee: request.relayerFee,
      authorization: request.authorization,
    });
    return this.#call({ method: 'POST', path: '/v1/settlements', body, decode: answer('job') }, options);
  }

  /**
   * `GET /v1/settlements/{id}`: the state of a settlement and its transaction, and why it failed
   * (`error.code`: the contract's custom error, or one of the hub's own codes such as `REVERTED`).
   *
   * @throws {HubError} `NOT_FOUND` for an unknown id.
   * @example
   * const { status, txHash, error } = await hub.settlement(id);
   * if (status === 'failed' && error?.code === 'HubInsufficientFreeFunds') console.log('the hub is short of funds');
   */
  async settlement(id: string, options?: HubRequestOptions): Promise<HubSettlement> {
    const path = `/v1/settlements/${encodeURIComponent(id)}`;
    return this.#call({ method: 'GET', path, decode: answer('settlement') }, options);
  }

  /**
   * `POST /v1/exits/instant`: the operator's `InstantExit` co-signature, to submit with `Hub.instantExit`.
   * The request must be the consumer's, signed with `signInstantExitRequest` in the hub's domain.
   *
   * @throws {HubError} `INVALID_SIGNATURE` when the consumer did not sign it, `STALE_REQUEST` when
   * `issuedAt` is more than five minutes off the hub's clock, `OVERSPEND` when the channel cannot spare it.
   * @example
   * const request = await signInstantExitRequest(account, { hub, chainId, consumer, amount: 10n ** 18n, issuedAt: BigInt(Math.floor(Date.now() / 1000)) });
   * const { amount, deadline, signature } = await hub.instantExit(request);
   */
  async instantExit(request: HubInstantExitRequest, options?: HubRequestOptions): Promise<HubInstantExit> {
    const body = outgoing('instantExitRequest', {
      consumer: pathAddress(request.consumer, 'consumer'),
      amount: request.amount,
      issuedAt: request.issuedAt,
      signature: request.signature,
    });
    return this.#call({ method: 'POST', path: '/v1/exits/instant', body, decode: answer('instantExit') }, options);
  }

  /**
   * `POST /v1/relay/identities`: the hub's relayer registers an identity that holds no gas token.
   *
   * @example
   * const { relayerFee, relayer } = await hub.relayQuote('identity');
   * const registration = await signRegisterIdentity(identityClient, { registry, beneficiary, relayerFee, relayer });
   * const { id } = await hub.relayIdentity(registration);
   */
  async relayIdentity(request: HubRelayIdentityRequest, options?: HubRequestOptions): Promise<HubJob> {
    const body = encodeMessage({
      identity: pathAddress(request.identity, 'identity'),
      beneficiary: pathAddress(request.beneficiary, 'beneficiary'),
      relayerFee: request.relayerFee,
      signature: request.signature,
      ...(request.permit && { permit: { deadline: request.permit.deadline, signature: request.permit.signature } }),
    });
    return this.#call({ method: 'POST', path: '/v1/relay/identities', body, decode: answer('job') }, options);
  }

  /**
   * `POST /v1/relay/beneficiaries`: the hub's relayer changes an identity's beneficiary.
   *
   * @example
   * const { id } = await hub.relayBeneficiary({ identity, beneficiary, signature });
   */
  async relayBeneficiary(request: HubRelayBeneficiaryRequest, options?: HubRequestOptions): Promise<HubJob> {
    const body = encodeMessage({
      identity: pathAddress(request.identity, 'identity'),
      beneficiary: pathAddress(request.beneficiary, 'beneficiary'),
      signature: request.signature,
    });
    return this.#call({ method: 'POST', path: '/v1/relay/beneficiaries', body, decode: answer('job') }, options);
  }

  /**
   * Signs in with Sign-In with Ethereum (EIP-4361): gets a nonce (`GET /v1/auth/nonce`), signs a message
   * for this hub's host and chain with `account` (EIP-191 `signMessage`) and opens a session (`POST
   * /v1/auth/session`). The session's token reads the account's own history (the hub's too, for the
   * operator's account) until `expiresAt`.
   *
   * @throws {HubError} `UNAUTHORIZED` when the hub refuses the sign-in (`details.reason`).
   * @example
   * const session = await hub.signIn(account, { chainId: info.chainId });
   * const history = await hub.providerHistory(account.address, { from, to }, session);
   */
  async signIn(
    account: { address: Address; signMessage: (args: { message: string }) => Promise<Hex> },
    params: { chainId: number; statement?: string; now?: Date },
    options?: HubRequestOptions,
  ): Promise<HubSession> {
    const { nonce } = await this.#call(
      { method: 'GET', path: '/v1/auth/nonce', decode: (json) => historyAnswerSchemas.authNonce.parse(json) },
      options,
    );
    const url = new URL(this.url);
    const message = createSiweMessage({
      address: getAddress(account.address),
      chainId: params.chainId,
      domain: url.host,
      uri: url.origin,
      nonce,
      version: '1',
      issuedAt: params.now ?? new Date(),
      statement: params.statement ?? 'Sign in to read your Chit history at this hub.',
    });
    const signature = await account.signMessage({ message });
    return this.#call(
      { method: 'POST', path: '/v1/auth/session', body: { message, signature }, decode: history('session') },
      { ...options, retry: false },
    );
  }

  /**
   * `GET /v1/history/providers/{address}`: the provider's earnings per hour or UTC day in `[from, to)`,
   * the hub fee they cost at today's fee, and its books (promised, settled, unsettled). Needs the
   * provider's session ({@link signIn}).
   *
   * @example
   * const { buckets, total, books } = await hub.providerHistory(provider, { from, to, bucket: 'hour' }, session);
   */
  async providerHistory(
    provider: Address,
    query: HistoryQuery,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubProviderHistory> {
    const path = historyPath(`providers/${pathAddress(provider, 'provider')}`, query);
    return this.#call({ method: 'GET', path, headers: bearer(session), decode: history('providerHistory') }, options);
  }

  /** `GET /v1/history/providers/{address}/consumers`: what each consumer paid the provider in the range, largest first (at most 100). */
  async providerConsumers(
    provider: Address,
    query: HistoryRange,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubProviderConsumers> {
    const path = historyPath(`providers/${pathAddress(provider, 'provider')}/consumers`, rangeOf(query));
    return this.#call({ method: 'GET', path, headers: bearer(session), decode: history('providerConsumers') }, options);
  }

  /**
   * `GET /v1/history/providers/{address}/settlements`: the provider's settlements created in the range,
   * newest first: status, transaction, what each paid and what it cost (hub fee, relayer fee, gas).
   */
  async providerSettlements(
    provider: Address,
    query: HistoryRange,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubProviderSettlements> {
    const path = historyPath(`providers/${pathAddress(provider, 'provider')}/settlements`, rangeOf(query));
    return this.#call(
      { method: 'GET', path, headers: bearer(session), decode: history('providerSettlements') },
      options,
    );
  }

  /** `GET /v1/history/consumers/{address}`: the consumer's spending per hour or UTC day. */
  async consumerHistory(
    consumer: Address,
    query: HistoryQuery,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubConsumerHistory> {
    const path = historyPath(`consumers/${pathAddress(consumer, 'consumer')}`, query);
    return this.#call({ method: 'GET', path, headers: bearer(session), decode: history('consumerHistory') }, options);
  }

  /** `GET /v1/history/consumers/{address}/providers`: what the consumer paid each provider in the range, largest first. */
  async consumerProviders(
    consumer: Address,
    query: HistoryRange,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubConsumerProviders> {
    const path = historyPath(`consumers/${pathAddress(consumer, 'consumer')}/providers`, rangeOf(query));
    return this.#call({ method: 'GET', path, headers: bearer(session), decode: history('consumerProviders') }, options);
  }

  /** `GET /v1/history/hub`: the hub's volume, money against liabilities and settlement batches. Needs the operator's session. */
  async hubHistory(query: HistoryQuery, session: SessionLike, options?: HubRequestOptions): Promise<HubHistory> {
    return this.#call(
      { method: 'GET', path: historyPath('hub', query), headers: bearer(session), decode: history('hubHistory') },
      options,
    );
  }

  /**
   * A history as CSV to save (`format=csv`): `earnings`, `consumers` and `settlements` of a provider,
   * `spending` and `providers` of a consumer, `hub` for the operator.
   *
   * @example
   * await writeFile('earnings.csv', await hub.historyCsv('earnings', provider, { from, to }, session));
   */
  async historyCsv(
    kind: 'earnings' | 'consumers' | 'settlements' | 'spending' | 'providers' | 'hub',
    address: Address | undefined,
    query: HistoryQuery,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<string> {
    const subject = (side: string, tail = '') => `${side}/${pathAddress(address ?? '', 'address')}${tail}`;
    const resource = {
      earnings: () => subject('providers'),
      consumers: () => subject('providers', '/consumers'),
      settlements: () => subject('providers', '/settlements'),
      spending: () => subject('consumers'),
      providers: () => subject('consumers', '/providers'),
      hub: () => 'hub',
    }[kind]();
    const listed = kind === 'consumers' || kind === 'settlements' || kind === 'providers';
    const path = historyPath(resource, listed ? rangeOf(query) : query, 'csv');
    const headers = { ...bearer(session), accept: 'text/csv' };
    return this.#call({ method: 'GET', path, headers, text: true, decode: (text) => text as string }, options);
  }

  /**
   * `GET /health`: whether the hub process answers. One attempt; `false` on any failure.
   *
   * @example
   * if (!(await hub.health())) console.warn(`${hub.url} is down`);
   */
  health(options?: Omit<HubRequestOptions, 'retry'>): Promise<boolean> {
    return this.#probe('/health', options);
  }

  /**
   * `GET /ready`: whether the hub's database, queue and chain answer (`503` means not ready). One
   * attempt; `false` on any failure.
   *
   * @example
   * const usable = await hub.ready();
   */
  ready(options?: Omit<HubRequestOptions, 'retry'>): Promise<boolean> {
    return this.#probe('/ready', options);
  }

  async #probe(path: string, options: Omit<HubRequestOptions, 'retry'> = {}): Promise<boolean> {
    try {
      const raw = await this.#send('GET', path, undefined, options, 1);
      return raw.status >= 200 && raw.status < 300;
    } catch (error) {
      if (error instanceof HubRequestAbortedError) throw error;
      return false;
    }
  }

  async #call<T>(call: Call<T>, options: HubRequestOptions = {}): Promise<T> {
    const attempts = options.retry === false ? 1 : this.retry.attempts;
    for (let attempt = 1; ; attempt++) {
      let failure: unknown;
      try {
        const raw = await this.#send(call.method, call.path, call.body, options, attempt, call.headers);
        if (raw.status >= 200 && raw.status < 300) {
          return call.decode(call.text ? raw.text : parseJson(raw.text, call.path));
        }
        failure = toHubError(raw, `${call.method} ${call.path}`, attempt);
      } catch (error) {
        if (!isRetryableHubError(error)) throw error;
        failure = error;
      }
      if (!isRetryableHubError(failure) || attempt >= attempts) throw failure;
      let delay = backoffDelay(attempt, this.retry, this.#random);
      if (failure instanceof HubError && failure.retryAfterMs !== undefined) {
        if (failure.retryAfterMs > this.retry.maxRetryAfterMs) throw failure;
        delay = failure.retryAfterMs;
      }
      try {
        await sleep(delay, options.signal);
      } catch (cause) {
        throw new HubRequestAbortedError(`${call.method} ${call.path}`, cause);
      }
    }
  }

  async #send(
    method: 'GET' | 'POST',
    path: string,
    body: unknown,
    options: HubRequestOptions,
    attempt: number,
    extraHeaders?: Record<string, string>,
  ): Promise<RawAnswer> {
    const request = `${method} ${path}`;
    const { signal } = options;
    if (signal?.aborted) throw new HubRequestAbortedError(request, signal.reason);
    const timeoutMs = options.timeoutMs ?? this.timeoutMs;
    const controller = new AbortController();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, timeoutMs);
    const onAbort = () => controller.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const headers: Record<string, string> = { accept: 'application/json', ...this.#headers, ...extraHeaders };
      if (body !== undefined) headers['content-type'] = 'application/json';
      const response = await this.#fetch(`${this.url}${path}`, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
      const text = await response.text();
      return { status: response.status, text, headers: response.headers };
    } catch (cause) {
      if (signal?.aborted) throw new HubRequestAbortedError(request, cause);
      if (timedOut) throw new HubTimeoutError(this.url, request, timeoutMs, attempt);
      throw new HubUnreachableError(this.url, request, attempt, cause);
    } finally {
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    }
  }
}

/** The range of a history list: `from` inclusive, `to` exclusive. */
export interface HistoryRange {
  from: Date;
  to: Date;
}

/** The range and bucket of a history: hours or UTC days (default day). */
export interface HistoryQuery extends HistoryRange {
  bucket?: HistoryBucket;
}

/** A session of {@link HubClient.signIn}, or its token. */
export type SessionLike = HubSession | string;

const history =
  <N extends keyof typeof historyAnswerSchemas>(name: N) =>
  (json: unknown): z.output<(typeof historyAnswerSchemas)[N]> => {
    const result = historyAnswerSchemas[name].safeParse(json);
    if (!result.success)
      throw new MalformedMessageError(
        name,
        wireIssuePath(result.error.issues[0]!),
        result.error.issues[0]!.message,
        result.error,
      );
    return result.data as z.output<(typeof historyAnswerSchemas)[N]>;
  };

function bearer(session: SessionLike): Record<string, string> {
  return { authorization: `Bearer ${typeof session === 'string' ? session : session.token}` };
}

/** Only the range of a query: a list endpoint refuses a bucket (an object may carry one anyway). */
const rangeOf = ({ from, to }: HistoryRange): HistoryRange => ({ from, to });

function historyPath(resource: string, query: HistoryQuery, format?: 'csv'): string {
  const params = new URLSearchParams({ from: query.from.toISOString(), to: query.to.toISOString() });
  if (query.bucket) params.set('bucket', query.bucket);
  if (format) params.set('format', format);
  return `/v1/history/${resource}?${params}`;
}

/** Encodes a protocol message and checks it against the wire format before it leaves. */
function outgoing(name: MessageName, message: unknown): unknown {
  const body = encodeMessage(message);
  decodeMessage(name, body);
  return body;
}

function parseJson(text: string, path: string): unknown {
  try {
    return JSON.parse(text);
  } catch (cause) {
    throw new MalformedMessageError(`answer to ${path}`, '', 'the body is not JSON', cause);
  }
}

/** A batch item's answer as a result; an item's error gets the status its code has alone. */
function toExchangeResult(item: HubExchangeItemAnswer, request: string): HubExchangeResult {
  if ('hubPromise' in item) return { ok: true, hubPromise: item.hubPromise };
  const { code, message, details } = item.error;
  const status = isHubErrorCode(code) ? hubErrorCodes[code].status : 200;
  return { ok: false, error: new HubError({ code, status, message, details, request, attempts: 1 }) };
}

function toHubError(raw: RawAnswer, request: string, attempts: number): HubError {
  let code: string | undefined;
  let message: string | undefined;
  let details: Record<string, unknown> | undefined;
  try {
    const body = JSON.parse(raw.text) as unknown;
    if (body !== null && typeof body === 'object') {
      const record = body as Record<string, unknown>;
      if (typeof record.code === 'string' && /^[A-Z][A-Z0-9_]{0,63}$/.test(record.code)) code = record.code;
      if (typeof record.message === 'string') message = record.message.slice(0, 1_000);
      if (record.details !== null && typeof record.details === 'object' && !Array.isArray(record.details)) {
        details = record.details as Record<string, unknown>;
      }
    }
  } catch {
    // Not JSON (a proxy's error page): the status says what happened.
  }
  return new HubError({
    code: code ?? codeForStatus(raw.status),
    status: raw.status,
    message,
    details,
    retryAfterMs: parseRetryAfter(raw.headers.get('retry-after')),
    request,
    attempts,
  });
}
