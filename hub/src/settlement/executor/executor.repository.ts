import type { Pool } from 'pg';
import { type Hex, toBytea } from '../../db/bytes';
import { withTransaction } from '../../db/transaction';
import { observe, toSettlement } from '../settlement.repository';
import type { SettlementObserver, SettlementRecord } from '../settlement.types';
import type { Outcome } from './executor.rules';

/** The executor's SQL: attempts and leases of the settlements it sends, and the outcomes it records. */
export class ExecutorRepository {
  constructor(
    private readonly pool: Pool,
    private readonly confirmed?: SettlementObserver,
  ) {}

  /** Counts a job's attempt at a settlement. */
  async countAttempt(id: string): Promise<void> {
    await this.pool.query('UPDATE settlements SET attempts = attempts + 1 WHERE id = $1', [id]);
  }

  /**
   * Leases the open, unsubmitted settlements of `ids` to this replica for `ms` (a batch in the making);
   * returns the ids it leased. One leased elsewhere, or already submitted, is left out.
   */
  async lease(ids: readonly string[], ms: number): Promise<string[]> {
    const { rows } = await this.pool.query(
      `UPDATE settlements SET lease_until = now() + make_interval(secs => $2::double precision / 1000)
        WHERE id = ANY($1::text[]) AND status IN ('queued', 'retrying')
          AND (lease_until IS NULL OR lease_until < now())
        RETURNING id`,
      [ids, ms],
    );
    return rows.map((row) => row.id as string);
  }

  async releaseLease(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query('UPDATE settlements SET lease_until = NULL WHERE id = ANY($1::text[])', [ids]);
  }

  /** The settlements a transaction (or any transaction with its nonce) carries. */
  async settlementsOfTransactions(hashes: readonly Hex[]): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query('SELECT * FROM settlements WHERE tx_hash = ANY($1::bytea[])', [
      hashes.map(toBytea),
    ]);
    return rows.map(toSettlement);
  }

  /**
   * Records outcomes in one transaction, each only on a settlement still open. Failed: with its error (code and message).
   * Retrying: with its error, but one whose transaction is still pending stays submitted (its next
   * attempt follows that transaction); a lease another replica holds on it is left alone. Confirmed:
   * with the transaction that settled it (null when another party's did and its hash is not known) and
   * its facts merged into the payload; with a transaction, only while that one is recorded mined (one
   * a reorg took away meanwhile leaves the settlement open).
   */
  async record(outcomes: readonly Outcome[]): Promise<void> {
    if (outcomes.length === 0) return;
    const confirmed = await withTransaction(this.pool, async (client) => {
      const rows: { kind: SettlementRecord['kind']; seconds: string; again: boolean }[] = [];
      for (const outcome of outcomes) {
        if (outcome.status === 'failed') {
          await client.query(
            `UPDATE settlements SET status = 'failed', error = $2, error_code = $3, lease_until = NULL, updated_at = now()
              WHERE id = $1 AND status IN ('queued', 'submitted', 'retrying')`,
            [outcome.id, outcome.error.message, outcome.error.code],
          );
        } else if (outcome.status === 'retrying') {
          await client.query(
            `UPDATE settlements s
                SET error = $2, error_code = $3, updated_at = now(),
                    status = CASE WHEN s.status = 'submitted' AND EXISTS (
                               SELECT 1 FROM transactions c
                                 JOIN transactions t ON t.sender = c.sender AND t.nonce = c.nonce
                                WHERE c.hash = s.tx_hash AND t.status = 'pending')
                             THEN 'submitted' ELSE 'retrying' END
              WHERE s.id = $1 AND s.status IN ('queued', 'submitted', 'retrying')`,
            [outcome.id, outcome.error.message, outcome.error.code],
          );
        } else {
          const result = await client.query(
            `UPDATE settlements
                SET status = 'confirmed', tx_hash = COALESCE($2, tx_hash), error = NULL, error_code = NULL,
                    lease_until = NULL,
                    payload = payload || $3::jsonb, updated_at = now()
              WHERE id = $1 AND status IN ('queued', 'submitted', 'retrying')
                AND ($2::bytea IS NULL OR EXISTS (SELECT 1 FROM transactions t WHERE t.hash = $2 AND t.status = 'mined'))
              RETURNING kind, extract(epoch FROM now() - created_at) AS seconds, payload ? 'reorgedOut' AS again`,
            [outcome.id, outcome.txHash ? toBytea(outcome.txHash) : null, JSON.stringify(outcome.facts)],
          );
          rows.push(...result.rows);
        }
      }
      return rows;
    });
    observe(this.confirmed, confirmed);
  }
}
