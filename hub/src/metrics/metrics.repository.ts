import type { Pool } from 'pg';
import type { SettlementStatus } from '../settlement/settlement.types';

/** The metrics' SQL: the gauges read from the books at scrape time (the same on every replica). */
export class MetricsRepository {
  constructor(private readonly pool: Pool) {}

  /** Settlements of all replicas by status. */
  async settlementsByStatus(): Promise<Map<SettlementStatus, number>> {
    const { rows } = await this.pool.query('SELECT status, count(*)::int AS n FROM settlements GROUP BY status');
    return new Map(rows.map((row) => [row.status as SettlementStatus, row.n as number]));
  }

  /** What the hub owes providers and they have not settled: sum of promised - settled, in token units. */
  async unsettledLiabilities(): Promise<bigint> {
    const { rows } = await this.pool.query(
      'SELECT coalesce(sum(greatest(promised - settled, 0)), 0)::text AS owed FROM providers',
    );
    return BigInt(rows[0].owed);
  }
}
