import { type Address, getAddress, type Hex } from 'viem';
import { createSiweMessage } from 'viem/siwe';
import type { z } from 'zod';
import { MalformedMessageError } from '../errors/protocol.js';
import { wireIssuePath } from '../protocol/codec.js';
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
import { type HubRequestOptions, type HubTransport, pathAddress } from './transport.js';

/** The range of a history list: `from` inclusive, `to` exclusive. */
export interface HistoryRange {
  from: Date;
  to: Date;
}

/** The range and bucket of a history: hours or UTC days (default day). */
export interface HistoryQuery extends HistoryRange {
  bucket?: HistoryBucket;
}

/** A session of {@link HubHistoryClient.signIn}, or its token. */
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

/**
 * A hub's history endpoints (docs/history.md), as `hub.history` of a {@link HubClient}: sign in with
 * Sign-In with Ethereum, then read an identity's earnings, spending and settlements, or the hub's
 * figures with the operator's session, as typed answers or CSV.
 *
 * @example
 * const session = await hub.history.signIn(account, { chainId });
 * const { buckets, total } = await hub.history.provider(account.address, { from, to }, session);
 */
export class HubHistoryClient {
  constructor(private readonly transport: HubTransport) {}

  /**
   * Signs in with Sign-In with Ethereum (EIP-4361): gets a nonce (`GET /v1/auth/nonce`), signs a message
   * for this hub's host and chain with `account` (EIP-191 `signMessage`) and opens a session (`POST
   * /v1/auth/session`). The session's token reads the account's own history (the hub's too, for the
   * operator's account) until `expiresAt`.
   *
   * @throws {HubError} `UNAUTHORIZED` when the hub refuses the sign-in (`details.reason`).
   * @example
   * const session = await hub.history.signIn(account, { chainId: info.chainId });
   * const history = await hub.history.provider(account.address, { from, to }, session);
   */
  async signIn(
    account: { address: Address; signMessage: (args: { message: string }) => Promise<Hex> },
    params: { chainId: number; statement?: string; now?: Date },
    options?: HubRequestOptions,
  ): Promise<HubSession> {
    const { nonce } = await this.transport.call(
      { method: 'GET', path: '/v1/auth/nonce', decode: (json) => historyAnswerSchemas.authNonce.parse(json) },
      options,
    );
    const url = new URL(this.transport.url);
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
    return this.transport.call(
      { method: 'POST', path: '/v1/auth/session', body: { message, signature }, decode: history('session') },
      { ...options, retry: false },
    );
  }

  /**
   * `GET /v1/history/providers/{address}`: the provider's earnings per hour or UTC day in `[from, to)`,
   * the hub fee they cost at today's fee, and its books (promised, settled, unsettled). Needs the
   * provider's session ({@link HubHistoryClient.signIn}).
   *
   * @example
   * const { buckets, total, books } = await hub.history.provider(provider, { from, to, bucket: 'hour' }, session);
   */
  async provider(
    provider: Address,
    query: HistoryQuery,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubProviderHistory> {
    const path = historyPath(`providers/${pathAddress(provider, 'provider')}`, query);
    return this.transport.call(
      { method: 'GET', path, headers: bearer(session), decode: history('providerHistory') },
      options,
    );
  }

  /** `GET /v1/history/providers/{address}/consumers`: what each consumer paid the provider in the range, largest first (at most 100). */
  async providerConsumers(
    provider: Address,
    query: HistoryRange,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubProviderConsumers> {
    const path = historyPath(`providers/${pathAddress(provider, 'provider')}/consumers`, rangeOf(query));
    return this.transport.call(
      { method: 'GET', path, headers: bearer(session), decode: history('providerConsumers') },
      options,
    );
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
    return this.transport.call(
      { method: 'GET', path, headers: bearer(session), decode: history('providerSettlements') },
      options,
    );
  }

  /** `GET /v1/history/consumers/{address}`: the consumer's spending per hour or UTC day. */
  async consumer(
    consumer: Address,
    query: HistoryQuery,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubConsumerHistory> {
    const path = historyPath(`consumers/${pathAddress(consumer, 'consumer')}`, query);
    return this.transport.call(
      { method: 'GET', path, headers: bearer(session), decode: history('consumerHistory') },
      options,
    );
  }

  /** `GET /v1/history/consumers/{address}/providers`: what the consumer paid each provider in the range, largest first. */
  async consumerProviders(
    consumer: Address,
    query: HistoryRange,
    session: SessionLike,
    options?: HubRequestOptions,
  ): Promise<HubConsumerProviders> {
    const path = historyPath(`consumers/${pathAddress(consumer, 'consumer')}/providers`, rangeOf(query));
    return this.transport.call(
      { method: 'GET', path, headers: bearer(session), decode: history('consumerProviders') },
      options,
    );
  }

  /** `GET /v1/history/hub`: the hub's volume, money against liabilities and settlement batches. Needs the operator's session. */
  async hub(query: HistoryQuery, session: SessionLike, options?: HubRequestOptions): Promise<HubHistory> {
    return this.transport.call(
      { method: 'GET', path: historyPath('hub', query), headers: bearer(session), decode: history('hubHistory') },
      options,
    );
  }

  /**
   * A history as CSV to save (`format=csv`): `earnings`, `consumers` and `settlements` of a provider,
   * `spending` and `providers` of a consumer, `hub` for the operator.
   *
   * @example
   * await writeFile('earnings.csv', await hub.history.csv('earnings', provider, { from, to }, session));
   */
  async csv(
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
    return this.transport.call({ method: 'GET', path, headers, text: true, decode: (text) => text as string }, options);
  }
}
