/**
 * History on big books: `npm run bench:history`. Seeds a database with 10 million exchanges (1,000
 * providers, 20,000 consumers, 90 days), builds the history rollups from them with the backfill of
 * migration 0006 (the statements a hub upgraded onto old books runs), then asks each history query many
 * times for random identities and prints p50, p99 and the worst latency of each, in milliseconds.
 *
 * The queries run through HistoryService and its repository on a pg pool, as the hub's endpoints call
 * them (the HTTP layer adds about a millisecond). Postgres from DATABASE_URL (a database of its own
 * on that server), else an embedded one; the bench database is dropped at the end unless --keep.
 *
 *   CHIT_HISTORY_EXCHANGES (10000000)  exchanges to seed
 *   CHIT_HISTORY_QUERIES (300)         queries of each kind
 *   --json FILE                        also write the figures as JSON
 *   --keep                             keep the database (its name is printed)
 */
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensurePostgres } from '@chit/devstack';
import { Pool } from 'pg';
import { migrate } from '../src/db/migrator';
import { HistoryRepository } from '../src/history/history.repository';
import { HistoryService } from '../src/history/history.service';

const EXCHANGES = Number(process.env.CHIT_HISTORY_EXCHANGES ?? 10_000_000);
const QUERIES = Number(process.env.CHIT_HISTORY_QUERIES ?? 300);
const PROVIDERS = 1_000;
const CONSUMERS = 20_000;
const DAYS = 90;
const CHUNK = 500_000;
const DAY = 86_400_000;

const args = process.argv.slice(2);
const jsonFile = args.includes('--json') ? args[args.indexOf('--json') + 1] : undefined;
const keep = args.includes('--keep');

const address = (prefix: string, n: number) => `0x${prefix}${n.toString(16).padStart(38, '0')}` as const;
const providerAddress = (n: number) => address('aa', n);
const consumerAddress = (n: number) => address('cc', n);

async function main() {
  const postgres = await ensurePostgres();
  const name = `chit_history_bench_${randomUUID().slice(0, 8)}`;
  const admin = new Pool({ connectionString: postgres.url, max: 1 });
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(postgres.url);
  url.pathname = `/${name}`;
  const pool = new Pool({ connectionString: url.toString(), max: 8 });
  try {
    await migrate(pool);
    await seed(pool);
    const figures = await measure(pool);
    if (jsonFile) {
      writeFileSync(
        jsonFile,
        `${JSON.stringify({ exchanges: EXCHANGES, providers: PROVIDERS, consumers: CONSUMERS, days: DAYS, queries: QUERIES, figures }, null, 2)}\n`,
      );
    }
  } finally {
    await pool.end();
    if (keep) console.log(`kept the database ${name}`);
    else await admin.query(`DROP DATABASE ${name} WITH (FORCE)`);
    await admin.end();
    await postgres.stop();
  }
}

/** Exchanges spread over 90 days, each between a provider and a consumer picked by its number; then the rollups. */
async function seed(pool: Pool) {
  const started = performance.now();
  const client = await pool.connect();
  try {
    await client.query('SET synchronous_commit = off');
    for (let from = 1; from <= EXCHANGES; from += CHUNK) {
      const to = Math.min(EXCHANGES, from + CHUNK - 1);
      await client.query(
        `INSERT INTO exchanges (hashlock, provider, consumer, agreement_id, agreement_total, consumer_total,
                                consumer_signature, increment, hub_total, encrypted_preimage, created_at)
         SELECT decode(md5(i::text) || md5((-i)::text), 'hex'),
                decode('aa' || lpad(to_hex(i % $3), 38, '0'), 'hex'),
                decode('cc' || lpad(to_hex((i * 7919) % $4), 38, '0'), 'hex'),
                decode(md5((i % $3)::text || ':' || ((i * 7919) % $4)::text) || md5('a'), 'hex'),
                i, i, '\\x00', 1 + i % 1000, i, '\\x00',
                now() - make_interval(secs => (i::double precision / $6) * $5 * 86400)
           FROM generate_series($1::bigint, $2::bigint) AS i`,
        [from, to, PROVIDERS, CONSUMERS, DAYS, EXCHANGES],
      );
      const seconds = (performance.now() - started) / 1000;
      process.stdout.write(
        `\rseeding exchanges: ${to.toLocaleString('en')} of ${EXCHANGES.toLocaleString('en')} (${seconds.toFixed(0)} s)`,
      );
    }
    process.stdout.write('\n');
    // The rollups, built by migration 0006's backfill: the statements after its marker.
    const migration = readFileSync(path.join(__dirname, '../src/db/migrations/0006_history.sql'), 'utf8');
    const backfill = migration.slice(migration.indexOf('-- The exchanges made before this migration.'));
    const rollups = performance.now();
    await client.query(backfill);
    // What autovacuum does on a production server after a bulk load (this machine's runs without it).
    await client.query('VACUUM ANALYZE');
    console.log(`rollups built in ${((performance.now() - rollups) / 1000).toFixed(0)} s`);
    const { rows } = await client.query(
      `SELECT (SELECT count(*) FROM exchanges) AS exchanges, (SELECT count(*) FROM provider_hourly) AS provider_hours,
              (SELECT count(*) FROM consumer_hourly) AS consumer_hours, (SELECT count(*) FROM pair_daily) AS pair_days`,
    );
    console.log(
      `books: ${Number(rows[0].exchanges).toLocaleString('en')} exchanges; rollup rows: ${Number(rows[0].provider_hours).toLocaleString('en')} provider-hours, ${Number(rows[0].consumer_hours).toLocaleString('en')} consumer-hours, ${Number(rows[0].pair_days).toLocaleString('en')} pair-days`,
    );
  } finally {
    client.release();
  }
}

interface Figure {
  query: string;
  p50Ms: number;
  p99Ms: number;
  maxMs: number;
}

async function measure(pool: Pool): Promise<Figure[]> {
  const history = new HistoryService(
    new HistoryRepository(pool),
    async () => 100,
    async () => ({ stake: 0n, freeFunds: 0n, liabilities: 0n }),
  );
  const now = Date.now();
  const ago = (days: number) => ({ from: new Date(now - days * DAY), to: new Date(now) });
  const provider = () => providerAddress(Math.floor(Math.random() * PROVIDERS));
  const consumer = () => consumerAddress(Math.floor(Math.random() * CONSUMERS));
  const kinds: Array<[string, () => Promise<unknown>]> = [
    ['provider earnings, 90 days by day', () => history.provider(provider(), ago(90), 'day')],
    ['provider earnings, 30 days by hour', () => history.provider(provider(), ago(30), 'hour')],
    ["provider's consumers, 30 days", () => history.providerConsumers(provider(), ago(30))],
    ["provider's settlements, 30 days", () => history.providerSettlements(provider(), ago(30))],
    ['consumer spending, 90 days by day', () => history.consumer(consumer(), ago(90), 'day')],
    ["consumer's providers, 30 days", () => history.consumerProviders(consumer(), ago(30))],
    ['hub, 90 days by day', () => history.hub(ago(90), 'day')],
    ['hub, 30 days by hour', () => history.hub(ago(30), 'hour')],
  ];
  const figures: Figure[] = [];
  console.log(`\n${QUERIES} queries of each kind, one at a time:`);
  console.log(`${'query'.padEnd(38)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)} ${'max ms'.padStart(8)}`);
  for (const [query, run] of kinds) {
    for (let i = 0; i < 10; i++) await run(); // warm-up: plans and caches
    const latencies: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const started = performance.now();
      await run();
      latencies.push(performance.now() - started);
    }
    latencies.sort((a, b) => a - b);
    const at = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))]!;
    const figure = { query, p50Ms: round(at(50)), p99Ms: round(at(99)), maxMs: round(latencies.at(-1)!) };
    figures.push(figure);
    console.log(
      `${query.padEnd(38)} ${figure.p50Ms.toFixed(1).padStart(8)} ${figure.p99Ms.toFixed(1).padStart(8)} ${figure.maxMs.toFixed(1).padStart(8)}`,
    );
  }
  // The plan of the query with the most rows to read, as the pool's prepared statement runs it.
  const { rows } = await pool.query(
    `EXPLAIN (ANALYZE, BUFFERS) SELECT consumer, sum(amount), sum(exchanges) FROM pair_daily
      WHERE provider = $1 AND day >= date_trunc('day', $2::timestamptz, 'UTC') AND day < $3
      GROUP BY consumer ORDER BY sum(amount) DESC, consumer LIMIT 100`,
    [Buffer.from(provider().slice(2), 'hex'), ago(30).from, ago(30).to],
  );
  console.log(
    `\nthe plan of a provider's consumers over 30 days:\n${rows.map((row) => `  ${row['QUERY PLAN']}`).join('\n')}`,
  );
  return figures;
}

const round = (ms: number) => Math.round(ms * 10) / 10;

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
