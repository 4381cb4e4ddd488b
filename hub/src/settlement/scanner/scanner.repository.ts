import type { Pool } from 'pg';
import { fromBytea, type Hex, toBytea } from '../../db/bytes';
import { withTransaction } from '../../db/transaction';
import type { ExchangeRecord } from '../../exchange/exchange.rules';
import { toExchangeRecord } from '../../repositories/exchange.repository';
import { insertSettlements, observe, toSettlement } from '../settlement.repository';
import type { NewSettlement, SettlementObserver, SettlementRecord } from '../settlement.types';
import type { DueConsumer, DueProvider, Reopening } from './scanner.rules';

/**
 * The scanner's SQL: the consumers and providers due a settlement, the settlements the chain follower
 * saw settled, and the confirmed settlements a reorg may have taken away.
 */
export class ScannerRepository {
  constructor(
    private readonly pool: Pool,
    private readonly confirmed?: SettlementObserver,
  ) {}

  /**
   * Consumers whose highest signed total is above what they settled, whose channel holds something,
   * and for which no settlement of that total (or more) exists yet. Exiting consumers first.
   */
  async dueConsumers(limit: number, only?: Hex): Promise<DueConsumer[]> {
    const { rows } = await this.pool.query(
      `SELECT c.address AS c_address, c.balance AS c_balance, c.settled AS c_settled,
              c.exit_ready_at AS c_exit_ready_at, e.*
         FROM consumers c
         JOIN exchanges e ON e.hashlock = c.best_hashlock
        WHERE c.signed_total > c.settled AND c.balance > 0
          AND ($2::bytea IS NULL OR c.address = $2)
          AND NOT EXISTS (
            SELECT 1 FROM settlements s
             WHERE s.kind = 'consumer' AND s.subject = c.address AND s.amount >= c.signed_total)
        ORDER BY c.exit_ready_at NULLS LAST, c.signed_total - c.settled DESC
        LIMIT $1`,
      [limit, only ? toBytea(only) : null],
    );
    return rows.map((row) => ({
      consumer: fromBytea(row.c_address),
      balance: BigInt(row.c_balance),
      settled: BigInt(row.c_settled),
      exitReadyAt: row.c_exit_ready_at,
      exchange: toExchangeRecord(row),
    }));
  }

  /** The consumer's highest promise above `settled` whose R is known, if any. */
  async bestRevealedExchange(consumer: Hex, settled: bigint): Promise<ExchangeRecord | undefined> {
    const { rows } = await this.pool.query(
      `SELECT * FROM exchanges WHERE consumer = $1 AND consumer_total > $2 AND preimage IS NOT NULL
        ORDER BY consumer_total DESC LIMIT 1`,
      [toBytea(consumer), settled.toString()],
    );
    return rows[0] ? toExchangeRecord(rows[0]) : undefined;
  }

  /** Providers with at least `threshold` unsettled and no settlement of their latest total yet. */
  async dueProviders(threshold: bigint, limit: number): Promise<DueProvider[]> {
    const { rows } = await this.pool.query(
      `SELECT p.address AS p_address, p.promised AS p_promised, p.settled AS p_settled, e.*
         FROM providers p
         JOIN exchanges e ON e.hashlock = p.latest_hashlock
        WHERE p.promised - p.settled >= $1 AND p.promised > p.settled
          AND NOT EXISTS (
            SELECT 1 FROM settlements s
             WHERE s.kind = 'provider' AND s.subject = p.address AND s.amount >= p.promised)
        ORDER BY p.promised - p.settled DESC
        LIMIT $2`,
      [threshold.toString(), limit],
    );
    return rows.map((row) => ({
      provider: fromBytea(row.p_address),
      promised: BigInt(row.p_promised),
      settled: BigInt(row.p_settled),
      exchange: toExchangeRecord(row),
    }));
  }

  /**
   * Records a scan's decisions in one transaction: the R it opened from boxes, and the new settlements
   * (queued; those recorded meanwhile are left out). Returns the settlements it inserted.
   */
  async record(scan: {
    preimages: readonly { hashlock: Hex; preimage: Hex }[];
    settlements: readonly NewSettlement[];
  }): Promise<SettlementRecord[]> {
    if (scan.preimages.length === 0 && scan.settlements.length === 0) return [];
    return withTransaction(this.pool, async (client) => {
      if (scan.preimages.length > 0) {
        await client.query(
          `UPDATE exchanges e SET preimage = v.preimage
             FROM unnest($1::bytea[], $2::bytea[]) AS v(hashlock, preimage)
            WHERE e.hashlock = v.hashlock AND e.preimage IS NULL`,
          [scan.preimages.map((p) => toBytea(p.hashlock)), scan.preimages.map((p) => toBytea(p.preimage))],
        );
      }
      return insertSettlements(client, scan.settlements);
    });
  }

  /** The failed consumer settlements of `consumer`, put back in the queue (its channel got funds again). */
  async requeueFailedConsumer(consumer: Hex): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query(
      `UPDATE settlements
          SET status = 'queued', error = NULL, error_code = NULL, tx_hash = NULL, lease_until = NULL, updated_at = now()
        WHERE kind = 'consumer' AND subject = $1 AND status = 'failed'
        RETURNING *`,
      [toBytea(consumer)],
    );
    return rows.map(toSettlement);
  }

  /**
   * A settlement event seen by the chain follower: every settlement of `subject` for a total up to
   * `total` is settled, by this transaction or by an earlier one (even one the hub gave up on, if its
   * transaction was mined after all). Returns the ids it confirmed.
   */
  async confirmSettledUpTo(kind: 'consumer' | 'provider', subject: Hex, total: bigint, txHash: Hex): Promise<string[]> {
    const { rows } = await this.pool.query(
      `UPDATE settlements
          SET status = 'confirmed', error = NULL, error_code = NULL, lease_until = NULL, updated_at = now(),
              tx_hash = CASE WHEN amount = $3 OR tx_hash IS NULL THEN $4 ELSE tx_hash END
        WHERE kind = $1 AND subject = $2 AND amount <= $3 AND status <> 'confirmed'
        RETURNING id, kind, extract(epoch FROM now() - created_at) AS seconds, payload ? 'reorgedOut' AS again`,
      [kind, toBytea(subject), total.toString(), toBytea(txHash)],
    );
    observe(this.confirmed, rows);
    return rows.map((row) => row.id as string);
  }

  /**
   * The hub's transactions recorded mined in a block after `block` that carry confirmed settlements,
   * newest first: the ones a reorg back to `block` may have taken away. Only those recorded in the
   * last day (the index of mined transactions): no reorg reaches further back.
   */
  async minedCarryingConfirmed(block: bigint, limit: number): Promise<{ hash: Hex; block: bigint }[]> {
    const { rows } = await this.pool.query(
      `SELECT t.hash, t.block FROM transactions t
        WHERE t.status = 'mined' AND t.kind IN ('consumer', 'provider', 'identity', 'beneficiary')
          AND t.created_at > now() - interval '1 day' AND t.block > $1
          AND EXISTS (SELECT 1 FROM settlements s WHERE s.tx_hash = t.hash AND s.status = 'confirmed')
        ORDER BY t.block DESC LIMIT $2`,
      [block.toString(), limit],
    );
    return rows.map((row) => ({ hash: fromBytea(row.hash), block: BigInt(row.block) }));
  }

  /**
   * Confirmed consumer and provider settlements above what the books (the follower's view of the
   * chain, rewound after a reorg) say is settled, and not carried by a transaction of the hub recorded
   * mined (those are checked by their block): confirmed by an event or by another party's transaction.
   * It reads every confirmed settlement: for after a rewind, not for a schedule.
   */
  async confirmedAboveBooks(limit: number): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query(
      `SELECT s.* FROM settlements s
         LEFT JOIN consumers c ON s.kind = 'consumer' AND c.address = s.subject
         LEFT JOIN providers p ON s.kind = 'provider' AND p.address = s.subject
        WHERE s.status = 'confirmed' AND s.kind IN ('consumer', 'provider')
          AND s.amount > COALESCE(c.settled, p.settled, 0)
          AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.hash = s.tx_hash AND t.status = 'mined')
        ORDER BY s.updated_at DESC LIMIT $1`,
      [limit],
    );
    return rows.map(toSettlement);
  }

  /**
   * Records what a look for reorged settlements decided, in one transaction, and returns the settlements
   * it reopened: each transaction no longer in its block is pending again with the settlements it
   * confirmed submitted with it (none when it is no longer recorded mined in that block); each settlement
   * the chain no longer has settled is submitted again when a pending transaction of the hub carries it,
   * else retrying. The same rows, so a claim is never counted twice.
   */
  async reopen(reopening: Reopening): Promise<SettlementRecord[]> {
    if (reopening.transactions.length === 0 && reopening.settlements.length === 0) return [];
    return withTransaction(this.pool, async (client) => {
      const reopened: SettlementRecord[] = [];
      for (const { hash, block, reason } of reopening.transactions) {
        const reverted = await client.query(
          `UPDATE transactions SET status = 'pending', block = NULL, updated_at = now()
            WHERE hash = $1 AND status = 'mined' AND block = $2`,
          [toBytea(hash), block.toString()],
        );
        if (reverted.rowCount !== 1) continue;
        const { rows } = await client.query(
          `UPDATE settlements
              SET status = 'submitted', error = $2, error_code = $4, lease_until = NULL, updated_at = now(),
                  payload = payload || jsonb_build_object('reorgedOut', $3::text)
            WHERE tx_hash = $1 AND status = 'confirmed'
            RETURNING *`,
          [toBytea(hash), reason.message, hash, reason.code],
        );
        reopened.push(...rows.map(toSettlement));
      }
      for (const { id, reason } of reopening.settlements) {
        const { rows } = await client.query(
          `UPDATE settlements s
              SET error = $2, error_code = $3, lease_until = NULL, updated_at = now(),
                  payload = payload || jsonb_build_object('reorgedOut', '0x' || encode(s.tx_hash, 'hex')),
                  status = CASE WHEN EXISTS (SELECT 1 FROM transactions t WHERE t.hash = s.tx_hash AND t.status = 'pending')
                           THEN 'submitted' ELSE 'retrying' END
            WHERE s.id = $1 AND s.status = 'confirmed'
            RETURNING *`,
          [id, reason.message, reason.code],
        );
        if (rows[0]) reopened.push(toSettlement(rows[0]));
      }
      return reopened;
    });
  }
}
