import assert from 'node:assert/strict';
import type { PoolClient } from 'pg';
import { PlannerStatistics } from '../src/db/planner-statistics';
import { createTestDatabase } from './support/postgres';

/** The exchange batch's look-up of earlier exchanges by hashlock (ExchangeRepository), as a prepared statement. */
const LOOKUP = `SELECT hashlock, provider, consumer, agreement_id, agreement_total, consumer_total, consumer_signature,
              increment, hub_total, encrypted_preimage, preimage
         FROM exchanges WHERE hashlock = ANY($1::bytea[])`;

/** `count` exchanges with distinct hashlocks, as fast as SQL writes them. */
async function addExchanges(client: PoolClient, from: number, count: number): Promise<void> {
  await client.query(
    `INSERT INTO exchanges (hashlock, provider, consumer, agreement_id, agreement_total, consumer_total,
                            consumer_signature, increment, hub_total, encrypted_preimage)
     SELECT decode(md5(i::text) || md5((-i)::text), 'hex'), decode(lpad(to_hex(i % 97), 40, '0'), 'hex'),
            decode(lpad(to_hex(i % 89), 40, '0'), 'hex'), decode(md5(i::text) || md5('a'), 'hex'),
            i, i, '\\x00', 1, i, '\\x00'
       FROM generate_series($1::bigint, $2::bigint) AS i`,
    [from, from + count - 1],
  );
  // A backend sends its row counts to the statistics at most once a second when idle: now, so that
  // the next check sees them.
  await client.query('SELECT pg_stat_force_next_flush()');
}

/** The plan the connection would run the prepared look-up with now, as text. */
async function planOf(client: PoolClient): Promise<string> {
  const { rows } = await client.query(`EXPLAIN EXECUTE exchange_lookup(ARRAY[decode(md5('1') || md5('-1'), 'hex')])`);
  return rows.map((row) => row['QUERY PLAN']).join('\n');
}

describe('planner statistics: plans cached on small tables do not stay scans as the tables grow', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  before(async function () {
    this.timeout(60_000);
    db = await createTestDatabase();
    // The hub's checks alone analyze here: an autovacuum worker (the embedded server runs them) would
    // analyze at moments of its own.
    await db.pool.query('ALTER TABLE exchanges SET (autovacuum_enabled = false)');
  });
  after(() => db?.drop());

  it('a connection that cached a scan of the tiny table plans it again with the index once the hub analyzes', async function () {
    this.timeout(120_000);
    const statistics = new PlannerStatistics(db.pool);
    const client = await db.pool.connect();
    try {
      await addExchanges(client, 1, 20);
      // The first check after migrations: tables with rows that were never analyzed.
      assert.ok((await statistics.refresh()).includes('public.exchanges'));
      await client.query(`PREPARE exchange_lookup(bytea[]) AS ${LOOKUP}`);
      // Five runs, then the connection keeps a generic plan: on 20 rows, a scan.
      for (let run = 0; run < 6; run++) {
        await client.query(`EXECUTE exchange_lookup(ARRAY[decode(md5('${run}') || md5('-${run}'), 'hex')])`);
      }
      assert.match(await planOf(client), /Seq Scan on exchanges/);

      await addExchanges(client, 21, 100_000);
      // Nothing has told the connection: it would scan 100,020 rows for each batch of exchanges.
      assert.match(await planOf(client), /Seq Scan on exchanges/);

      assert.deepEqual(await statistics.refresh(), ['public.exchanges']);
      const plan = await planOf(client);
      assert.doesNotMatch(plan, /Seq Scan/);
      assert.match(plan, /Index Scan|Bitmap Index Scan/);
      // Nothing changed since: the next check analyzes nothing.
      assert.deepEqual(await statistics.refresh(), []);
    } finally {
      client.release();
    }
  });

  it('analyzes a table again only past 50 rows and 10 % of it changed, and one replica at a time', async function () {
    this.timeout(60_000);
    const statistics = new PlannerStatistics(db.pool);
    await statistics.refresh();
    const client = await db.pool.connect();
    try {
      // About 100,020 rows: 10,052 changes make it stale, 5,000 do not, 13,000 do.
      await addExchanges(client, 200_001, 5_000);
      assert.deepEqual(await statistics.refresh(), []);
      await addExchanges(client, 300_001, 8_000);

      // Another replica analyzing (holding the lock): this one skips its turn.
      const other = await db.pool.connect();
      try {
        await other.query('SELECT pg_advisory_lock(7461726574)');
        assert.deepEqual(await statistics.refresh(), []);
        await other.query('SELECT pg_advisory_unlock(7461726574)');
      } finally {
        other.release();
      }
      assert.deepEqual(await statistics.refresh(), ['public.exchanges']);
    } finally {
      client.release();
    }
  });

  it('runs from start to stop on its own timer', async function () {
    this.timeout(60_000);
    const client = await db.pool.connect();
    try {
      await addExchanges(client, 400_001, 20_000);
    } finally {
      client.release();
    }
    const analyzed = async () =>
      Number(
        (await db.pool.query(`SELECT analyze_count FROM pg_stat_user_tables WHERE relname = 'exchanges'`)).rows[0]
          .analyze_count,
      );
    const before = await analyzed();
    const statistics = new PlannerStatistics(db.pool, 50);
    statistics.start();
    try {
      // pg_stat_user_tables counts the analyze at once in this backend, within about a second in others.
      const deadline = Date.now() + 20_000;
      while ((await analyzed()) === before && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.ok((await analyzed()) > before, 'the timer analyzed the grown table');
    } finally {
      await statistics.stop();
    }
  });
});
