import type { Address, Hex } from 'viem';
import { MalformedMessageError } from '../errors/protocol.js';
import { decodeMessage, encodeMessage, type MessageName } from '../protocol/codec.js';
import type {
  ExchangeRequest,
  ExchangeResponse,
  RecoveryResponse,
  Reveal,
  SignedHubPromise,
  SignedRecoveryRequest,
} from '../protocol/types.js';
import { HubError, hubErrorCodes, InvalidOptionError, isHubErrorCode } from './errors.js';
import { HubHistoryClient } from './history-client.js';
import type { ResolvedRetryOptions } from './retry.js';
import {
  decodeHubAnswer,
  type HubAnswerName,
  type HubConsumerAccount,
  type HubExchangeCover,
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
import { type HubClientOptions, type HubRequestOptions, HubTransport, pathAddress } from './transport.js';

export type { HistoryQuery, HistoryRange, SessionLike } from './history-client.js';
export { HubHistoryClient } from './history-client.js';
export {
  type HubClientOptions,
  type HubHttp,
  type HubHttpAnswer,
  type HubHttpRequest,
  type HubRequestOptions,
  normalizeHubUrl,
} from './transport.js';

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

/**
 * One item of {@link HubClient.exchangeMany}'s answer with `{ sign: 'latest' }`: as {@link HubExchangeResult},
 * or, for an item credited whose hub promise the hub did not sign, `covered`: its total and hashlock, and
 * the index of the item whose signed hub promise covers it.
 */
export type HubExchangeCoveredResult =
  | { ok: true; hubPromise: SignedHubPromise; covered?: undefined }
  | { ok: true; hubPromise?: undefined; covered: HubExchangeCover }
  | { ok: false; error: HubError };

/** Options of {@link HubClient.exchangeMany}. */
export interface HubExchangeManyOptions extends HubRequestOptions {
  /**
   * Which hub promises the hub signs: `each` item's (the default), or only the `latest` of each provider
   * (its highest total), whose cumulative total covers the provider's other items. A provider keeps only
   * its latest hub promise, so `latest` costs the hub one signature, and the provider one check, per
   * request instead of per item.
   */
  sign?: 'each' | 'latest';
}

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

const wire =
  <N extends MessageName>(name: N) =>
  (json: unknown) =>
    decodeMessage(name, json);
const answer =
  <N extends HubAnswerName>(name: N) =>
  (json: unknown) =>
    decodeHubAnswer(name, json);

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
  /** The history endpoints: sign in, then read earnings, spending and the hub's figures. */
  readonly history: HubHistoryClient;
  readonly #transport: HubTransport;

  constructor(options: HubClientOptions) {
    this.#transport = new HubTransport(options);
    ({ url: this.url, timeoutMs: this.timeoutMs, retry: this.retry } = this.#transport);
    this.history = new HubHistoryClient(this.#transport);
  }

  /**
   * `GET /v1/info`: the hub contract, chain, operator, the public key to encrypt preimages to, fee, status.
   *
   * @example
   * const { operator, publicKey } = await hub.info();
   */
  async info(options?: HubRequestOptions): Promise<HubServiceInfo> {
    return this.#transport.call({ method: 'GET', path: '/v1/info', decode: answer('info') }, options);
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
    return this.#transport.call(
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
  async exchangeMany(
    requests: readonly ExchangeRequest[],
    options?: HubExchangeManyOptions & { sign?: 'each' },
  ): Promise<HubExchangeResult[]>;
  async exchangeMany(
    requests: readonly ExchangeRequest[],
    options: HubExchangeManyOptions & { sign: 'latest' },
  ): Promise<HubExchangeCoveredResult[]>;
  async exchangeMany(
    requests: readonly ExchangeRequest[],
    options: HubExchangeManyOptions = {},
  ): Promise<HubExchangeCoveredResult[]> {
    if (requests.length < 1 || requests.length > maxExchangesPerRequest) {
      throw new InvalidOptionError('requests', `expected 1 to ${maxExchangesPerRequest}, got ${requests.length}`);
    }
    const { sign = 'each', ...requestOptions } = options;
    const path = '/v1/exchanges';
    const body = {
      exchanges: requests.map((request) => outgoing('exchangeRequest', request)),
      ...(sign === 'latest' && { sign }),
    };
    const { results } = await this.#transport.call(
      { method: 'POST', path, body, decode: answer('exchangeResults') },
      requestOptions,
    );
    if (results.length !== requests.length) {
      throw new MalformedMessageError(
        'exchangeResults',
        'results',
        `expected ${requests.length} results, got ${results.length}`,
      );
    }
    return results.map((item, i) => {
      if ('covered' in item) {
        const { by } = item.covered;
        if (sign !== 'latest' || by >= results.length || !('hubPromise' in results[by]!)) {
          throw new MalformedMessageError(
            'exchangeResults',
            `results.${i}.covered.by`,
            sign === 'latest'
              ? `expected the index of a signed hub promise, got ${by}`
              : 'covered without sign: latest',
          );
        }
        return { ok: true, covered: item.covered };
      }
      return toExchangeResult(item, `POST ${path} (item ${i})`);
    });
  }

  /**
   * `POST /v1/reveal`: gives the hub the R of a hub promise. Revealing twice is harmless.
   *
   * @throws {HubError} `UNKNOWN_PREIMAGE` when R matches none of the provider's hashlocks.
   * @example
   * await hub.reveal({ hub: info.hub, chainId: info.chainId, provider, preimage });
   */
  async reveal(reveal: Reveal, options?: HubRequestOptions): Promise<void> {
    await this.#transport.call(
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
    return this.#transport.call(
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
    return this.#transport.call({ method: 'GET', path, decode: answer('consumerAccount') }, options);
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
    return this.#transport.call({ method: 'GET', path, decode: answer('providerAccount') }, options);
  }

  /**
   * `GET /v1/quotes/settlement?provider=`: what settling the provider's unsettled amount would cost now.
   *
   * @example
   * const { amount, hubFee, relayerFee, relayer } = await hub.settlementQuote(provider);
   */
  async settlementQuote(provider: Address, options?: HubRequestOptions): Promise<HubSettlementQuote> {
    const path = `/v1/quotes/settlement?provider=${pathAddress(provider, 'provider')}`;
    return this.#transport.call({ method: 'GET', path, decode: answer('settlementQuote') }, options);
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
    return this.#transport.call({ method: 'GET', path, decode: answer('relayQuote') }, options);
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
    return this.#transport.call({ method: 'POST', path: '/v1/settlements', body, decode: answer('job') }, options);
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
    return this.#transport.call({ method: 'GET', path, decode: answer('settlement') }, options);
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
    return this.#transport.call(
      { method: 'POST', path: '/v1/exits/instant', body, decode: answer('instantExit') },
      options,
    );
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
    return this.#transport.call({ method: 'POST', path: '/v1/relay/identities', body, decode: answer('job') }, options);
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
    return this.#transport.call(
      { method: 'POST', path: '/v1/relay/beneficiaries', body, decode: answer('job') },
      options,
    );
  }

  /**
   * `GET /health`: whether the hub process answers. One attempt; `false` on any failure.
   *
   * @example
   * if (!(await hub.health())) console.warn(`${hub.url} is down`);
   */
  health(options?: Omit<HubRequestOptions, 'retry'>): Promise<boolean> {
    return this.#transport.probe('/health', options);
  }

  /**
   * `GET /ready`: whether the hub's database, queue and chain answer (`503` means not ready). One
   * attempt; `false` on any failure.
   *
   * @example
   * const usable = await hub.ready();
   */
  ready(options?: Omit<HubRequestOptions, 'retry'>): Promise<boolean> {
    return this.#transport.probe('/ready', options);
  }
}

/** Encodes a protocol message and checks it against the wire format before it leaves. */
function outgoing(name: MessageName, message: unknown): unknown {
  const body = encodeMessage(message);
  decodeMessage(name, body);
  return body;
}

/** A batch item's answer as a result; an item's error gets the status its code has alone. */
function toExchangeResult(
  item: Exclude<HubExchangeItemAnswer, { covered: unknown }>,
  request: string,
): HubExchangeResult {
  if ('hubPromise' in item) return { ok: true, hubPromise: item.hubPromise };
  const { code, message, details } = item.error;
  const status = isHubErrorCode(code) ? hubErrorCodes[code].status : 200;
  return { ok: false, error: new HubError({ code, status, message, details, request, attempts: 1 }) };
}
