import { z } from 'zod';
import { address, basisPoints, bytes32, signature, uint256 } from './primitives.js';

// History: earnings, spending and the hub's figures over time (docs/history.md), and the Sign-In with
// Ethereum (EIP-4361) session that guards them. A provider's or consumer's history is served only to a
// session of that identity; the hub-wide figures only to the operator's.

/** An instant as an ISO 8601 UTC timestamp (`2026-12-05T00:00:00.000Z`); decodes to a Date. */
export const instant = z.iso
  .datetime({ offset: true })
  .transform((value) => new Date(value))
  .meta({ description: 'ISO 8601 timestamp, e.g. 2026-12-05T00:00:00Z' });

/** The bucket width of a history: an hour or a UTC day. */
export const historyBucket = z.enum(['hour', 'day']);
export type HistoryBucket = z.output<typeof historyBucket>;

/** How a history is answered: JSON, or CSV to download (`format=csv`). */
export const historyFormat = z.enum(['json', 'csv']);

/**
 * The range and bucket of a history query: `from` inclusive, `to` exclusive (hours and UTC days that
 * start in it); `bucket` defaults to day, `format` to json.
 */
export const historyQuery = z.strictObject({
  from: instant,
  to: instant,
  bucket: historyBucket.default('day'),
  format: historyFormat.default('json'),
});

/** The range of a history list (no bucket), answered as JSON or CSV. */
export const historyListQuery = z.strictObject({
  from: instant,
  to: instant,
  format: historyFormat.default('json'),
});

const count = z.number().int().nonnegative();
const time = z.string().meta({ description: 'ISO 8601 UTC timestamp' });

/** One bucket of volume: its start, the increments credited in it and how many exchanges made them. */
const volumeBucket = z.strictObject({ start: time, amount: uint256, exchanges: count });

/** One bucket of a provider's earnings: the volume, and the hub fee it will cost at today's fee. */
const earningsBucket = z.strictObject({ start: time, amount: uint256, hubFee: uint256, exchanges: count });

const range = { from: time, to: time };

/** `GET /v1/history/providers/{address}`: a provider's earnings per bucket, and where its money stands. */
const providerHistory = z.strictObject({
  provider: address,
  ...range,
  bucket: historyBucket,
  /** The hub fee in basis points in force now: the fee a settlement would take today. */
  fee: basisPoints,
  buckets: z.array(earningsBucket),
  total: z.strictObject({ amount: uint256, hubFee: uint256, exchanges: count }),
  /** All time: promised by the hub, settled on-chain, and the difference still to settle. */
  books: z.strictObject({ promised: uint256, settled: uint256, unsettled: uint256 }),
});

/** `GET /v1/history/providers/{address}/consumers`: what each consumer paid the provider in the range, largest first. */
const providerConsumers = z.strictObject({
  provider: address,
  ...range,
  consumers: z.array(z.strictObject({ consumer: address, amount: uint256, exchanges: count })),
});

const settlementStatus = z.enum(['queued', 'submitted', 'confirmed', 'failed', 'retrying']);

/** One of a provider's settlements: what it claimed, what it paid, what it cost, and where it stands. */
const providerSettlement = z.strictObject({
  id: z.string(),
  status: settlementStatus,
  /** The cumulative hub-promise total it settles. */
  total: uint256,
  /** Once confirmed: what it settled (total - settled before), the hub fee and the relayer fee taken from it, and what the beneficiary got. */
  amount: uint256.nullable(),
  hubFee: uint256.nullable(),
  relayerFee: uint256,
  payout: uint256.nullable(),
  txHash: bytes32.nullable(),
  /** Gas its transaction used (shared by the batch it was in); null before it is mined or when another party settled it. */
  gasUsed: uint256.nullable(),
  error: z.strictObject({ code: z.string(), message: z.string() }).nullable(),
  createdAt: time,
  updatedAt: time,
});

/** `GET /v1/history/providers/{address}/settlements`: the provider's settlements created in the range, newest first. */
const providerSettlements = z.strictObject({
  provider: address,
  ...range,
  settlements: z.array(providerSettlement),
});

/** `GET /v1/history/consumers/{address}`: a consumer's spending per bucket. */
const consumerHistory = z.strictObject({
  consumer: address,
  ...range,
  bucket: historyBucket,
  buckets: z.array(volumeBucket),
  total: z.strictObject({ amount: uint256, exchanges: count }),
});

/** `GET /v1/history/consumers/{address}/providers`: what the consumer paid each provider in the range, largest first. */
const consumerProviders = z.strictObject({
  consumer: address,
  ...range,
  providers: z.array(z.strictObject({ provider: address, amount: uint256, exchanges: count })),
});

/** `GET /v1/history/hub`: the hub's volume per bucket, its money against its liabilities, and its settlement batches. */
const hubHistory = z.strictObject({
  ...range,
  bucket: historyBucket,
  buckets: z.array(volumeBucket),
  total: z.strictObject({ amount: uint256, exchanges: count }),
  /** Stake and free funds on-chain against liabilities (promised - settled), the last sample of each bucket. */
  money: z.array(z.strictObject({ at: time, stake: uint256, freeFunds: uint256, liabilities: uint256 })),
  /** The transactions the hub's keys got mined in the range, newest first (at most 500). */
  batches: z.array(
    z.strictObject({
      hash: bytes32,
      kind: z.enum(['consumer', 'provider', 'identity', 'beneficiary']),
      claims: count,
      gasUsed: uint256,
      block: count,
      at: time,
    }),
  ),
});

/** `GET /v1/auth/nonce`: a nonce for one Sign-In with Ethereum message, and when it expires. */
const authNonce = z.strictObject({ nonce: z.string().regex(/^[0-9a-zA-Z]{8,}$/), expiresAt: time });

/** `POST /v1/auth/session`: an EIP-4361 message and the identity's signature of it (EIP-191). */
export const sessionRequest = z.strictObject({
  message: z.string().min(1).max(4_000),
  signature,
});

/** The session a sign-in opens: a bearer token for `Authorization: Bearer …`, whose it is, and until when. */
const session = z.strictObject({
  token: z.string(),
  address,
  /** The session is the hub operator's: it may read the hub-wide figures. */
  operator: z.boolean(),
  expiresAt: time,
});

/**
 * The history and sign-in answer schemas, by name (zod).
 *
 * @example
 * const history = historyAnswerSchemas.providerHistory.parse(await response.json());
 */
export const historyAnswerSchemas = {
  providerHistory,
  providerConsumers,
  providerSettlements,
  consumerHistory,
  consumerProviders,
  hubHistory,
  authNonce,
  session,
} as const;

export type HubProviderHistory = z.output<typeof providerHistory>;
export type HubProviderConsumers = z.output<typeof providerConsumers>;
export type HubProviderSettlements = z.output<typeof providerSettlements>;
export type HubProviderSettlement = z.output<typeof providerSettlement>;
export type HubConsumerHistory = z.output<typeof consumerHistory>;
export type HubConsumerProviders = z.output<typeof consumerProviders>;
export type HubHistory = z.output<typeof hubHistory>;
export type HubAuthNonce = z.output<typeof authNonce>;
export type HubSession = z.output<typeof session>;
