import type { Pool, PoolClient } from 'pg';
import { fromBytea, type Hex, toBytea } from '../../db/bytes';
import { openTransaction, withTransaction } from '../../db/transaction';
import type { SettlementKind } from '../../settlement/settlement.types';
import type { NewTransaction, TransactionRecord } from './outbox.types';

/** The nonce lock of one sending key, held in one open transaction (see {@link OutboxRepository.lockSender}). */
export interface SenderLock {
  /** The nonces from `from` on that the key's pending transactions hold. */
  pendingNonces(from: bigint): Promise<Set<bigint>>;
  /**
   * Records a signed transaction and marks `settlementIds` submitted with it, then commits, which
   * releases the lock: the write-ahead record exists before the transaction is broadcast.
   */
  recordAndCommit(tx: NewTransaction, settlementIds: readonly string[]): Promise<void>;
  /** Rolls back (if nothing was committed) and returns the connection. */
  release(): Promise<void>;
}

/** Advisory lock class of the nonce locks (the key is hashtext(sender)). */
const NONCE_LOCK_CLASS = 0x6e6f6e; // "non"

/**
 * The outbox's SQL: the `transactions` table (one row per signed transaction, replacements included)
 * and the settlements each one carries (marked submitted with it, moved onto its replacement, pointed
 * at the attempt that was mined).
 */
export class OutboxRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Opens a transaction holding the nonce lock of `sender` (a transaction-scoped advisory lock, so a
   * replica that dies releases it with its connection). Waits while another replica holds it.
   */
  async lockSender(sender: Hex): Promise<SenderLock> {
    const transaction = await openTransaction(this.pool);
    const { client } = transaction;
    try {
      await client.query('SELECT pg_advisory_xact_lock($1, hashtext($2))', [NONCE_LOCK_CLASS, sender]);
    } catch (error) {
      await transaction.release();
      throw error;
    }
    return {
      pendingNonces: async (from) => {
        const { rows } = await client.query(
          `SELECT DISTINCT nonce FROM transactions WHERE sender = $1 AND status = 'pending' AND nonce >= $2`,
          [toBytea(sender), from.toString()],
        );
        return new Set(rows.map((row) => BigInt(row.nonce)));
      },
      recordAndCommit: async (tx, settlementIds) => {
        await insertTransaction(client, tx, settlementIds);
        await transaction.commit();
      },
      release: () => transaction.release(),
    };
  }

  /**
   * Records a replacement (same nonce, higher fees) and moves the settlements carried by `replaces`
   * onto it, in one commit, before it is broadcast.
   */
  async recordReplacement(tx: NewTransaction, replaces: readonly Hex[]): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      const { rows } = await client.query(
        `SELECT id FROM settlements WHERE tx_hash = ANY($1::bytea[]) AND status = 'submitted'`,
        [replaces.map(toBytea)],
      );
      await insertTransaction(
        client,
        tx,
        rows.map((row) => row.id as string),
      );
    });
  }

  async transaction(hash: Hex): Promise<TransactionRecord | undefined> {
    const { rows } = await this.pool.query(
      'SELECT *, (extract(epoch FROM now() - created_at) * 1000)::bigint AS age_ms FROM transactions WHERE hash = $1',
      [toBytea(hash)],
    );
    return rows[0] ? toTransaction(rows[0]) : undefined;
  }

  /** Every transaction of `sender` with `nonce`: the original and its replacements, oldest first. */
  async transactionsWithNonce(sender: Hex, nonce: bigint): Promise<TransactionRecord[]> {
    const { rows } = await this.pool.query(
      `SELECT *, (extract(epoch FROM now() - created_at) * 1000)::bigint AS age_ms
         FROM transactions WHERE sender = $1 AND nonce = $2 ORDER BY created_at, hash`,
      [toBytea(sender), nonce.toString()],
    );
    return rows.map(toTransaction);
  }

  /** Marks `hash` mined and the other transactions with its nonce replaced. */
  async markMined(hash: Hex, block: bigint, gasUsed: bigint): Promise<void> {
    await withTransaction(this.pool, async (client) => {
      const { rows } = await client.query(
        `UPDATE transactions SET status = 'mined', block = $2, gas_used = $3, updated_at = now()
          WHERE hash = $1 RETURNING sender, nonce`,
        [toBytea(hash), block.toString(), gasUsed.toString()],
      );
      if (!rows[0]) return;
      await client.query(
        `UPDATE transactions SET status = 'replaced', updated_at = now()
          WHERE sender = $1 AND nonce = $2 AND hash <> $3 AND status = 'pending'`,
        [rows[0].sender, rows[0].nonce, toBytea(hash)],
      );
      // The settlements may still point at an earlier attempt: point them at the one that was mined.
      await client.query(
        `UPDATE settlements s SET tx_hash = $1, updated_at = now()
           FROM transactions t
          WHERE t.sender = $2 AND t.nonce = $3 AND s.tx_hash = t.hash AND s.tx_hash <> $1`,
        [toBytea(hash), rows[0].sender, rows[0].nonce],
      );
    });
  }

  /** Marks pending transactions dropped: the node refused them, or their nonce went to another. */
  async markDropped(hashes: readonly Hex[]): Promise<void> {
    await this.pool.query(
      `UPDATE transactions SET status = 'dropped', updated_at = now() WHERE hash = ANY($1::bytea[]) AND status = 'pending'`,
      [hashes.map(toBytea)],
    );
  }

  /**
   * Average gas per claim of the last `limit` mined transactions of `kind` that carry claims (not the
   * permits sent before relayed registrations), or undefined.
   */
  async gasPerClaim(kind: SettlementKind, limit: number): Promise<bigint | undefined> {
    const { rows } = await this.pool.query(
      `SELECT sum(gas_used) AS gas, sum(claims) AS claims FROM (
         SELECT gas_used, claims FROM transactions
          WHERE kind = $1 AND status = 'mined' AND gas_used IS NOT NULL AND claims > 0
          ORDER BY created_at DESC LIMIT $2) recent`,
      [kind, limit],
    );
    const { gas, claims } = rows[0];
    if (gas === null || claims === null || BigInt(claims) === 0n) return undefined;
    return (BigInt(gas) + BigInt(claims) - 1n) / BigInt(claims);
  }
}

async function insertTransaction(client: PoolClient, tx: NewTransaction, settlementIds: readonly string[]) {
  await client.query(
    `INSERT INTO transactions (hash, sender, nonce, kind, claims, raw, max_fee_per_gas, max_priority_fee_per_gas, status)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')
     ON CONFLICT (hash) DO NOTHING`,
    [
      toBytea(tx.hash),
      toBytea(tx.sender),
      tx.nonce.toString(),
      tx.kind,
      tx.claims,
      toBytea(tx.raw),
      tx.maxFeePerGas.toString(),
      tx.maxPriorityFeePerGas.toString(),
    ],
  );
  if (settlementIds.length > 0) {
    await client.query(
      `UPDATE settlements SET status = 'submitted', tx_hash = $2, error = NULL, error_code = NULL, lease_until = NULL, updated_at = now()
        WHERE id = ANY($1::text[]) AND status IN ('queued', 'submitted', 'retrying')`,
      [settlementIds, toBytea(tx.hash)],
    );
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a pg row
function toTransaction(row: any): TransactionRecord {
  return {
    hash: fromBytea(row.hash),
    sender: fromBytea(row.sender),
    nonce: BigInt(row.nonce),
    kind: row.kind,
    claims: row.claims,
    raw: fromBytea(row.raw),
    maxFeePerGas: BigInt(row.max_fee_per_gas),
    maxPriorityFeePerGas: BigInt(row.max_priority_fee_per_gas),
    status: row.status,
    block: row.block === null ? null : BigInt(row.block),
    ageMs: Number(row.age_ms ?? 0),
  };
}
