import { Logger } from '@nestjs/common';
import type { Pool } from 'pg';
import { Periodic } from '../jobs/periodic';

/** How often the hub looks for tables whose statistics are stale. */
export const STATISTICS_CHECK_MS = 10_000;

/**
 * The tables whose statistics are stale, most changed first: more than 50 rows and 10 % of the table
 * changed since its last analyze (autovacuum's default rule), or rows and never analyzed.
 */
export const STALE_TABLES_SQL = `SELECT format('%I.%I', s.schemaname, s.relname) AS name
    FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid
   WHERE s.n_mod_since_analyze > 50 + 0.1 * greatest(c.reltuples, 0)
      OR (s.last_analyze IS NULL AND s.last_autoanalyze IS NULL AND s.n_live_tup > 0)
   ORDER BY s.n_mod_since_analyze DESC`;

/** Arbitrary key of the advisory lock that lets one replica at a time analyze. */
const STATISTICS_LOCK = 7_461_726_574;

/**
 * Keeps the planner's statistics of the hub's tables fresh, as autovacuum's analyze would, whether or
 * not the server runs autovacuum (many production servers run it off, or lagging).
 *
 * Why the hub cares: each pooled connection caches a generic plan for a named statement after five
 * runs. One cached while `exchanges` was tiny is a sequential scan, and it stays one as the table grows
 * to millions of rows, until something invalidates it. ANALYZE does: it refreshes the table's
 * statistics and every cached plan that reads the table is planned again, now with an index.
 *
 * A table is analyzed when its rows changed since its last analyze by more than autovacuum's default
 * threshold, 50 rows plus 10 % of the table, or when it holds rows and was never analyzed (the first
 * check after migrations). Each check is one read of `pg_stat_user_tables`; replicas take turns through
 * an advisory lock, and one that finds it taken skips its turn.
 */
export class PlannerStatistics extends Periodic {
  constructor(
    private readonly pool: Pool,
    intervalMs = STATISTICS_CHECK_MS,
  ) {
    super(intervalMs, new Logger('PlannerStatistics'), "could not refresh the planner's statistics");
  }

  protected work(): Promise<string[]> {
    return this.refresh();
  }

  /**
   * Analyzes the tables whose statistics are stale and returns their names; none when another replica
   * is analyzing.
   */
  async refresh(): Promise<string[]> {
    const client = await this.pool.connect();
    // A connection that failed here may still hold the lock: it is closed, not pooled, which frees it.
    let failed: Error | undefined;
    try {
      const { rows: locked } = await client.query<{ locked: boolean }>('SELECT pg_try_advisory_lock($1) AS locked', [
        STATISTICS_LOCK,
      ]);
      if (!locked[0]?.locked) return [];
      const { rows } = await client.query<{ name: string }>(STALE_TABLES_SQL);
      for (const { name } of rows) await client.query(`ANALYZE ${name}`);
      await client.query('SELECT pg_advisory_unlock($1)', [STATISTICS_LOCK]);
      return rows.map((row) => row.name);
    } catch (error) {
      failed = error as Error;
      throw error;
    } finally {
      client.release(failed);
    }
  }
}
