import type { Pool } from 'pg';
import { type Hex, toBytea } from '../../db/bytes';
import { withTransaction } from '../../db/transaction';
import type { ExchangeRecord } from '../../exchange/exchange.rules';
import { toExchangeRecord } from '../../repositories/exchange.repository';
import { insertSettlements, toSettlement } from '../settlement.repository';
import type { NewSettlement, SettlementRecord } from '../settlement.types';

/** The SQL of settlement and relay requests. */
export class RequestsRepository {
  constructor(private readonly pool: Pool) {}

  /** The provider's exchanges, latest (highest hub total) first. */
  async providerExchanges(provider: Hex, limit: number): Promise<ExchangeRecord[]> {
    const { rows } = await this.pool.query(
      'SELECT * FROM exchanges WHERE provider = $1 ORDER BY hub_total DESC LIMIT $2',
      [toBytea(provider), limit],
    );
    return rows.map(toExchangeRecord);
  }

  /**
   * Records a requested settlement in one transaction: a new one is queued, a failed one is queued again
   * with the request's payload, any other is left as it is. Returns it, with whether it is queued now.
   */
  async createOrRequeue(settlement: NewSettlement): Promise<{ row: SettlementRecord; queued: boolean }> {
    return withTransaction(this.pool, async (client) => {
      const [created] = await insertSettlements(client, [settlement]);
      if (created) return { row: created, queued: true };
      const { rows } = await client.query(
        `UPDATE settlements
            SET status = 'queued', error = NULL, error_code = NULL, tx_hash = NULL, lease_until = NULL, payload = $2::jsonb, updated_at = now()
          WHERE id = $1 AND status = 'failed'
          RETURNING *`,
        [settlement.id, JSON.stringify(settlement.payload)],
      );
      if (rows[0]) return { row: toSettlement(rows[0]), queued: true };
      const existing = await client.query('SELECT * FROM settlements WHERE id = $1', [settlement.id]);
      if (!existing.rows[0]) throw new Error(`settlement ${settlement.id} vanished`);
      return { row: toSettlement(existing.rows[0]), queued: false };
    });
  }
}
