import type { Hex } from '../db/bytes';

// The settlement domain: what a settlement is, what each kind carries to be sent again, and the port
// through which the services hand settlements to the job queues.

export type SettlementKind = 'consumer' | 'provider' | 'identity' | 'beneficiary';
export type SettlementStatus = 'queued' | 'submitted' | 'confirmed' | 'failed' | 'retrying';

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
  error: string | null;
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
  error: string | null;
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
