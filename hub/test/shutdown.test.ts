import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { connect } from 'node:net';
import path from 'node:path';
import { ensureRedis, freePort, type RunningService, testTokenAbi } from '@chit/devstack';
import {
  deposit,
  encodeMessage,
  hubAbi,
  newHashlock,
  sealPreimage,
  signConsumerPromise,
  waitForTransaction,
} from '@chit/sdk';
import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  type Hex,
  http,
  keccak256,
  type PublicClient,
  parseEther,
  parseEventLogs,
  toHex,
} from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { startHub } from '../src/app';
import { loadConfig } from '../src/config/config';
import { toBytea } from '../src/db/bytes';
import { QueueName } from '../src/jobs/job.enums';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';

// Graceful shutdown of a hub process (hub/dist/main.js: `npm run build -w hub` first) on real
// Postgres, Redis and anvil: SIGTERM while an exchange is in flight and a settlement job follows its
// transaction. The exchange must be answered 200, new connections refused, the job finished or left in
// its queue (neither lost nor sent twice), and the process must exit 0 within a bound.

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

const ether = (n: number) => parseEther(String(n));
const lower = (address: string) => address.toLowerCase() as Hex;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** How long the hub may take to exit once its last request is answered. */
const EXIT_BOUND_MS = 10_000;

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Whether a new TCP connection to `port` is refused. */
function refused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

describe('graceful shutdown', function () {
  this.timeout(120_000);
  let chain: Awaited<ReturnType<typeof startChain>>;
  let redis: RunningService;
  let rpc: PublicClient;
  let hubAddress: Address;
  let token: Address;
  const cleanups: (() => Promise<unknown>)[] = [];

  const test = () => createTestClient({ chain: foundry, mode: 'anvil', transport: http(chain.url) });
  const wallet = (account: PrivateKeyAccount) =>
    createWalletClient({ account, chain: foundry, transport: http(chain.url) });

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    redis = await ensureRedis();
    hubAddress = chain.deployment.hub.address as Address;
    token = chain.deployment.token.address as Address;
    rpc = createPublicClient({ chain: foundry, transport: http(chain.url) });
  });
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
  });
  after(async () => {
    await redis?.stop();
    chain?.stop();
  });

  const post = (url: string, body: unknown) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

  /** The body of an exchange of `consumer`'s promise of `total` to a fresh provider, and its reveal. */
  async function exchangeBody(publicKey: Hex, consumer: PrivateKeyAccount, total: bigint) {
    const provider = privateKeyToAccount(generatePrivateKey());
    const { preimage, hashlock } = newHashlock();
    const promise = await signConsumerPromise(consumer, {
      hub: hubAddress,
      chainId: 31337,
      consumer: consumer.address,
      total,
      hashlock,
      agreement: { provider: provider.address, id: keccak256(toHex(`${consumer.address}${provider.address}`)), total },
    });
    return {
      exchange: { promise: encodeMessage(promise), encryptedPreimage: sealPreimage(publicKey, preimage) },
      reveal: { hub: hubAddress, chainId: 31337, provider: provider.address, preimage },
    };
  }

  // What the drain in startHub (hub/src/app.ts) must hold: the keep-alive connection of the exchange in
  // flight is closed with its answer, so server.close() does not wait for the keep-alive timeout, and the
  // process exits 0 after the shutdown hooks rather than dying by the re-raised signal.
  it('drains on SIGTERM: the exchange in flight answered 200, new connections refused, the settlement job left in its queue and settled once, exit 0', async () => {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const port = await freePort();
    const env: Record<string, string> = {
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      RPC_URL: chain.url,
      HUB_ADDRESS: hubAddress,
      OPERATOR_KEY: chain.operatorKey,
      PORT: String(port),
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'warn',
      CONFIRMATIONS: '0',
      FOLLOWER_POLL_MS: '100',
      QUEUE_PREFIX: queuePrefix(redis.url, 'shutdown'),
      SETTLEMENT_BATCH_WINDOW_MS: '100',
      SETTLEMENT_SCAN_INTERVAL_MS: '300',
      SETTLEMENT_RECONCILE_INTERVAL_MS: '500',
      SETTLEMENT_BACKOFF_MS: '200',
      QUEUE_LOCK_MS: '2000',
      TX_POLL_INTERVAL_MS: '100',
    };
    let output = '';
    const child: ChildProcess = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'main.js'), 'start'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, ...env },
    });
    for (const stream of [child.stdout, child.stderr]) {
      stream?.on('data', (chunk: Buffer) => {
        output += chunk.toString();
      });
    }
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
      child.once('exit', (code, signal) => resolve({ code, signal, at: Date.now() })),
    );
    cleanups.push(async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    cleanups.push(() => test().setAutomine(true));
    const url = `http://127.0.0.1:${port}`;
    await until('the hub process ready', async () => (await fetch(`${url}/ready`)).status === 200, 60_000);
    const info: Json = await (await fetch(`${url}/v1/info`)).json();

    // A consumer with a channel on-chain, paid to a provider: its settlement will be in flight.
    const payer = privateKeyToAccount(generatePrivateKey());
    await test().setBalance({ address: payer.address, value: ether(10) });
    const payerWallet = wallet(payer);
    await waitForTransaction(rpc, {
      hash: await payerWallet.writeContract({
        address: token,
        abi: testTokenAbi,
        functionName: 'mint',
        args: [payer.address, ether(10)],
      }),
    });
    await waitForTransaction(rpc, await deposit(payerWallet, { hub: hubAddress, amount: ether(10) }));
    await until('the deposit in the books', async () => {
      const books: Json = await (await fetch(`${url}/v1/consumers/${payer.address}`)).json();
      return books.balance === ether(10).toString();
    });
    // Blocks only when the test says so: the settlement transaction stays pending, its job follows it.
    await test().setAutomine(false);
    const paid = await exchangeBody(info.publicKey, payer, ether(3));
    assert.equal((await post(`${url}/v1/exchange`, paid.exchange)).status, 200);
    assert.equal((await post(`${url}/v1/reveal`, paid.reveal)).status, 200);
    const submitted = await until('the settlement submitted', async () => {
      const { rows } = await db.pool.query(
        `SELECT id, status, encode(tx_hash, 'hex') AS tx FROM settlements WHERE kind = 'consumer' AND subject = $1`,
        [toBytea(lower(payer.address))],
      );
      return rows[0]?.status === 'submitted' && rows[0];
    });

    // An exchange held in flight: the test holds the lock on its consumer's row that the exchange needs.
    // Its total is too small to be worth a settlement, so it adds no job of its own.
    const slow = privateKeyToAccount(generatePrivateKey());
    await db.pool.query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
      toBytea(lower(slow.address)),
      ether(1).toString(),
    ]);
    const lock = await db.pool.connect();
    cleanups.push(async () => lock.release());
    await lock.query('BEGIN');
    await lock.query('SELECT 1 FROM consumers WHERE address = $1 FOR UPDATE', [toBytea(lower(slow.address))]);
    const held = await exchangeBody(info.publicKey, slow, 1_000n);
    const inFlight = post(`${url}/v1/exchange`, held.exchange).then(async (response) => ({
      status: response.status,
      body: (await response.json()) as Json,
    }));
    await until('the exchange waiting for the lock', async () => {
      const { rows } = await db.pool.query(
        `SELECT count(*)::int AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()`,
      );
      return rows[0].n > 0;
    });

    child.kill('SIGTERM');
    await until('new connections refused', () => refused(port), 5_000);
    await sleep(500);
    assert.equal(child.exitCode, null, 'the hub waits for the exchange in flight');
    await lock.query('COMMIT');
    const answered = await inFlight;
    const answeredAt = Date.now();
    assert.equal(answered.status, 200, JSON.stringify(answered.body));
    assert.equal(answered.body.hubPromise.total, '1000');

    const exit = await Promise.race([exited, sleep(EXIT_BOUND_MS).then(() => undefined)]);
    assert.ok(exit, `the hub exits within ${EXIT_BOUND_MS} ms of its last answer; output:\n${output}`);
    assert.ok(exit.at - answeredAt < EXIT_BOUND_MS);
    assert.deepEqual(
      { code: exit.code, signal: exit.signal },
      { code: 0, signal: null },
      `exit 0 after SIGTERM; output:\n${output}`,
    );

    // The job was not lost: its settlement is still open, its transaction pending, its job in the queue.
    const { rows: open } = await db.pool.query(`SELECT status FROM settlements WHERE id = $1`, [submitted.id]);
    assert.ok(['submitted', 'retrying', 'confirmed'].includes(open[0].status), open[0].status);
    // Another hub takes over; the block comes; the same transaction settles it, and nothing is sent again.
    const next = await startHub(loadConfig({ ...env, PORT: '0', LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent' }));
    cleanups.push(() => next.close());
    const queue = next.context.settlement.queues.queue(QueueName.ConsumerSettlement);
    const state = await queue.getJobState(submitted.id);
    assert.ok(['delayed', 'waiting', 'active', 'completed'].includes(state), `the job is ${state}`);
    await test().setAutomine(true);
    await test().mine({ blocks: 1 });
    await until('the settlement confirmed', async () => {
      const { rows } = await db.pool.query(
        `SELECT status, encode(tx_hash, 'hex') AS tx FROM settlements WHERE id = $1`,
        [submitted.id],
      );
      return rows[0].status === 'confirmed' && rows[0];
    });
    // The follower may confirm the settlement from its event before the sender records the receipt.
    const txs = await until('the transaction recorded as mined', async () => {
      const { rows } = await db.pool.query(`SELECT encode(hash, 'hex') AS hash, status FROM transactions`);
      return rows.every((row) => row.status === 'mined') && rows;
    });
    assert.deepEqual(txs, [{ hash: submitted.tx, status: 'mined' }], 'one transaction, sent once');
    const logs = await rpc.getLogs({ address: hubAddress, fromBlock: 0n, toBlock: 'latest' });
    const settled = parseEventLogs({ abi: hubAbi, logs, eventName: 'ConsumerSettled' }).filter(
      (log) => lower(log.args.consumer) === lower(payer.address),
    );
    assert.equal(settled.length, 1);
  });
});
