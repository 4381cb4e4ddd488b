/**
 * Exchange throughput of one hub process: `npm run bench:hub` (one concurrency level), and the
 * exchange part of `npm run bench` (several levels on one stack, see scripts/bench.ts).
 *
 * Starts anvil with the contracts, a hub process (hub/dist: build it first) on Postgres (DATABASE_URL,
 * else 127.0.0.1:5432, else an embedded one; fsync as the server has it) and Redis (REDIS_URL, else
 * localhost:6379, else a redis-server started here). For each level it seeds fresh consumer channels
 * in the books (as the chain follower would after deposits), pre-signs every consumer promise, then
 * drives POST /v1/exchange from this process (the load generator shares the machine) and reports
 * exchanges/s and latency percentiles, with exchanges/s in the first and the last quarter of each level
 * (the books grow as it runs). A warm-up, not counted, runs first. The last two lines printed are
 * the headline: `exchanges/s: N` and `p99 ms: N` of the (last) level. At the end it stops
 * the hub and anvil, drops its database and deletes its Redis keys (its own QUEUE_PREFIX).
 *
 *   CHIT_BENCH_WORKERS (16)    provider/consumer pairs exchanging in parallel, each in sequence
 *   CHIT_BENCH_EXCHANGES (500) exchanges per pair
 *   CHIT_BENCH_BATCH (16)      exchanges per request: above 1, each provider sends its exchanges N at
 *                              a time through POST /v1/exchanges (also --batch N); latencies are then
 *                              per request, exchanges/s counts items; 1 sends POST /v1/exchange
 *   CHIT_BENCH_SIGN (latest)   batched: the hub signs the latest hub promise of each request (latest),
 *                              or each item's (each)
 *   CHIT_BENCH_WARMUP (20000)  exchanges run first and not counted, in the first level's mode
 *   CHIT_BENCH_BOOKS (1000000) exchanges already in the books before the first level (also --books N):
 *                              seeded with SQL once the hub has migrated, then left to the hub's own
 *                              statistics upkeep (the bench waits until it has analyzed them)
 *   CHIT_BENCH_HUB_NODE_FLAGS  flags for the hub's node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 *   --levels 1x4000,8x500      several levels instead (workers x exchanges per worker), one stack
 *   --json FILE                also write the environment and figures as JSON
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { ensurePostgres, ensureRedis, freePort, type RunningService } from '@chit/devstack';
import { consumerPromiseDigestBytes, encodeMessage, hashlockOf, maxExchangesPerRequest } from '@chit/sdk';
import { enableNativeHashing, nativePreimageSealer } from '@chit/sdk/node';
import Redis from 'ioredis';
import { Pool } from 'pg';
import { Agent, request } from 'undici';
import { bytesToHex, type Hex } from 'viem';
import { startLocalChain } from '../../scripts/local-chain';
import { OperatorSigner } from '../src/crypto/operator-signer';
import { toBytea } from '../src/db/bytes';
import { STALE_TABLES_SQL } from '../src/db/planner-statistics';
import { BackendCpu, cpuMs, mainThreadCpuMs } from './cpu';

/** One concurrency level: `workers` provider/consumer pairs, each sending `exchangesPerWorker` in sequence. */
export interface LevelOptions {
  workers: number;
  exchangesPerWorker: number;
  /**
   * Exchanges per request (default 1: POST /v1/exchange). Above 1, each provider sends its exchanges
   * `batch` at a time through POST /v1/exchanges, to one consumer per slot of the batch (so a batch
   * carries `batch` different agreements, and each item's previous R is the item before it).
   */
  batch?: number;
  /**
   * Which hub promises a batch answer signs: the `latest` of each provider (the default, as the SDK's
   * ProviderLedger asks), or `each` item's.
   */
  sign?: 'each' | 'latest';
}

export interface LevelFigures extends LevelOptions {
  exchanges: number;
  /** HTTP requests sent: `exchanges` unless batched. */
  requests: number;
  seconds: number;
  exchangesPerSecond: number;
  /** Exchanges/s while the first and the last quarter of the level's exchanges were answered. */
  firstQuarterPerSecond: number;
  lastQuarterPerSecond: number;
  /** Latency percentiles per request (per batch when batched). */
  p50Ms: number;
  p99Ms: number;
  /** Exchanges not answered with a hub promise: responses other than 200, and refused batch items. */
  errors: number;
  /**
   * Exchanges per committed transaction of the bench database (group commit's batch size; the
   * commits of the follower and settlement pipeline are counted too, so it is a lower bound).
   */
  exchangesPerTransaction: number;
  /**
   * CPU time per exchange, in microseconds, of the hub process, of the Postgres backends serving the
   * bench database and of this load generator (Linux /proc; absent elsewhere). Unlike exchanges/s,
   * these barely move with what else the machine runs: they say where the CPU goes.
   */
  cpuUs?: { hub: number; postgres: number; loadGenerator: number; hubMainThread?: number; redis?: number };
}

/** What the figures were measured on. */
export interface BenchEnvironment {
  postgres: { source: string; version: string; fsync: string; synchronousCommit: string };
  /** Exchanges in the books before the first level, and the seconds the hub took to analyze them. */
  books: { exchanges: number; analyzedAfterSeconds?: number };
  redis: { source: string; version: string };
  /** The hub's settings that differ from its defaults. */
  hubSettings: Record<string, string>;
}

export interface BenchStackOptions {
  /** Progress lines. */
  log?: (line: string) => void;
  /** Flags for the hub's node process. */
  hubNodeFlags?: string[];
  /** Exchanges seeded into the books before the first level (default none). */
  books?: number;
}
// The stack handles SIGINT and SIGTERM until it is stopped: it cleans up, then exits the process (130).

export interface BenchStack {
  environment: BenchEnvironment;
  /** Runs one level with fresh consumers and providers. */
  runLevel(level: LevelOptions): Promise<LevelFigures>;
  /** Stops the hub and anvil, drops the database, deletes the Redis keys. Safe to call twice. */
  stop(): Promise<void>;
}

export interface ExchangeBenchOptions extends BenchStackOptions {
  levels: LevelOptions[];
  /** Exchanges run before the first level and not counted (default {@link DEFAULT_WARMUP}, in the first level's mode); false for none. */
  warmup?: LevelOptions | false;
  /** Called after each level. */
  onLevel?: (figures: LevelFigures, environment: BenchEnvironment) => void;
}

/**
 * Exchanges run before the first level, in its mode (single or batched), not counted: long enough
 * that V8 has compiled the hot paths of the hub and of this load generator (CHIT_BENCH_WARMUP
 * exchanges, 16 providers at once; 20,000 by default). After 2,000 a level's first quarter still ran
 * at 60 % of its last: the hub was still being compiled.
 */
export const DEFAULT_WARMUP: LevelOptions = {
  workers: 16,
  exchangesPerWorker: Math.ceil(Number(process.env.CHIT_BENCH_WARMUP ?? 20_000) / 16),
};
const DEFAULT_ADMIN_URL = 'postgres://postgres@127.0.0.1:5432/postgres';
// The load generator is one client address: a rate limit it never reaches, so each request still pays
// for its count in Redis as in production.
const HUB_SETTINGS = { DB_POOL_SIZE: '16', LOG_LEVEL: 'warn', RATE_LIMIT_MAX: '1000000000' };

/** Postgres for the bench: DATABASE_URL, else 127.0.0.1:5432, else an embedded server. */
async function benchPostgres(log: (line: string) => void): Promise<RunningService> {
  if (process.env.DATABASE_URL) return ensurePostgres(log);
  const probe = new Pool({ connectionString: DEFAULT_ADMIN_URL, max: 1, connectionTimeoutMillis: 2_000 });
  try {
    await probe.query('SELECT 1');
    return { url: DEFAULT_ADMIN_URL, source: '127.0.0.1:5432', stop: async () => {} };
  } catch {
    return ensurePostgres(log);
  } finally {
    await probe.end().catch(() => {});
  }
}

/** Deletes every key under `prefix` (SCAN + UNLINK: the Redis may be shared, never a flush). */
async function deleteRedisKeys(url: string, prefix: string): Promise<number> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  client.on('error', () => {});
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1_000);
      cursor = next;
      if (keys.length > 0) deleted += await client.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    client.disconnect();
  }
  return deleted;
}

/**
 * The CPU time the Redis server has used (user + system, from INFO cpu), in milliseconds: the hub's
 * rate limits and queues use it. The whole server's, so a Redis that others use counts them too.
 */
async function redisCpuMs(url: string): Promise<number | undefined> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  try {
    const info = await client.info('cpu');
    const seconds = (name: string) => Number(new RegExp(`${name}:([0-9.]+)`).exec(info)?.[1]);
    const used = seconds('used_cpu_user') + seconds('used_cpu_sys');
    return Number.isFinite(used) ? used * 1000 : undefined;
  } catch {
    return undefined;
  } finally {
    client.disconnect();
  }
}

async function redisVersion(url: string): Promise<string> {
  const client = new Redis(url, { maxRetriesPerRequest: 1, connectTimeout: 2_000 });
  client.on('error', () => {});
  try {
    return /redis_version:(\S+)/.exec(await client.info('server'))?.[1] ?? 'unknown';
  } finally {
    client.disconnect();
  }
}

/** Starts anvil with the contracts, Postgres, Redis and one hub process (from hub/dist). */
export async function startBenchStack(options: BenchStackOptions = {}): Promise<BenchStack> {
  const log = options.log ?? (() => {});
  enableNativeHashing();
  // Clean-ups run last-in first-out; one registered once stopping has begun runs at once (a signal
  // may arrive while the stack is still starting).
  const cleanups: Array<() => Promise<unknown>> = [];
  let stopping = false;
  let stopped: Promise<void> | undefined;
  const track = (cleanup: () => Promise<unknown>) => {
    if (stopping) void cleanup().catch(() => {});
    else cleanups.push(cleanup);
  };
  const stop = () => {
    stopping = true;
    stopped ??= (async () => {
      for (let cleanup = cleanups.pop(); cleanup; cleanup = cleanups.pop())
        await cleanup().catch((error) => log(`clean-up: ${error}`));
    })();
    return stopped;
  };
  // Ctrl-C or SIGTERM: clean up, then exit (the terminal may send SIGINT to the children as well).
  // During start-up, the start stops at its next step and cleans up what it has made.
  let signalled = false;
  let settled: () => void = () => {};
  const ready = new Promise<void>((resolve) => {
    settled = resolve;
  });
  const onSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    log(`${signal}: cleaning up`);
    void ready.then(stop).finally(() => process.exit(130));
  };
  const abortIfSignalled = () => {
    if (signalled) throw new Error('interrupted');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  track(async () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  });
  try {
    const chain = await startLocalChain(await freePort(), 'http://127.0.0.1');
    track(async () => {
      chain.anvil.process.kill();
    });
    abortIfSignalled();
    log(`anvil on ${chain.anvil.url}, hub contract ${chain.deployment.hub.address}`);

    const postgres = await benchPostgres(log);
    track(() => postgres.stop());
    abortIfSignalled();
    const dbName = `chit_bench_${randomBytes(4).toString('hex')}`;
    const admin = new Pool({ connectionString: postgres.url, max: 1 });
    track(() => admin.end());
    await admin.query(`CREATE DATABASE ${dbName}`);
    track(() => admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`));
    abortIfSignalled();
    const dbUrl = new URL(postgres.url);
    dbUrl.pathname = `/${dbName}`;
    const settings = (
      await admin.query<{ version: string; fsync: string; synchronous_commit: string }>(
        "SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync, current_setting('synchronous_commit') AS synchronous_commit",
      )
    ).rows[0]!;
    log(`Postgres ${settings.version} (${postgres.source}, fsync=${settings.fsync}), database ${dbName}`);

    const redis = await ensureRedis(log);
    track(() => redis.stop());
    abortIfSignalled();
    const prefix = `chit-bench-${randomUUID()}`;
    track(async () => log(`deleted ${await deleteRedisKeys(redis.url, prefix)} Redis keys under ${prefix}`));
    const environment: BenchEnvironment = {
      postgres: {
        source: postgres.source,
        version: settings.version,
        fsync: settings.fsync,
        synchronousCommit: settings.synchronous_commit,
      },
      redis: { source: redis.source, version: await redisVersion(redis.url) },
      hubSettings: HUB_SETTINGS,
      books: { exchanges: 0 },
    };

    const port = await freePort();
    const hub: ChildProcess = spawn(
      process.execPath,
      [...(options.hubNodeFlags ?? []), path.join(__dirname, '..', 'dist', 'main.js'), 'start'],
      {
        stdio: ['ignore', 'inherit', 'inherit'],
        env: {
          ...process.env,
          ...HUB_SETTINGS,
          DATABASE_URL: dbUrl.toString(),
          REDIS_URL: redis.url,
          RPC_URL: chain.anvil.url,
          HUB_ADDRESS: chain.deployment.hub.address,
          OPERATOR_KEY: chain.accounts[0]!.privateKey,
          PORT: String(port),
          QUEUE_PREFIX: prefix,
        },
      },
    );
    const exited = new Promise<void>((resolve) => hub.once('exit', () => resolve()));
    track(async () => {
      if (hub.exitCode === null && hub.signalCode === null) {
        hub.kill('SIGTERM');
        const timer = setTimeout(() => hub.kill('SIGKILL'), 5_000);
        await exited;
        clearTimeout(timer);
      }
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      abortIfSignalled();
      if (hub.exitCode !== null) throw new Error(`the hub exited (${hub.exitCode}) at start`);
      try {
        if ((await fetch(`${base}/ready`)).ok) break;
      } catch {}
      if (i > 300) throw new Error('the hub did not start');
      await new Promise((r) => setTimeout(r, 100));
    }
    const pool = new Pool({ connectionString: dbUrl.toString(), max: 2 });
    track(() => pool.end());
    if (options.books) environment.books = await seedBooks(pool, options.books, log, abortIfSignalled);
    const scope = { hub: chain.deployment.hub.address as Hex, chainId: chain.deployment.chainId };

    const runLevel = async ({
      workers,
      exchangesPerWorker,
      batch = 1,
      sign = 'latest',
    }: LevelOptions): Promise<LevelFigures> => {
      // Seed: one fresh consumer per worker and batch slot with a large channel, as the follower
      // records deposits.
      const pairs = Array.from({ length: workers }, () => ({
        consumers: Array.from({ length: batch }, () => new OperatorSigner(bytesToHex(randomBytes(32)))),
        provider: bytesToHex(randomBytes(20)) as Hex,
      }));
      await pool.query('INSERT INTO consumers (address, balance) SELECT unnest($1::bytea[]), 10^30', [
        pairs.flatMap((p) => p.consumers.map((consumer) => toBytea(consumer.address.toLowerCase()))),
      ]);
      // Pre-sign every promise and seal its R to the hub (native code), as a provider would: the hub opens
      // every box before it signs.
      const seal = nativePreimageSealer(new OperatorSigner(chain.accounts[0]!.privateKey as Hex).publicKey);
      const signing = performance.now();
      const items = pairs.map(({ consumers, provider }) => {
        const agreementIds = consumers.map(() => bytesToHex(randomBytes(32)));
        let previous: Hex | undefined;
        return Array.from({ length: exchangesPerWorker }, (_, k) => {
          const slot = k % batch;
          const consumer = consumers[slot]!;
          const agreementId = agreementIds[slot]!;
          const preimage = bytesToHex(randomBytes(32));
          const total = BigInt(Math.floor(k / batch) + 1) * 10n ** 15n;
          const promise = {
            ...scope,
            consumer: consumer.address,
            total,
            hashlock: hashlockOf(preimage),
            agreement: { provider, id: agreementId, total },
          };
          const signed = { ...promise, signature: consumer.signDigest(consumerPromiseDigestBytes(promise)) };
          const item = {
            promise: encodeMessage(signed),
            encryptedPreimage: seal(preimage),
            ...(previous && { previousPreimage: previous }),
          };
          previous = preimage;
          return item;
        });
      });
      const path = batch > 1 ? '/v1/exchanges' : '/v1/exchange';
      const bodies = items.map((sequence) => {
        if (batch === 1) return sequence.map((item) => ({ body: JSON.stringify(item), count: 1 }));
        const chunks: { body: string; count: number }[] = [];
        for (let i = 0; i < sequence.length; i += batch) {
          const exchanges = sequence.slice(i, i + batch);
          chunks.push({ body: JSON.stringify({ exchanges, sign }), count: exchanges.length });
        }
        return chunks;
      });
      const exchanges = workers * exchangesPerWorker;
      log(`signed and sealed ${exchanges} promises in ${((performance.now() - signing) / 1000).toFixed(1)} s`);

      const agent = new Agent({ connections: workers, pipelining: 1 });
      const latencies: number[] = [];
      /** When each request was answered, and how many exchanges it carried, in order. */
      const answers: { at: number; count: number }[] = [];
      let errors = 0;
      let answered = 0;
      const commits = async () =>
        Number(
          (await pool.query('SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()')).rows[0]
            .xact_commit,
        );
      const commitsBefore = await commits();
      const backends = new BackendCpu(pool);
      await backends.sample();
      const cpuBefore = {
        hub: cpuMs(hub.pid),
        hubMain: mainThreadCpuMs(hub.pid),
        redis: await redisCpuMs(redis.url),
        self: process.cpuUsage(),
      };
      const stopSampling = backends.sampleEvery(250);
      const t0 = performance.now();
      try {
        await Promise.all(
          bodies.map(async (sequence) => {
            for (const { body, count } of sequence) {
              const t = performance.now();
              const response = await request(`${base}${path}`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body,
                dispatcher: agent,
              });
              const text = await response.body.text();
              if (response.statusCode !== 200) errors += count;
              else if (batch > 1) errors += countRefused(text);
              answered += count;
              const at = performance.now();
              latencies.push(at - t);
              answers.push({ at, count });
            }
          }),
        );
      } finally {
        await agent.close();
      }
      const seconds = (performance.now() - t0) / 1000;
      stopSampling();
      await backends.sample();
      // Statistics reach pg_stat_database within about a second of each commit.
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const transactions = (await commits()) - commitsBefore;
      const hubMs = cpuMs(hub.pid);
      const hubMainMs = mainThreadCpuMs(hub.pid);
      const self = process.cpuUsage(cpuBefore.self);
      const redisMs = await redisCpuMs(redis.url);
      const perExchange = (ms: number) => Math.round((ms * 1000) / answered);
      const cpuUs =
        hubMs !== undefined && cpuBefore.hub !== undefined && backends.available
          ? {
              hub: perExchange(hubMs - cpuBefore.hub),
              postgres: perExchange(backends.usedMs),
              loadGenerator: Math.round((self.user + self.system) / answered),
              ...(redisMs !== undefined &&
                cpuBefore.redis !== undefined && { redis: perExchange(redisMs - cpuBefore.redis) }),
              ...(hubMainMs !== undefined &&
                cpuBefore.hubMain !== undefined && { hubMainThread: perExchange(hubMainMs - cpuBefore.hubMain) }),
            }
          : undefined;
      latencies.sort((a, b) => a - b);
      const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))]!;
      return {
        workers,
        exchangesPerWorker,
        ...(batch > 1 && { batch, sign }),
        exchanges: answered,
        requests: latencies.length,
        seconds,
        exchangesPerSecond: answered / seconds,
        ...quarterRates(t0, answers),
        p50Ms: pct(50),
        p99Ms: pct(99),
        errors,
        exchangesPerTransaction: answered / Math.max(1, transactions),
        ...(cpuUs && { cpuUs }),
      };
    };
    settled();
    return { environment, runLevel, stop };
  } catch (error) {
    await stop();
    settled();
    throw error;
  }
}

/**
 * Seeds `count` exchanges (1,000 providers, 20,000 consumers, an agreement per pair, with their
 * consumer and provider rows) into the hub's migrated books with SQL, then waits until the hub's
 * statistics upkeep has analyzed them (the machine's Postgres may run without autovacuum): plans
 * cached on the empty tables must not survive that.
 */
async function seedBooks(
  pool: Pool,
  count: number,
  log: (line: string) => void,
  abortIfSignalled: () => void,
): Promise<BenchEnvironment['books']> {
  const CHUNK = 250_000;
  const started = performance.now();
  const client = await pool.connect();
  try {
    await client.query('SET synchronous_commit = off');
    for (let from = 1; from <= count; from += CHUNK) {
      abortIfSignalled();
      const to = Math.min(count, from + CHUNK - 1);
      await client.query(
        `INSERT INTO exchanges (hashlock, provider, consumer, agreement_id, agreement_total, consumer_total,
                                consumer_signature, increment, hub_total, encrypted_preimage, preimage)
         SELECT decode(md5(i::text) || md5((-i)::text), 'hex'),
                decode('aa' || lpad(to_hex(i % 1000), 38, '0'), 'hex'),
                decode('cc' || lpad(to_hex((i * 7919) % 20000), 38, '0'), 'hex'),
                decode(md5((i % 1000)::text || ':' || ((i * 7919) % 20000)::text) || md5('a'), 'hex'),
                i, i, decode(repeat('ab', 65), 'hex'), 1000, i, decode(repeat('cd', 129), 'hex'),
                decode(md5((-i)::text) || md5(i::text), 'hex')
           FROM generate_series($1::bigint, $2::bigint) AS i`,
        [from, to],
      );
      log(`seeding the books: ${to.toLocaleString('en')} of ${count.toLocaleString('en')} exchanges`);
    }
    await client.query(
      `INSERT INTO agreements (provider, agreement_id, consumer, credited_total)
       SELECT provider, agreement_id, (array_agg(consumer))[1], max(consumer_total) FROM exchanges GROUP BY provider, agreement_id
       ON CONFLICT DO NOTHING`,
    );
    await client.query(
      `INSERT INTO consumers (address, balance, signed_total, credited)
       SELECT consumer, 10^30, max(consumer_total), max(consumer_total) FROM exchanges GROUP BY consumer
       ON CONFLICT DO NOTHING`,
    );
    await client.query(
      `INSERT INTO providers (address, promised) SELECT provider, max(hub_total) FROM exchanges GROUP BY provider
       ON CONFLICT DO NOTHING`,
    );
    // A backend reports its row counts when idle, at most once a second: now, for the hub to see.
    await client.query('SELECT pg_stat_force_next_flush()');
  } finally {
    client.release();
  }
  log(`seeded ${count.toLocaleString('en')} exchanges in ${((performance.now() - started) / 1000).toFixed(0)} s`);
  const waiting = performance.now();
  for (;;) {
    abortIfSignalled();
    // Nothing left for the hub to analyze (a table never analyzed that holds rows is stale): no analyze
    // of the seed runs during a level. An analyze that ran while the last chunks went in may have seen
    // nine tenths of the rows or more; by the hub's rule (autovacuum's) the table is then up to date,
    // and it is analyzed again only once a tenth of it has changed.
    if ((await pool.query(STALE_TABLES_SQL)).rows.length === 0) break;
    if (performance.now() - waiting > 120_000) throw new Error('the hub did not analyze the seeded books in 120 s');
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  const analyzedAfterSeconds = (performance.now() - waiting) / 1000;
  log(`the hub had analyzed the seeded books ${analyzedAfterSeconds.toFixed(1)} s after the seed (nothing left stale)`);
  // The seed wrote about 1 GB of WAL in seconds: the checkpoint it calls for would otherwise run through
  // the levels (tens of seconds of page writes, and a full-page image in the WAL for each page an
  // exchange touches first), which a hub that has grown its books over months does not pay at once.
  try {
    const checkpointing = performance.now();
    await pool.query('CHECKPOINT');
    log(`checkpointed the seed in ${((performance.now() - checkpointing) / 1000).toFixed(1)} s`);
  } catch (error) {
    log(`could not checkpoint the seed (${(error as Error).message}): the first level may pay for it`);
  }
  return { exchanges: count, analyzedAfterSeconds };
}

/** One stack, a warm-up, then every level in sequence, each with fresh consumers; always cleans up. */
export async function runExchangeBench(
  options: ExchangeBenchOptions,
): Promise<{ environment: BenchEnvironment; warmup: LevelOptions | false; levels: LevelFigures[] }> {
  const log = options.log ?? (() => {});
  const stack = await startBenchStack(options);
  try {
    const first = options.levels[0];
    const warmup =
      options.warmup ?? (first?.batch && first.batch > 1 ? { ...DEFAULT_WARMUP, batch: first.batch } : DEFAULT_WARMUP);
    if (warmup) {
      const figures = await stack.runLevel(warmup);
      log(`warm-up: ${figures.exchanges} exchanges, not counted`);
    }
    const levels: LevelFigures[] = [];
    for (const level of options.levels) {
      log(`level: ${level.workers} concurrent providers x ${level.exchangesPerWorker} exchanges`);
      const figures = await stack.runLevel(level);
      levels.push(figures);
      options.onLevel?.(figures, stack.environment);
    }
    return { environment: stack.environment, warmup, levels };
  } finally {
    await stack.stop();
  }
}

/**
 * Exchanges/s while the first quarter of the exchanges were answered (from the start) and while the
 * last quarter were (to the last answer).
 */
function quarterRates(
  t0: number,
  answers: { at: number; count: number }[],
): { firstQuarterPerSecond: number; lastQuarterPerSecond: number } {
  const total = answers.reduce((sum, answer) => sum + answer.count, 0);
  let done = 0;
  let firstEnd = t0;
  let lastStart = t0;
  let lastStartDone = 0;
  for (const answer of answers) {
    const before = done;
    done += answer.count;
    if (before < total / 4) firstEnd = answer.at;
    if (done <= (total * 3) / 4) {
      lastStart = answer.at;
      lastStartDone = done;
    }
  }
  const firstDone = answers.reduce((sum, answer) => (answer.at <= firstEnd ? sum + answer.count : sum), 0);
  const end = answers.at(-1)?.at ?? t0;
  const rate = (count: number, from: number, to: number) => (to > from ? (count * 1000) / (to - from) : 0);
  return {
    firstQuarterPerSecond: rate(firstDone, t0, firstEnd),
    lastQuarterPerSecond: rate(total - lastStartDone, lastStart, end),
  };
}

/** Items of a POST /v1/exchanges answer that are errors rather than hub promises. */
function countRefused(text: string): number {
  const { results } = JSON.parse(text) as { results: { error?: unknown }[] };
  return results.filter((result) => result.error !== undefined).length;
}

/** The lines `npm run bench:hub` has always printed for a level. */
export function levelLines(figures: LevelFigures, environment: BenchEnvironment): string[] {
  const batched = figures.batch !== undefined && figures.batch > 1;
  const per = batched ? ' (per request)' : '';
  return [
    `hub: 1 process, Postgres fsync=${environment.postgres.fsync}, ${figures.workers} concurrent providers, ${figures.exchanges} exchanges${
      batched
        ? ` in ${figures.requests} requests of up to ${figures.batch} (POST /v1/exchanges, sign ${figures.sign ?? 'each'})`
        : ''
    }`,
    `exchanges/s: ${Math.round(figures.exchangesPerSecond)} (first quarter ${Math.round(figures.firstQuarterPerSecond)}, last quarter ${Math.round(figures.lastQuarterPerSecond)})`,
    `p50 ms${per}: ${figures.p50Ms.toFixed(1)}`,
    `p99 ms${per}: ${figures.p99Ms.toFixed(1)}`,
    `errors: ${figures.errors}`,
    `exchanges per transaction: ${figures.exchangesPerTransaction.toFixed(1)}`,
    ...(figures.cpuUs
      ? [
          `cpu µs/exchange: hub ${figures.cpuUs.hub}${figures.cpuUs.hubMainThread !== undefined ? ` (main thread ${figures.cpuUs.hubMainThread})` : ''}, postgres ${figures.cpuUs.postgres}${figures.cpuUs.redis !== undefined ? `, redis ${figures.cpuUs.redis}` : ''}, load generator ${figures.cpuUs.loadGenerator}`,
        ]
      : []),
  ];
}

/** `1x4000,8x500` -> levels. */
function parseLevels(text: string): LevelOptions[] {
  return text.split(',').map((item) => {
    const match = /^(\d+)x(\d+)$/.exec(item.trim());
    if (!match || Number(match[1]) < 1 || Number(match[2]) < 1)
      throw new Error(`--levels: expected WORKERSxEXCHANGES, e.g. 8x500, got "${item}"`);
    return { workers: Number(match[1]), exchangesPerWorker: Number(match[2]) };
  });
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const flag = (name: string) => {
    const i = args.indexOf(name);
    return i >= 0 ? args[i + 1] : undefined;
  };
  const levelsArg = flag('--levels');
  const batch = Number(flag('--batch') ?? process.env.CHIT_BENCH_BATCH ?? 16);
  if (!Number.isInteger(batch) || batch < 1 || batch > maxExchangesPerRequest) {
    throw new Error(`--batch / CHIT_BENCH_BATCH: expected 1 to ${maxExchangesPerRequest}, got ${batch}`);
  }
  const sign = process.env.CHIT_BENCH_SIGN ?? 'latest';
  if (sign !== 'each' && sign !== 'latest') throw new Error(`CHIT_BENCH_SIGN: expected each or latest, got ${sign}`);
  const levels = (
    levelsArg
      ? parseLevels(levelsArg)
      : [
          {
            workers: Number(process.env.CHIT_BENCH_WORKERS ?? 16),
            exchangesPerWorker: Number(process.env.CHIT_BENCH_EXCHANGES ?? 500),
          },
        ]
  ).map((level) => (batch > 1 ? { ...level, batch, sign } : level));
  const books = Number(flag('--books') ?? process.env.CHIT_BENCH_BOOKS ?? 1_000_000);
  if (!Number.isInteger(books) || books < 0)
    throw new Error(`--books / CHIT_BENCH_BOOKS: expected 0 or more, got ${books}`);
  const log = (line: string) => console.log(line);
  const result = await runExchangeBench({
    levels,
    books,
    log,
    hubNodeFlags: process.env.CHIT_BENCH_HUB_NODE_FLAGS?.split(' ').filter(Boolean),
    onLevel: (figures, environment) => {
      for (const line of levelLines(figures, environment)) log(line);
    },
  });
  const json = flag('--json');
  if (json) writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`);
  // The headline, last: the figures of the (last) level.
  const headline = result.levels.at(-1);
  if (headline) {
    log(`books: ${result.environment.books.exchanges.toLocaleString('en')} exchanges before the first level`);
    log(`exchanges/s: ${Math.round(headline.exchangesPerSecond)}`);
    log(`p99 ms: ${headline.p99Ms.toFixed(1)}`);
  }
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
