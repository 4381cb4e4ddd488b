import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { createEmbeddedPostgres, ensureRedis, freePort, type RunningService } from '@chit/devstack';
import { encodeMessage, newHashlock, sealPreimage, signConsumerPromise } from '@chit/sdk';
import { Pool } from 'pg';
import { type Hex, keccak256, toHex } from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { toBytea } from '../src/db/bytes';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';

// Faults under a running hub process (hub/dist/main.js: `npm run build -w hub` first): the process
// killed between exchange and reveal, Postgres restarted under load, the RPC unreachable. Each test
// ends with the books checked to the wei against what the clients themselves received.

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const ether = (n: number) => BigInt(n) * 10n ** 18n;
const lower = (address: string) => address.toLowerCase() as Hex;

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** A request that gives up after `ms`: an answer (status and body), or a network error / timeout. */
async function request(
  url: string,
  body?: unknown,
  ms = 15_000,
): Promise<{ status: number | 'timeout' | 'network'; body?: Json }> {
  try {
    const response = await fetch(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers: body === undefined ? {} : { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(ms),
    });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : undefined };
  } catch (error) {
    return { status: (error as Error).name === 'TimeoutError' ? 'timeout' : 'network' };
  }
}

/** A hub process of its own (dist/main.js), killable. */
class HubProcess {
  readonly child: ChildProcess;
  constructor(
    readonly url: string,
    env: Record<string, string>,
  ) {
    this.child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'main.js'), 'start'], {
      stdio: ['ignore', 'ignore', 'inherit'],
      env: { ...process.env, ...env },
    });
  }
  static async start(env: Record<string, string>): Promise<HubProcess> {
    const port = await freePort();
    const hub = new HubProcess(`http://127.0.0.1:${port}`, { ...env, PORT: String(port) });
    await until(
      `hub ${hub.url} ready`,
      async () => {
        if (hub.child.exitCode !== null) throw new Error(`hub ${hub.url} exited with ${hub.child.exitCode}`);
        return (await request(`${hub.url}/ready`, undefined, 5_000)).status === 200;
      },
      60_000,
    );
    return hub;
  }
  get alive() {
    return this.child.exitCode === null && this.child.signalCode === null;
  }
  async kill(signal: NodeJS.Signals = 'SIGKILL') {
    if (!this.alive) return;
    await new Promise((resolve) => {
      this.child.once('exit', resolve);
      this.child.kill(signal);
    });
  }
}

/** What the clients were given: every hub promise received, by hashlock, and the increment it paid for. */
class Ledger {
  readonly received = new Map<Hex, { provider: Hex; consumer: Hex; increment: bigint; hubTotal: bigint }>();
  record(hashlock: Hex, provider: Hex, consumer: Hex, increment: bigint, hubPromise: Json) {
    const hubTotal = BigInt(hubPromise.total);
    assert.equal(lower(hubPromise.hashlock), hashlock);
    assert.equal(lower(hubPromise.provider), provider);
    const earlier = this.received.get(hashlock);
    if (earlier) {
      // A repeat: the very same answer.
      assert.equal(earlier.hubTotal, hubTotal, 'a repeated exchange gets the same hub promise');
      return;
    }
    this.received.set(hashlock, { provider, consumer, increment, hubTotal });
  }
  get total() {
    return [...this.received.values()].reduce((sum, r) => sum + r.increment, 0n);
  }
}

/**
 * The books against the ledger, to the wei: sum of the received increments == consumers.credited ==
 * sum(exchanges.increment); the exchanges in the books are exactly the received hub promises (nothing
 * credited that no client got a promise for, nothing credited twice); each provider's promised total
 * is the sum of its increments.
 */
async function checkBooks(pool: Pool, ledger: Ledger, consumers: Hex[]) {
  const keys = consumers.map(toBytea);
  const credited = await pool.query(
    'SELECT coalesce(sum(credited), 0)::text AS n FROM consumers WHERE address = ANY($1)',
    [keys],
  );
  const rows = await pool.query(
    `SELECT encode(hashlock, 'hex') AS hashlock, encode(provider, 'hex') AS provider, increment::text, hub_total::text
       FROM exchanges WHERE consumer = ANY($1)`,
    [keys],
  );
  const sum = rows.rows.reduce((total, row) => total + BigInt(row.increment), 0n);
  assert.ok(ledger.total > 0n);
  assert.equal(BigInt(credited.rows[0].n), ledger.total, 'consumers.credited == increments the clients were promised');
  assert.equal(sum, ledger.total, 'sum(exchanges.increment) == increments the clients were promised');
  assert.equal(rows.rows.length, ledger.received.size, 'one exchange in the books per hub promise received');
  for (const row of rows.rows) {
    const got = ledger.received.get(`0x${row.hashlock}`);
    assert.ok(got, `exchange 0x${row.hashlock} credited but no client got its hub promise`);
    assert.equal(BigInt(row.increment), got.increment);
    assert.equal(BigInt(row.hub_total), got.hubTotal);
  }
  const providers = new Map<Hex, bigint>();
  for (const r of ledger.received.values()) providers.set(r.provider, (providers.get(r.provider) ?? 0n) + r.increment);
  for (const [provider, total] of providers) {
    const row = await pool.query('SELECT promised::text FROM providers WHERE address = $1', [toBytea(provider)]);
    assert.equal(BigInt(row.rows[0].promised), total, `provider ${provider} promised == its increments`);
  }
}

describe('hub faults', function () {
  this.timeout(90_000);
  let chain: Awaited<ReturnType<typeof startChain>>;
  let redis: RunningService;
  let publicKey: Hex;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    redis = await ensureRedis();
  });
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
  });
  after(async () => {
    if (chain?.process.exitCode === null) chain.process.kill('SIGCONT');
    await redis?.stop();
    chain?.stop();
  });

  const settings = (databaseUrl: string): Record<string, string> => ({
    DATABASE_URL: databaseUrl,
    REDIS_URL: redis.url,
    RPC_URL: chain.url,
    HUB_ADDRESS: chain.deployment.hub.address,
    OPERATOR_KEY: chain.operatorKey,
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'fatal',
    QUEUE_PREFIX: queuePrefix(redis.url, 'faults'),
    SETTLEMENT_SCAN_INTERVAL_MS: '3600000',
  });

  async function hub(env: Record<string, string>) {
    const running = await HubProcess.start(env);
    cleanups.push(() => running.kill());
    publicKey ??= (await request(`${running.url}/v1/info`)).body?.publicKey;
    return running;
  }

  async function consumer(pool: Pool, balance = ether(1000)): Promise<PrivateKeyAccount> {
    const account = privateKeyToAccount(generatePrivateKey());
    await pool.query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
      toBytea(lower(account.address)),
      balance.toString(),
    ]);
    return account;
  }

  /** A provider paid by one consumer in one agreement; each `next` is the body of its next exchange. */
  function provider(payer: PrivateKeyAccount) {
    const account = privateKeyToAccount(generatePrivateKey());
    const agreementId = keccak256(toHex(`${payer.address}${account.address}`));
    let total = 0n;
    return {
      address: lower(account.address),
      consumer: lower(payer.address),
      async next(increment: bigint) {
        total += increment;
        const { preimage, hashlock } = newHashlock();
        const promise = await signConsumerPromise(payer, {
          hub: chain.deployment.hub.address as Hex,
          chainId: chain.deployment.chainId,
          consumer: payer.address,
          total,
          hashlock,
          agreement: { provider: account.address, id: agreementId, total },
        });
        const body = { promise: encodeMessage(promise), encryptedPreimage: sealPreimage(publicKey, preimage) };
        const reveal = {
          hub: chain.deployment.hub.address,
          chainId: chain.deployment.chainId,
          provider: account.address,
          preimage,
        };
        return { body, reveal, hashlock: lower(hashlock), increment };
      },
    };
  }

  it('a hub process SIGKILLed between exchange and reveal: the new process takes the reveal, and repeats', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const env = settings(db.url);
    const first = await hub(env);
    const payer = await consumer(db.pool);
    const p = provider(payer);
    const ledger = new Ledger();

    const one = await p.next(ether(2));
    const exchanged = await request(`${first.url}/v1/exchange`, one.body);
    assert.equal(exchanged.status, 200, JSON.stringify(exchanged));
    const firstPromise = exchanged.body.hubPromise;
    ledger.record(one.hashlock, p.address, p.consumer, one.increment, firstPromise);
    await first.kill('SIGKILL');

    const second = await hub(env);
    const revealed = await request(`${second.url}/v1/reveal`, one.reveal);
    assert.deepEqual(revealed, { status: 200, body: { revealed: true } });
    const known = await db.pool.query('SELECT preimage FROM exchanges WHERE hashlock = $1', [toBytea(one.hashlock)]);
    assert.equal(`0x${known.rows[0].preimage.toString('hex')}`, one.reveal.preimage);

    const two = await p.next(ether(3));
    const next = await request(`${second.url}/v1/exchange`, two.body);
    assert.equal(next.status, 200, JSON.stringify(next));
    const nextPromise = next.body.hubPromise;
    assert.equal(nextPromise.total, ether(5).toString());
    ledger.record(two.hashlock, p.address, p.consumer, two.increment, nextPromise);

    const repeat = await request(`${second.url}/v1/exchange`, one.body);
    assert.equal(repeat.status, 200, JSON.stringify(repeat));
    assert.deepEqual(repeat.body.hubPromise, firstPromise, 'the same hub promise after restart');
    ledger.record(one.hashlock, p.address, p.consumer, one.increment, firstPromise);

    await checkBooks(db.pool, ledger, [p.consumer]);
  });

  it('Postgres restarted under load: 503s meanwhile, the hub recovers by itself, the books exact', async () => {
    const postgres = await createEmbeddedPostgres();
    cleanups.push(() => postgres.remove());
    await postgres.start();
    const url = postgres.url;
    const pool = new Pool({ connectionString: url, max: 2 });
    pool.on('error', () => {});
    cleanups.push(() => pool.end());

    const running = await hub(settings(url));
    const payers = await Promise.all([0, 1, 2, 3].map(() => consumer(pool)));
    const providers = payers.map((payer) => provider(payer));
    const ledger = new Ledger();
    const failures: (number | string)[] = [];
    let down = false;
    let duringOutage = 0;

    /** Sends `body` until it is answered 200; every other answer must be a 503 or 500, quickly. */
    async function untilOk(route: string, body: unknown): Promise<Json> {
      for (;;) {
        const answer = await request(`${running.url}${route}`, body);
        if (answer.status === 200) return answer.body;
        failures.push(answer.status);
        if (down) duringOutage++;
        assert.ok(answer.status === 503 || answer.status === 500, `unexpected answer ${JSON.stringify(answer)}`);
        await sleep(100);
      }
    }

    const rounds = 12;
    const progress = providers.map(() => 0);
    const load = providers.map(async (p, i) => {
      for (let k = 0; k < rounds; k++) {
        const exchange = await p.next(BigInt(k + 1) * 10n ** 15n);
        const { hubPromise } = await untilOk('/v1/exchange', exchange.body);
        ledger.record(exchange.hashlock, p.address, p.consumer, exchange.increment, hubPromise);
        await untilOk('/v1/reveal', exchange.reveal);
        progress[i] = k + 1;
      }
    });
    const outage = (async () => {
      await until('some exchanges done', async () => progress.every((n) => n >= 3));
      down = true;
      await postgres.stop();
      // Down long enough for every provider to be refused at least once.
      const refused = failures.length;
      await until('requests refused while Postgres is down', async () => failures.length >= refused + 4, 20_000);
      const ready = await request(`${running.url}/ready`);
      assert.equal(ready.status, 503);
      assert.equal(ready.body.checks.postgres, false);
      await postgres.start();
      down = false;
    })();
    await Promise.all([...load, outage]);

    assert.ok(running.alive, 'the hub process survived the outage');
    assert.ok(duringOutage > 0, 'requests were refused during the outage');
    assert.ok(failures.includes(503), `a database outage answers 503 UNAVAILABLE (got ${failures.join(',')})`);
    assert.equal((await request(`${running.url}/ready`)).status, 200);
    await checkBooks(
      pool,
      ledger,
      providers.map((p) => p.consumer),
    );
    for (const p of providers) {
      const agreement = await pool.query('SELECT credited_total::text FROM agreements WHERE provider = $1', [
        toBytea(p.address),
      ]);
      assert.equal(BigInt(agreement.rows[0].credited_total), (BigInt(rounds * (rounds + 1)) / 2n) * 10n ** 15n);
    }
  });

  it('RPC unreachable and back: /ready says rpc false, exchanges go on', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const running = await hub(settings(db.url));
    const payer = await consumer(db.pool);
    const p = provider(payer);
    const ledger = new Ledger();
    const exchange = async () => {
      const next = await p.next(ether(1));
      const answer = await request(`${running.url}/v1/exchange`, next.body);
      assert.equal(answer.status, 200, JSON.stringify(answer));
      ledger.record(next.hashlock, p.address, p.consumer, next.increment, answer.body.hubPromise);
      assert.equal((await request(`${running.url}/v1/reveal`, next.reveal)).status, 200);
    };
    await exchange();

    chain.process.kill('SIGSTOP');
    cleanups.push(async () => chain.process.kill('SIGCONT'));
    const unready = await until('/ready to say rpc false', async () => {
      const answer = await request(`${running.url}/ready`);
      return answer.status === 503 && answer;
    });
    assert.deepEqual(unready.body.checks, { postgres: true, redis: true, rpc: false, follower: true });
    for (let i = 0; i < 3; i++) await exchange();

    chain.process.kill('SIGCONT');
    const ready = await until('/ready again', async () => {
      const answer = await request(`${running.url}/ready`);
      return answer.status === 200 && answer;
    });
    assert.deepEqual(ready.body.checks, { postgres: true, redis: true, rpc: true, follower: true });
    await exchange();
    await checkBooks(db.pool, ledger, [p.consumer]);
  });
});
