import type { ContractErrorName } from '@chit/sdk';
import type { Hex } from '../db/bytes';

// The settlement domain: what a settlement is, what each kind carries to be sent again, and the port
// through which the services hand settlements to the job queues.

export type SettlementKind = 'consumer' | 'provider' | 'identity' | 'beneficiary';
export type SettlementStatus = 'queued' | 'submitted' | 'confirmed' | 'failed' | 'retrying';

/**
 * Why a settlement failed, or is being tried again, when no Chit contract error says why: the hub's own
 * failure codes, each with what it means.
 */
export const hubFailureCodes = {
  /** The transaction (or its simulation) reverted with data no Chit contract error decodes. */
  REVERTED: 'the transaction reverted without a Chit contract error',
  /** A mined consumer batch skipped the claim and the channel is not settled: it held nothing to collect. */
  NOTHING_TO_COLLECT: 'the consumer channel held nothing to collect',
  /** A mined provider batch skipped the claim and the chain does not have it settled: it is sent again. */
  NOT_SETTLED: 'the mined transaction did not settle the claim',
  /** The node refused every transaction with its nonce (or the hub holds no record of its transaction). */
  DROPPED: 'the transaction was dropped',
  /** Its nonce went to a transaction the hub did not send. */
  REPLACED: 'the nonce went to another transaction',
  /** A reorg took its transaction, or its settlement, away: it is sent again. */
  REORGED: 'a reorg took the settlement away',
  /** The hub's books hold no valid claim for it (no such exchange, a promise not signed by its consumer). */
  INVALID_CLAIM: 'the books hold no valid claim for it',
  /** The token refused the identity's permit of a relayed registration's fee. */
  PERMIT_REFUSED: "the token refused the identity's permit",
  /** A provider settlement waits for consumer settlements to fill the hub's free funds. */
  WAITING_FOR_FREE_FUNDS: "the hub's free funds do not cover it yet",
  /** Anything else: the node did not answer, R is not known yet, another replica holds it... */
  ERROR: 'another error',
} as const;

/** A failure code of the hub's own ({@link hubFailureCodes}). */
export type HubFailureCode = keyof typeof hubFailureCodes;

/**
 * What a failed (or retrying) settlement's error is coded as: the name of the Chit contract's custom
 * error when the revert decodes to one (`HubInsufficientFreeFunds`), else one of the hub's own codes.
 */
export type SettlementErrorCode = ContractErrorName | HubFailureCode;

/** Why a settlement failed, or its last attempt did: a code a client branches on, and the message for people. */
export interface SettlementFailure {
  code: SettlementErrorCode;
  message: string;
}

/** Statuses a settlement leaves only by being confirmed or failed. */
export const OPEN_STATUSES: readonly SettlementStatus[] = ['queued', 'submitted', 'retrying'];

/** A consumer claim: the exchange whose consumer promise it settles. */
export interface ConsumerPayload {
  hashlock: Hex;
}

/** A provider claim: the exchange whose hub promise it settles, and the relayer fee the provider authorized. */
export interface ProviderPayload {
  hashlock: Hex;
  /** Decimal; '0' for a settlement the hub makes on its own. */
  relayerFee: string;
  /** The provider's SettlementAuthorization of `relayerFee`; null without a relayer fee. */
  authorization: Hex | null;
}

/** A relayed registration, signed by the identity for its Registry nonce. */
export interface IdentityPayload {
  registry: Hex;
  beneficiary: Hex;
  /** Decimal; absent in rows of earlier hub versions (no fee). */
  relayerFee?: string;
  nonce: string;
  signature: Hex;
  /** The identity's EIP-2612 permit of the relayer fee to the Registry, submitted first. */
  permit?: { deadline: string; signature: Hex };
}

/** A relayed beneficiary change, signed by the identity for its Registry nonce. */
export interface BeneficiaryPayload {
  registry: Hex;
  beneficiary: Hex;
  nonce: string;
  signature: Hex;
}

/**
 * What an outcome adds to a settlement's payload: the block, the settlement event's arguments (as
 * lower-case strings), who settled it when the hub's transaction did not, a reorg that took it away.
 */
export type SettlementFacts = Readonly<Record<string, string>>;

/** What is recorded to send a settlement: its kind and the payload of that kind. */
export type SettlementWork =
  | { kind: 'consumer'; payload: ConsumerPayload }
  | { kind: 'provider'; payload: ProviderPayload }
  | { kind: 'identity'; payload: IdentityPayload }
  | { kind: 'beneficiary'; payload: BeneficiaryPayload };

/** A settlement to record: one claim (or relayed action) keyed by channel and amount. */
export type NewSettlement = SettlementWork & {
  id: string;
  subject: Hex;
  /** The cumulative total claimed; the Registry nonce for relayed identity actions. */
  amount: bigint;
};

/** A row of `settlements`: one claim (or relayed action), its state and its transaction. */
export type SettlementRecord = NewSettlement & {
  status: SettlementStatus;
  txHash: Hex | null;
  error: SettlementFailure | null;
  attempts: number;
  createdAt: Date;
  updatedAt: Date;
};

/** A settlement of one kind. */
export type SettlementOf<K extends SettlementKind> = Extract<SettlementRecord, { kind: K }>;

/** What `GET /v1/settlements/{id}` and the 202 answers show of a settlement. */
export interface SettlementView {
  id: string;
  kind: SettlementKind;
  status: SettlementStatus;
  txHash: Hex | null;
  error: SettlementFailure | null;
}

export function view(row: SettlementRecord): SettlementView {
  return { id: row.id, kind: row.kind, status: row.status, txHash: row.txHash, error: row.error };
}

/** Hears each settlement confirmed: its kind and the seconds from queued to confirmed (for metrics). */
export type SettlementObserver = (kind: SettlementKind, seconds: number) => void;

/** The port to the job queues: the services hand settlements to it (the BullMQ queues implement it). */
export interface SettlementQueue {
  enqueue(settlements: readonly SettlementRecord[], options?: { urgent?: boolean }): Promise<void>;
  /** Runs a consumer scan soon (a provider batch short of free funds waits for it). */
  collectConsumersSoon(): Promise<void>;
}

/** Where a job stands when it processes a settlement. */
export interface JobContext {
  urgent: boolean;
  /** 0 for the first attempt. */
  attempt: number;
  attempts: number;
}
