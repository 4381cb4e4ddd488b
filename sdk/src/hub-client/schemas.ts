import type { Address, Hex } from 'viem';
import { z } from 'zod';
import { MalformedMessageError } from '../errors/protocol.js';
import { wireIssuePath, wireSchemas } from '../protocol/codec.js';
import type { SignedConsumerPromise, SignedHubPromise } from '../protocol/types.js';
import { address, basisPoints, bytes32, chainId, publicKey, signature, text, uint256 } from '../wire/primitives.js';

// Strict schemas of the hub answers that are not protocol messages (docs/protocol.md, "Hub
// endpoints"). Same conventions as the wire codec: amounts as decimal strings, exact-length hex,
// EIP-55 addresses, unknown fields rejected. Times (readyAt, validUntil, deadline) are unix seconds
// as decimal strings, like `issuedAt` in a recovery request.

/**
 * The states of a settlement or relayed transaction at a hub.
 *
 * @example
 * const running = hubJobStatuses.filter((status) => status !== 'confirmed' && status !== 'failed');
 */
export const hubJobStatuses = ['queued', 'submitted', 'confirmed', 'failed', 'retrying'] as const;

/** The state of a settlement or relayed transaction at a hub. */
export type HubJobStatus = (typeof hubJobStatuses)[number];

const jobStatus = z.enum(hubJobStatuses);

const info = z.strictObject({
  hub: address,
  chainId,
  registry: address,
  token: address,
  operator: address,
  publicKey,
  fee: basisPoints,
  pendingFee: z.strictObject({ fee: basisPoints, effectiveAt: uint256 }).nullable(),
  stake: uint256,
  freeFunds: uint256,
  status: text,
  consumersPaused: z.boolean(),
  version: text,
});

const consumerAccount = z.strictObject({
  address,
  balance: uint256,
  settled: uint256,
  promised: uint256,
  credited: uint256,
  available: uint256,
  pendingExit: z.strictObject({ amount: uint256, readyAt: uint256 }).nullable(),
  latestPromise: wireSchemas.consumerPromise.nullable(),
});

const providerAccount = z.strictObject({
  address,
  earned: uint256,
  settled: uint256,
  unsettled: uint256,
  latestPromise: wireSchemas.hubPromise.nullable(),
});

const settlementQuote = z.strictObject({
  provider: address,
  amount: uint256,
  hubFee: uint256,
  relayerFee: uint256,
  relayer: address,
  gasPrice: uint256,
  validUntil: uint256,
});

const relayQuote = z.strictObject({
  kind: z.enum(['identity', 'identity-permit', 'beneficiary']),
  relayerFee: uint256,
  relayer: address,
  gasPrice: uint256,
  validUntil: uint256,
});

const job = z.strictObject({ id: text, status: jobStatus });

const settlementError = z.strictObject({
  code: z
    .string()
    .regex(/^[A-Za-z][A-Za-z0-9_]{0,63}$/, 'expected a failure code')
    .meta({
      description:
        "the Chit contract's custom error when the revert decoded to one (HubInsufficientFreeFunds), else one of the hub's own: REVERTED, NOTHING_TO_COLLECT, NOT_SETTLED, DROPPED, REPLACED, REORGED, INVALID_CLAIM, PERMIT_REFUSED, WAITING_FOR_FREE_FUNDS, ERROR",
    }),
  message: z.string().max(10_000),
});

const settlement = z.strictObject({
  id: text,
  kind: text,
  status: jobStatus,
  txHash: bytes32.nullable(),
  error: settlementError.nullable(),
});

const instantExit = z.strictObject({
  consumer: address,
  amount: uint256,
  nonce: uint256,
  deadline: uint256,
  signature,
});

const revealed = z.strictObject({ revealed: z.literal(true) });

const exchangeItemError = z.strictObject({
  error: z.strictObject({
    code: z.string().regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'expected an error code'),
    message: z.string().max(1_000),
    details: z.record(z.string(), z.unknown()),
  }),
});

// With `sign: 'latest'`: an item credited whose hub promise is not signed, covered by item `by`'s.
const exchangeItemCovered = z.strictObject({
  covered: z.strictObject({ total: uint256, hashlock: bytes32, by: z.number().int().min(0).max(1_000) }),
});

const exchangeResults = z.strictObject({
  results: z.array(z.union([wireSchemas.exchangeResponse, exchangeItemCovered, exchangeItemError])).min(1),
});

/**
 * Schemas of the hub answers that are not protocol messages, keyed by answer name (zod).
 *
 * @example
 * const ok = hubAnswerSchemas.settlement.safeParse(json).success;
 */
export const hubAnswerSchemas = {
  info,
  consumerAccount,
  providerAccount,
  settlementQuote,
  relayQuote,
  job,
  settlement,
  instantExit,
  revealed,
  exchangeResults,
} as const;

/** `GET /v1/info`: who the hub is and how to talk to it. */
export interface HubServiceInfo {
  /** The Hub contract. */
  hub: Address;
  chainId: number;
  registry: Address;
  token: Address;
  /** The operator key that signs hub promises and instant exits. */
  operator: Address;
  /** The secp256k1 public key to encrypt preimages to ({@link sealPreimage}). */
  publicKey: Hex;
  /** The hub fee in basis points in force now. */
  fee: number;
  /** A scheduled fee change not yet in force, or null. */
  pendingFee: { fee: number; effectiveAt: bigint } | null;
  stake: bigint;
  /** The hub's own funds, which pay providers first. */
  freeFunds: bigint;
  /** The hub's state: `active`, `punished`, `closing` or `closed`. */
  status: string;
  /** Whether the hub refuses new consumers. */
  consumersPaused: boolean;
  version: string;
}

/** `GET /v1/consumers/{address}`: a consumer's channel as the hub sees it. */
export interface HubConsumerAccount {
  address: Address;
  balance: bigint;
  settled: bigint;
  /** The highest total the consumer signed. */
  promised: bigint;
  /** What the hub credited to providers for this consumer so far. */
  credited: bigint;
  available: bigint;
  pendingExit: { amount: bigint; readyAt: bigint } | null;
  latestPromise: SignedConsumerPromise | null;
}

/** `GET /v1/providers/{address}`: what the hub owes a provider. */
export interface HubProviderAccount {
  address: Address;
  earned: bigint;
  settled: bigint;
  unsettled: bigint;
  latestPromise: SignedHubPromise | null;
}

/** `GET /v1/quotes/settlement`: what settling a provider's unsettled amount now would cost. */
export interface HubSettlementQuote {
  provider: Address;
  /** The amount that would be settled. */
  amount: bigint;
  hubFee: bigint;
  relayerFee: bigint;
  /** The hub's relayer: the account that submits the settlement, which the provider's
   * `SettlementAuthorization` must name. */
  relayer: Address;
  gasPrice: bigint;
  /** Unix seconds. */
  validUntil: bigint;
}

/** What `GET /v1/quotes/relay` quotes: a registration, one paid with a permit, or a beneficiary change. */
export type HubRelayKind = 'identity' | 'identity-permit' | 'beneficiary';

/** `GET /v1/quotes/relay`: the relayer fee the hub asks now for a relayed registration or beneficiary change. */
export interface HubRelayQuote {
  /** `identity-permit`: a registration whose fee the relayer collects with the identity's EIP-2612 permit. */
  kind: HubRelayKind;
  relayerFee: bigint;
  /** The hub's relayer: the account that submits the action, which the identity's `RegisterIdentity`
   * must name. */
  relayer: Address;
  gasPrice: bigint;
  /** Unix seconds. */
  validUntil: bigint;
}

/** `202` answer of the queued requests (settlements, relayed registrations). */
export interface HubJob {
  id: string;
  status: HubJobStatus;
}

/**
 * Why a settlement failed, or why its last attempt did while it is `retrying`: a code to branch on and a
 * message for people.
 */
export interface HubSettlementError {
  /**
   * The name of the Chit contract's custom error when the revert decoded to one (a `ContractErrorName`
   * such as `HubInsufficientFreeFunds`), else one of the hub's own codes: `REVERTED` (a revert no Chit
   * error decodes), `NOTHING_TO_COLLECT` (the consumer's channel was empty), `NOT_SETTLED` (a mined
   * transaction skipped the claim), `DROPPED`, `REPLACED` (its transaction was lost), `REORGED`,
   * `INVALID_CLAIM`, `PERMIT_REFUSED`, `WAITING_FOR_FREE_FUNDS`, or `ERROR` (anything else).
   */
  code: string;
  message: string;
}

/** `GET /v1/settlements/{id}`. */
export interface HubSettlement {
  id: string;
  kind: string;
  status: HubJobStatus;
  txHash: Hex | null;
  /** Null unless it failed, or an attempt did. */
  error: HubSettlementError | null;
}

/** `POST /v1/exits/instant`: the operator's `InstantExit` co-signature, for `Hub.instantExit`. */
export interface HubInstantExit {
  consumer: Address;
  amount: bigint;
  nonce: bigint;
  /** Unix seconds. */
  deadline: bigint;
  signature: Hex;
}

/**
 * One item of a `POST /v1/exchanges` answer, as sent: the hub promise; with `sign: 'latest'`, for an item
 * credited whose hub promise is not signed, its total and hashlock and the index of the item whose hub
 * promise covers it; or the error `POST /v1/exchange` would have answered for this item alone.
 */
export type HubExchangeItemAnswer =
  | { hubPromise: SignedHubPromise }
  | { covered: HubExchangeCover }
  | { error: { code: string; message: string; details: Record<string, unknown> } };

/**
 * An item of a `POST /v1/exchanges` answer with `sign: 'latest'` that was credited and not signed: the
 * `total` and `hashlock` of its hub promise, and the index (`by`) of the item of the same provider whose
 * signed hub promise, of a total at least as high, covers it.
 */
export interface HubExchangeCover {
  total: bigint;
  hashlock: Hex;
  by: number;
}

interface Answers {
  info: HubServiceInfo;
  consumerAccount: HubConsumerAccount;
  providerAccount: HubProviderAccount;
  settlementQuote: HubSettlementQuote;
  relayQuote: HubRelayQuote;
  job: HubJob;
  settlement: HubSettlement;
  instantExit: HubInstantExit;
  revealed: { revealed: true };
  exchangeResults: { results: HubExchangeItemAnswer[] };
}

/** The name of a hub answer that is not a protocol message. */
export type HubAnswerName = keyof typeof hubAnswerSchemas;

/**
 * Decodes a hub answer (parsed JSON) strictly, like {@link decodeMessage} does for protocol messages.
 *
 * @throws {MalformedMessageError} naming the first offending field.
 * @example
 * const info = decodeHubAnswer('info', await response.json());
 */
export function decodeHubAnswer<N extends HubAnswerName>(name: N, json: unknown): Answers[N] {
  const result = hubAnswerSchemas[name].safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new MalformedMessageError(name, wireIssuePath(issue), issue.message, result.error);
  }
  return result.data as unknown as Answers[N];
}
