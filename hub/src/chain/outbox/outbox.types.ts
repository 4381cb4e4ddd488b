import type { Hex } from '../../db/bytes';
import type { SettlementKind } from '../../settlement/settlement.types';

// The transaction outbox: every transaction the hub signs is recorded (write-ahead) before it is
// broadcast, with the settlements it carries, and followed until it is mined, replaced or dropped.

/** A row of `transactions`. */
export interface TransactionRecord {
  hash: Hex;
  sender: Hex;
  nonce: bigint;
  kind: SettlementKind;
  claims: number;
  raw: Hex;
  maxFeePerGas: bigint;
  maxPriorityFeePerGas: bigint;
  status: 'pending' | 'mined' | 'replaced' | 'dropped';
  block: bigint | null;
  /** Milliseconds since it was recorded, by the database's clock. */
  ageMs: number;
}

export type NewTransaction = Omit<TransactionRecord, 'status' | 'block' | 'ageMs'>;

/** What a transaction carries, for its write-ahead record. */
export interface SendRequest {
  kind: SettlementKind;
  claims: number;
  settlementIds: readonly string[];
}
