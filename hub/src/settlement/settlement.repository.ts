import type { Pool } from 'pg';
import { fromBytea, fromByteaOrNull, type Hex, toBytea } from '../db/bytes';
import type { ExchangeRecord } from '../exchange/exchange.rules';
import { toExchangeRecord } from '../repositories/exchange.repository';
import type { NewSettlement, SettlementObserver, SettlementRecord } from './settlement.types';

/** A pool or a client in a transaction: what the settlement SQL runs on. */
export type Queryable = Pick<Pool, 'query'>;

/**
 * The settlements' SQL every part of the wing shares: a settlement by id, the open ones, and the
 * exchanges their claims are built from (new settlements: {@link insertSettlements}). Each part keeps
 * the rest of its SQL in its own repository.
 */
export class SettlementRepository {
  constructor(private readonly pool: Pool) {}

  async get(id: string): Promise<SettlementRecord | undefined> {
    const { rows } = await this.pool.query('SELECT * FROM settlements WHERE id = $1', [id]);
    return rows[0] ? toSettlement(rows[0]) : undefined;
  }

  /** Every open settlement (queued, submitted, retrying), oldest first. */
  async open(limit: number): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query(
      `SELECT * FROM settlements WHERE status IN ('queued', 'submitted', 'retrying') ORDER BY created_at LIMIT $1`,
      [limit],
    );
    return rows.map(toSettlement);
  }

  async exchange(hashlock: Hex): Promise<ExchangeRecord | undefined> {
    const { rows } = await this.pool.query('SELECT * FROM exchanges WHERE hashlock = $1', [toBytea(hashlock)]);
    return rows[0] ? toExchangeRecord(rows[0]) : undefined;
  }

  /** Records R the hub opened from an exchange's box. */
  async recordPreimage(hashlock: Hex, preimage: Hex): Promise<void> {
    await this.pool.query('UPDATE exchanges SET preimage = $2 WHERE hashlock = $1 AND preimage IS NULL', [
      toBytea(hashlock),
      toBytea(preimage),
    ]);
  }
}

/** Inserts the settlements not recorded yet (queued) on `db`, a pool or a transaction; returns the ones inserted. */
export async function insertSettlements(
  db: Queryable,
  settlements: readonly NewSettlement[],
): Promise<SettlementRecord[]> {
  if (settlements.length === 0) return [];
  const { rows } = await db.query(
    `INSERT INTO settlements (id, kind, subject, amount, status, payload)
     SELECT v.id, v.kind, v.subject, v.amount, 'queued', v.payload
       FROM unnest($1::text[], $2::text[], $3::bytea[], $4::numeric[], $5::jsonb[])
         AS v(id, kind, subject, amount, payload)
     ON CONFLICT (id) DO NOTHING
     RETURNING *`,
    [
      settlements.map((s) => s.id),
      settlements.map((s) => s.kind),
      settlements.map((s) => toBytea(s.subject)),
      settlements.map((s) => s.amount.toString()),
      settlements.map((s) => JSON.stringify(s.payload)),
    ],
  );
  return rows.map(toSettlement);
}

// biome-ignore lint/suspicious/noExplicitAny: a pg row
export function toSettlement(row: any): SettlementRecord {
  // The kind and its payload were written together from a NewSettlement.
  return {
    id: row.id,
    kind: row.kind,
    subject: fromBytea(row.subject),
    amount: BigInt(row.amount),
    status: row.status,
    txHash: fromByteaOrNull(row.tx_hash),
    error: row.error === null ? null : { code: row.error_code, message: row.error },
    payload: row.payload ?? {},
    attempts: row.attempts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}

/** Tells `observer` of first confirmations only: one confirmed again after a reorg was told the first time. */
export function observe(
  observer: SettlementObserver | undefined,
  rows: { kind: SettlementRecord['kind']; seconds: string | number; again?: boolean }[],
): void {
  for (const row of rows) if (!row.again) observer?.(row.kind, Number(row.seconds));
}
