import assert from 'node:assert/strict';
import type { Pool, PoolClient } from 'pg';
import { generatePrivateKey } from 'viem/accounts';
import { OperatorSigner } from '../src/crypto/operator-signer';
import { toBytea } from '../src/db/bytes';
import { decodeWire } from '../src/errors/decode-wire';
import { HubError } from '../src/errors/hub-error';
import { ExchangeService } from '../src/exchange/exchange.service';
import { ExchangeRepository, RevealRepository } from '../src/repositories/exchange.repository';
import {
  consumerBooks,
  consumerWith,
  ether,
  exchangeBody,
  newProvider,
  promiseOf,
  testScope,
} from './support/exchanges';
import { createTestDatabase } from './support/postgres';

// The books in memory (hub/src/exchange/exchange-books.ts): a batch decided on rows memory holds is
// written only if those rows are still as memory holds them. Each attack below makes memory stale the
// way a deposit, an exit, another replica or an evicted row would, and checks that nothing is credited
// beyond what the books in Postgres allow.

describe('the exchange books in memory', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let pool: Pool;
  const operator = new OperatorSigner(generatePrivateKey());
  /** Two replicas of the hub on one database, each with its own memory. */
  let one: ExchangeService;
  let two: ExchangeService;
  const replica = (memoryRows?: number) =>
    new ExchangeService(testScope, new ExchangeRepository(pool), new RevealRepository(pool), operator, {
      maxBatch: 64,
      concurrency: 4,
      memoryRows,
    });
  const on = (service: ExchangeService, body: unknown) => service.exchange(decodeWire('exchangeRequest', body));
  const body = (made: Awaited<ReturnType<typeof promiseOf>>) =>
    exchangeBody(operator.publicKey, made.signed, made.preimage);

  async function refused(service: ExchangeService, request: unknown, code: string) {
    await assert.rejects(on(service, request), (error: unknown) => {
      assert.ok(error instanceof HubError, String(error));
      assert.equal(error.code, code, error.message);
      return true;
    });
  }

  /** How the next batches of `service` are decided: the change in its counts across `run`. */
  async function counted<T>(service: ExchangeService, run: () => Promise<T>) {
    const before = { ...service.batchCounts };
    const result = await run();
    return {
      result,
      memory: service.batchCounts.memory - before.memory,
      locked: service.batchCounts.locked - before.locked,
    };
  }

  before(async () => {
    db = await createTestDatabase();
    pool = db.pool;
    one = replica();
    two = replica();
  });
  after(async () => {
    await Promise.all([one.close(), two.close()]);
    await db.drop();
  });

  it("decides a pair's first exchange on locked rows and the next ones in memory, crediting the same", async () => {
    const consumer = await consumerWith(pool, ether(10));
    const p = newProvider();
    const first = await counted(one, async () => on(one, body(await promiseOf(consumer, p, ether(1), ether(1)))));
    assert.deepEqual([first.memory, first.locked], [0, 1]);
    const next = await counted(one, async () => {
      await on(one, body(await promiseOf(consumer, p, ether(2), ether(2))));
      return on(one, body(await promiseOf(consumer, p, ether(4), ether(4))));
    });
    assert.deepEqual([next.memory, next.locked], [2, 0]);
    assert.equal(next.result.hubPromise.total, ether(4));
    assert.deepEqual(await consumerBooks(pool, consumer.address), {
      credited: ether(4).toString(),
      signed_total: ether(4).toString(),
    });
    const { rows } = await pool.query('SELECT promised::text FROM providers WHERE address = $1', [
      toBytea(p.account.address.toLowerCase()),
    ]);
    assert.equal(rows[0].promised, ether(4).toString());
  });

  it('refuses a promise that fits what one replica remembers but not what another credited meanwhile', async () => {
    // The drain: a consumer and providers colluding across replicas, each replica's memory thinking the
    // channel still has room. Only the books may decide.
    const consumer = await consumerWith(pool, ether(10));
    const [p, q] = [newProvider(), newProvider()];
    await on(one, body(await promiseOf(consumer, p, ether(4), ether(4))));
    await on(two, body(await promiseOf(consumer, q, ether(9), ether(5))));
    // By one's memory: signed 4, credited 4; 6 more for p fits a total of 10. By the books: 9 credited.
    const drain = await promiseOf(consumer, p, ether(10), ether(10));
    const { memory, locked } = await counted(one, () => refused(one, body(drain), 'OVERSPEND'));
    assert.deepEqual([memory, locked], [0, 1]);
    assert.deepEqual(await consumerBooks(pool, consumer.address), {
      credited: ether(9).toString(),
      signed_total: ether(9).toString(),
    });
  });

  it('refuses a promise beyond an exit requested after memory read the channel', async () => {
    const consumer = await consumerWith(pool, ether(10));
    const p = newProvider();
    await on(one, body(await promiseOf(consumer, p, ether(2), ether(2))));
    // The follower records an ExitRequested of 7: 3 is left for promises.
    await pool.query('UPDATE consumers SET exit_amount = $2 WHERE address = $1', [
      toBytea(consumer.address.toLowerCase()),
      ether(7).toString(),
    ]);
    await refused(one, body(await promiseOf(consumer, p, ether(5), ether(5))), 'OVERSPEND');
    const fits = await on(one, body(await promiseOf(consumer, p, ether(3), ether(3))));
    assert.equal(fits.hubPromise.total, ether(3));
    assert.equal((await consumerBooks(pool, consumer.address)).credited, ether(3).toString());
  });

  it('credits a promise memory would refuse once a deposit made the channel big enough', async () => {
    const consumer = await consumerWith(pool, ether(2));
    const p = newProvider();
    await on(one, body(await promiseOf(consumer, p, ether(1), ether(1))));
    await pool.query('UPDATE consumers SET balance = $2 WHERE address = $1', [
      toBytea(consumer.address.toLowerCase()),
      ether(20).toString(),
    ]);
    const { result } = await counted(one, async () =>
      on(one, body(await promiseOf(consumer, p, ether(15), ether(15)))),
    );
    assert.equal(result.hubPromise.total, ether(15));
  });

  it('refuses a hashlock already recorded, which memory does not hold, as HASHLOCK_REUSED', async () => {
    const [consumer, other] = [await consumerWith(pool, ether(10)), await consumerWith(pool, ether(10))];
    const [p, q] = [newProvider(), newProvider()];
    await on(one, body(await promiseOf(consumer, p, ether(1), ether(1))));
    const taken = await promiseOf(other, q, ether(1), ether(1));
    await on(two, body(taken));
    // Every row this promise touches is as one remembers it, but its hashlock is the other pair's.
    const reused = await promiseOf(consumer, p, ether(2), ether(2), { hashlock: taken.signed.hashlock });
    await refused(one, exchangeBody(operator.publicKey, reused.signed, taken.preimage), 'HASHLOCK_REUSED');
    assert.equal((await consumerBooks(pool, consumer.address)).credited, ether(1).toString());
    // The repeat of the other pair's exchange on the other replica gets the same hub promise, credited once.
    const again = await on(one, body(taken));
    assert.equal(again.hubPromise.total, ether(1));
    assert.equal((await consumerBooks(pool, other.address)).credited, ether(1).toString());
  });

  it('credits only the increment of an agreement memory dropped, not its whole total', async () => {
    // Memory of one row each: two agreements of the pair evict the first.
    const small = replica(1);
    try {
      const consumer = await consumerWith(pool, ether(10));
      const p = newProvider();
      const agreement = (id: `0x${string}`) => ({ ...p, agreementId: id });
      const [a, b, c] = ['0x01', '0x02', '0x03'].map((id) => agreement(id.padEnd(66, '0') as `0x${string}`));
      await on(small, body(await promiseOf(consumer, a!, ether(1), ether(1))));
      await on(small, body(await promiseOf(consumer, b!, ether(2), ether(1))));
      await on(small, body(await promiseOf(consumer, c!, ether(3), ether(1))));
      // a was credited 1 and memory forgot it: taken as new, its 2 would credit 2 instead of 1.
      const more = await promiseOf(consumer, a!, ether(5), ether(2));
      const { result, locked } = await counted(small, () => on(small, body(more)));
      assert.equal(locked, 1);
      assert.equal(result.hubPromise.total, ether(4));
      assert.deepEqual(await consumerBooks(pool, consumer.address), {
        credited: ether(4).toString(),
        signed_total: ether(5).toString(),
      });
    } finally {
      await small.close();
    }
  });

  it('forgets what a write cut off halfway touched, and credits the retried request once', async () => {
    const consumer = await consumerWith(pool, ether(10));
    const p = newProvider();
    await on(one, body(await promiseOf(consumer, p, ether(1), ether(1))));
    const next = await promiseOf(consumer, p, ether(3), ether(3));
    // Hold the consumer's row so the write waits, then kill the connection it waits on.
    const holder: PoolClient = await pool.connect();
    try {
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM consumers WHERE address = $1 FOR UPDATE', [
        toBytea(consumer.address.toLowerCase()),
      ]);
      const cut = on(one, body(next));
      const waiting = await waitFor(async () => {
        const { rows } = await pool.query(
          `SELECT pid FROM pg_stat_activity
            WHERE datname = current_database() AND pid <> pg_backend_pid() AND wait_event_type = 'Lock' AND query LIKE '%consumer_updates%'`,
        );
        return rows[0]?.pid as number | undefined;
      });
      await pool.query('SELECT pg_terminate_backend($1)', [waiting]);
      await assert.rejects(cut);
    } finally {
      await holder.query('ROLLBACK');
      holder.release();
    }
    const retried = await counted(one, () => on(one, body(next)));
    assert.equal(retried.locked, 1, 'memory forgot the rows of the write that failed');
    assert.equal(retried.result.hubPromise.total, ether(3));
    assert.deepEqual(await consumerBooks(pool, consumer.address), {
      credited: ether(3).toString(),
      signed_total: ether(3).toString(),
    });
  });

  it('never over-credits a consumer paid through two replicas by 40 providers at once', async () => {
    const consumer = await consumerWith(pool, ether(25));
    const providers = Array.from({ length: 40 }, () => newProvider());
    // Warm both memories with the consumer and every provider.
    let total = 0n;
    for (const [i, p] of providers.entries()) {
      total += 1n;
      await on(i % 2 ? one : two, body(await promiseOf(consumer, p, total, 1n)));
    }
    // Then each provider asks for 1 ether more, on the replica that remembers it (and a consumer the
    // other replica changed since), all under one consumer total that covers 24 of them.
    const made = [];
    for (const p of providers) made.push(await promiseOf(consumer, p, 40n + ether(24), ether(1) + 1n));
    const answers = await Promise.allSettled(made.map((m, i) => on(i % 2 ? one : two, body(m))));
    const credited = answers.filter((a) => a.status === 'fulfilled').length;
    for (const a of answers) if (a.status === 'rejected') assert.equal((a.reason as HubError).code, 'OVERSPEND');
    assert.equal(credited, 24);
    assert.equal((await consumerBooks(pool, consumer.address)).credited, (40n + ether(24)).toString());
    // Every hub promise is backed: the exchanges recorded add up to what the consumer was credited.
    const { rows } = await pool.query(
      'SELECT count(*)::int AS n, sum(increment)::text AS credited FROM exchanges WHERE consumer = $1',
      [toBytea(consumer.address.toLowerCase())],
    );
    assert.deepEqual(rows[0], { n: 64, credited: (40n + ether(24)).toString() });
  });
});

/** Polls `read` until it answers, for at most 10 s. */
async function waitFor<T>(read: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await read();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error('waited 10 s for the write to wait on the lock');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
