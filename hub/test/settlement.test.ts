import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { freePort, testTokenAbi } from '@chit/devstack';
import {
  decodeHubAnswer,
  deposit,
  encodeMessage,
  getConsumerChannel,
  getProviderChannel,
  hubAbi,
  instantExit,
  newHashlock,
  sealPreimage,
  signConsumerPromise,
  signInstantExitRequest,
  signRegisterIdentity,
  signSetBeneficiary,
  signSettlementAuthorization,
  waitForTransaction,
} from '@chit/sdk';
import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  type Hash,
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
import { type RunningHub, startHub } from '../src/app';
import { loadConfig } from '../src/config/config';
import { toBytea } from '../src/db/bytes';
import { QueueName } from '../src/jobs/job.enums';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';
import { fundIdentity } from './support/relay';

type TestDatabase = Awaited<ReturnType<typeof createTestDatabase>>;
// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

const ether = (n: number | string) => parseEther(String(n));
const lower = (address: string) => address.toLowerCase() as Hex;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** A redis-server of this file's own, which it can kill and start again on the same port. */
class OwnRedis {
  private child: ChildProcess | undefined;
  constructor(readonly port: number) {}
  get url() {
    return `redis://127.0.0.1:${this.port}`;
  }
  async start() {
    this.child = spawn(
      'redis-server',
      ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
      {
        stdio: 'ignore',
      },
    );
    for (let i = 0; i < 100; i++) {
      const ok = await fetch(`http://127.0.0.1:${this.port}`).then(
        () => true,
        (error: { cause?: { code?: string } }) => error.cause?.code !== 'ECONNREFUSED',
      );
      if (ok) return;
      await sleep(50);
    }
    throw new Error('redis-server did not start');
  }
  async stop() {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null) return;
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL');
    });
  }
}

describe('settlement pipeline', function () {
  // These tests race real processes, a real node and real timers on a shared two-core machine: one
  // retry keeps a slow moment from failing the run; every attempt starts from a fresh database.
  this.retries(1);
  this.timeout(60_000);
  let chain: Awaited<ReturnType<typeof startChain>>;
  let rpc: PublicClient;
  let hubAddress: Address;
  let registry: Address;
  let token: Address;
  let redis: OwnRedis;
  const cleanups: (() => Promise<unknown>)[] = [];

  const test = () => createTestClient({ chain: foundry, mode: 'anvil', transport: http(chain.url) });
  const wallet = (account: PrivateKeyAccount) =>
    createWalletClient({ account, chain: foundry, transport: http(chain.url) });

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    hubAddress = chain.deployment.hub.address as Address;
    registry = chain.deployment.registry.address as Address;
    token = chain.deployment.token.address as Address;
    rpc = createPublicClient({ chain: foundry, transport: http(chain.url) });
    redis = new OwnRedis(await freePort());
    await redis.start();
  });

  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
    await test().setAutomine(true);
  });

  after(async () => {
    await redis?.stop();
    chain?.stop();
  });

  /** The settings of a test hub: everything fast, a queue prefix of its own. */
  function settings(db: TestDatabase, overrides: Record<string, string> = {}): Record<string, string> {
    return {
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      RPC_URL: chain.url,
      HUB_ADDRESS: hubAddress,
      OPERATOR_KEY: chain.operatorKey,
      PORT: '0',
      LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
      CONFIRMATIONS: '0',
      FOLLOWER_POLL_MS: '100',
      QUEUE_PREFIX: queuePrefix(redis.url, 'settlement'),
      SETTLEMENT_BATCH_WINDOW_MS: '300',
      SETTLEMENT_SCAN_INTERVAL_MS: '3600000',
      SETTLEMENT_RECONCILE_INTERVAL_MS: '500',
      SETTLEMENT_BACKOFF_MS: '200',
      QUEUE_LOCK_MS: '2000',
      TX_POLL_INTERVAL_MS: '100',
      ...overrides,
    };
  }

  async function database(): Promise<TestDatabase> {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    return db;
  }

  async function hub(env: Record<string, string>): Promise<RunningHub> {
    const running = await startHub(loadConfig(env));
    cleanups.push(() => running.close());
    return running;
  }

  const mined = async (sent: Promise<{ hash: Hash }> | Promise<Hash>) => {
    const result = await sent;
    return waitForTransaction(rpc, { hash: typeof result === 'string' ? result : result.hash });
  };

  /** A fresh account with ETH and `tokens` test tokens. */
  async function funded(tokens = ether(100)) {
    const account = privateKeyToAccount(generatePrivateKey());
    await test().setBalance({ address: account.address, value: ether(10) });
    const client = wallet(account);
    await mined(
      client.writeContract({
        address: token,
        abi: testTokenAbi,
        functionName: 'mint',
        args: [account.address, tokens],
      }),
    );
    return client;
  }

  const tokenBalance = (who: Address) =>
    rpc.readContract({ address: token, abi: testTokenAbi, functionName: 'balanceOf', args: [who] });

  async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  const post = (running: RunningHub, route: string, body: unknown) =>
    fetch(`${running.url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  /** The body of `POST /v1/exits/instant`: `consumer` asks for `amount`, signed by `signer` (the consumer). */
  async function exitRequest(
    consumer: ReturnType<typeof wallet>,
    amount: bigint,
    signer: Parameters<typeof signInstantExitRequest>[0] = consumer,
    issuedAt = BigInt(Math.floor(Date.now() / 1000)),
  ) {
    const request = { hub: hubAddress, chainId: 31337, consumer: consumer.account.address, amount, issuedAt };
    const { hub: _hub, chainId: _chainId, ...body } = await signInstantExitRequest(signer, request);
    return encodeMessage(body);
  }

  /** A consumer with `amount` deposited on-chain, once the follower has put its channel in the books. */
  async function depositor(running: RunningHub, amount: bigint) {
    const consumer = await funded();
    await mined(deposit(consumer, { hub: hubAddress, amount }));
    await until('the deposit in the books', async () => {
      const response = await fetch(`${running.url}/v1/consumers/${consumer.account.address}`);
      return response.status === 200 && ((await response.json()) as Json).balance === amount.toString();
    });
    return consumer;
  }

  /** A provider that exchanges promises at the hub over HTTP and reveals each R right after. */
  function provider(running: RunningHub, account = privateKeyToAccount(generatePrivateKey())) {
    const agreements = new Map<string, bigint>();
    let info: Json;
    return {
      account,
      /** The consumer promises `increment` more (its total is `consumerTotal`); returns the hub promise. */
      async pay(consumer: ReturnType<typeof wallet>, consumerTotal: bigint, increment: bigint) {
        const { response, agreementId, agreementTotal, preimage } = await this.exchange(
          consumer,
          consumerTotal,
          increment,
        );
        assert.equal(response.status, 200, await response.clone().text());
        agreements.set(agreementId, agreementTotal);
        const reveal = await post(running, '/v1/reveal', {
          hub: hubAddress,
          chainId: 31337,
          provider: account.address,
          preimage,
        });
        assert.equal(reveal.status, 200);
        return ((await response.json()) as Json).hubPromise;
      },
      /** POST /v1/exchange of the consumer's next promise, answer unchecked. */
      async exchange(consumer: ReturnType<typeof wallet>, consumerTotal: bigint, increment: bigint) {
        info ??= await (await fetch(`${running.url}/v1/info`)).json();
        const agreementId = keccak256(toHex(`${consumer.account.address}${account.address}`));
        const agreementTotal = (agreements.get(agreementId) ?? 0n) + increment;
        const { preimage, hashlock } = newHashlock();
        const promise = await signConsumerPromise(consumer.account, {
          hub: hubAddress,
          chainId: 31337,
          consumer: consumer.account.address,
          total: consumerTotal,
          hashlock,
          agreement: { provider: account.address, id: agreementId, total: agreementTotal },
        });
        const response = await post(running, '/v1/exchange', {
          promise: {
            ...promise,
            total: promise.total.toString(),
            agreement: { ...promise.agreement, total: agreementTotal.toString() },
          },
          encryptedPreimage: sealPreimage(info.publicKey, preimage),
        });
        return { response, agreementId, agreementTotal, preimage };
      },
    };
  }

  // biome-ignore lint/suspicious/noExplicitAny: pg rows
  async function settlementRows(db: TestDatabase, kind: string, subject: Address): Promise<any[]> {
    const { rows } = await db.pool.query(
      `SELECT id, status, encode(tx_hash, 'hex') AS tx, error, amount::text FROM settlements
        WHERE kind = $1 AND subject = $2 ORDER BY created_at`,
      [kind, toBytea(lower(subject))],
    );
    return rows;
  }

  async function allConfirmed(db: TestDatabase, kind: string, subjects: Address[]) {
    return until(`${kind} settlements confirmed`, async () => {
      const rows = (await Promise.all(subjects.map((s) => settlementRows(db, kind, s)))).flat();
      return rows.length === subjects.length && rows.every((row) => row.status === 'confirmed') && rows;
    });
  }

  /** Every ConsumerSettled (or ProviderSettled) event of `who` since genesis. */
  async function settledEvents(eventName: 'ConsumerSettled' | 'ProviderSettled', who: Address) {
    const logs = await rpc.getLogs({ address: hubAddress, fromBlock: 0n, toBlock: 'latest' });
    return parseEventLogs({ abi: hubAbi, logs, eventName }).filter(
      (log) =>
        lower(
          (log.args as { consumer?: string; provider?: string }).consumer ??
            (log.args as { provider: string }).provider,
        ) === lower(who),
    );
  }

  describe('consumer settlements', () => {
    it('settles the due consumers in one transaction and confirms every settlement with its hash', async () => {
      const db = await database();
      const running = await hub(settings(db, { SETTLEMENT_BATCH_WINDOW_MS: '1000' }));
      const consumers = await Promise.all([1, 2, 3, 4].map(() => depositor(running, ether(10))));
      const p = provider(running);
      for (const [i, consumer] of consumers.entries()) await p.pay(consumer, ether(i + 1), ether(i + 1));

      assert.equal(await running.context.settlement.scanner.collectDueConsumers(), 4);
      const addresses = consumers.map((c) => c.account.address);
      const rows = await allConfirmed(db, 'consumer', addresses);

      const hashes = new Set(rows.map((row) => row.tx));
      assert.equal(hashes.size, 1, 'one transaction for the batch');
      const receipt = await rpc.getTransactionReceipt({ hash: `0x${[...hashes][0]}` });
      assert.equal(parseEventLogs({ abi: hubAbi, logs: receipt.logs, eventName: 'ConsumerSettled' }).length, 4);
      for (const [i, consumer] of consumers.entries()) {
        const channel = await getConsumerChannel(rpc, { hub: hubAddress, consumer: consumer.account.address });
        assert.equal(channel.settled, ether(i + 1));
        assert.equal(channel.balance, ether(10) - ether(i + 1));
      }
      const { rows: txs } = await db.pool.query(`SELECT claims, status FROM transactions WHERE kind = 'consumer'`);
      assert.deepEqual(txs, [{ claims: 4, status: 'mined' }]);
      // A second scan finds nothing new: the books show one settlement per consumer.
      assert.equal(await running.context.settlement.scanner.collectDueConsumers(), 0);
    });

    it('collects from a consumer raced by 30 providers exactly what it credited them, and leaves it the rest', async () => {
      const db = await database();
      const running = await hub(settings(db));
      const finney = (n: number) => BigInt(n) * 10n ** 15n;
      const consumer = await depositor(running, finney(2050));
      // Each provider bills 0.1 at once; the consumer signs totals 0.1 to 3.0 against its 2.05.
      const providers = Array.from({ length: 30 }, () => provider(running));
      const answers = await Promise.all(
        providers.map((p, i) => p.exchange(consumer, finney(100 * (i + 1)), finney(100))),
      );
      const statuses = answers.map(({ response }) => response.status);
      assert.equal(statuses.filter((status) => status === 200).length, 20);
      assert.ok(statuses.every((status) => status === 200 || status === 409));

      assert.equal(await running.context.settlement.scanner.collectDueConsumers(), 1);
      await allConfirmed(db, 'consumer', [consumer.account.address]);
      const channel = await getConsumerChannel(rpc, { hub: hubAddress, consumer: consumer.account.address });
      assert.deepEqual([channel.settled, channel.balance], [finney(2000), finney(50)]);
      await until('the collection in the books', async () => {
        const books: Json = await (await fetch(`${running.url}/v1/consumers/${consumer.account.address}`)).json();
        return books.settled === finney(2000).toString() && books;
      }).then((books) => {
        assert.equal(books.credited, finney(2000).toString());
        assert.equal(books.available, finney(50).toString());
      });
    });

    it('settles an exiting consumer at once, and co-signs an instant exit the contract accepts', async () => {
      const db = await database();
      const running = await hub(settings(db, { SETTLEMENT_BATCH_WINDOW_MS: '60000' }));
      const consumer = await depositor(running, ether(10));
      const p = provider(running);
      await p.pay(consumer, ether(3), ether(3));

      // The exit request reaches the pipeline through the follower; the claim is sent without waiting
      // for the (one minute) batch window.
      await mined(
        consumer.writeContract({ address: hubAddress, abi: hubAbi, functionName: 'requestExit', args: [ether(5)] }),
      );
      const [row] = await allConfirmed(db, 'consumer', [consumer.account.address]);
      assert.ok(row.tx);
      await mined(consumer.writeContract({ address: hubAddress, abi: hubAbi, functionName: 'cancelExit' }));
      await until('the exit cancelled in the books', async () => {
        const books: Json = await (await fetch(`${running.url}/v1/consumers/${consumer.account.address}`)).json();
        return books.pendingExit === null && books.settled === ether(3).toString();
      });

      // 7 left, 3 of it settled: 7 is available, 8 is not.
      const refused = await post(running, '/v1/exits/instant', await exitRequest(consumer, ether(8)));
      assert.equal(refused.status, 409);
      assert.equal(((await refused.json()) as Json).code, 'OVERSPEND');
      const answer = await post(running, '/v1/exits/instant', await exitRequest(consumer, ether(6)));
      assert.equal(answer.status, 200);
      const exit: Json = await answer.json();
      assert.equal(exit.nonce, '0');
      decodeHubAnswer('instantExit', exit);
      // The same request again: the same signature.
      const again: Json = await (
        await post(running, '/v1/exits/instant', await exitRequest(consumer, ether(6)))
      ).json();
      assert.equal(again.signature, exit.signature);

      // The reservation is visible to the exchange rules: 1 is left to promise, 2 is too much.
      const { response: overspend } = await p.exchange(consumer, ether(5), ether(2));
      assert.equal(overspend.status, 409);
      assert.equal(((await overspend.json()) as Json).code, 'OVERSPEND');
      const books: Json = await (await fetch(`${running.url}/v1/consumers/${consumer.account.address}`)).json();
      assert.equal(books.available, ether(1).toString());

      await mined(
        instantExit(consumer, {
          hub: hubAddress,
          amount: BigInt(exit.amount),
          deadline: BigInt(exit.deadline),
          signature: exit.signature,
        }),
      );
      const channel = await getConsumerChannel(rpc, { hub: hubAddress, consumer: consumer.account.address });
      assert.equal(channel.balance, ether(1));
      // Once the follower applied the exit, the reservation is released.
      await until('the reservation released', async () => {
        const { rows } = await db.pool.query('SELECT exit_reserved::text FROM consumers WHERE address = $1', [
          toBytea(lower(consumer.account.address)),
        ]);
        return rows[0]?.exit_reserved === '0';
      });
    });

    it('co-signs an instant exit only of what the consumer has not signed for, the figure the books show', async () => {
      const db = await database();
      const running = await hub(settings(db));
      const consumer = await depositor(running, ether(10));
      const [a, b] = [provider(running), provider(running)];
      // Out of order: B's promise (consumer total 5, 2 of it for B) arrives before A's (total 3, for A).
      await b.pay(consumer, ether(5), ether(2));
      const view = async (): Promise<Json> =>
        (await fetch(`${running.url}/v1/consumers/${consumer.account.address}`)).json();
      const books = await view();
      assert.deepEqual([books.promised, books.credited, books.available], [ether(5), ether(2), ether(5)].map(String));
      // The consumer signed for 5: that much can be collected from it, so 5 is left, not 8.
      const refused = await post(running, '/v1/exits/instant', await exitRequest(consumer, ether(6)));
      assert.equal(refused.status, 409);
      const error: Json = await refused.json();
      assert.deepEqual(
        [error.code, error.details],
        ['OVERSPEND', { amount: ether(6).toString(), available: ether(5).toString() }],
      );
      const answer = await post(running, '/v1/exits/instant', await exitRequest(consumer, ether(5)));
      assert.equal(answer.status, 200);
      // A's promise is inside what the consumer signed: still credited, and nothing is left.
      await a.pay(consumer, ether(3), ether(3));
      assert.deepEqual([(await view()).credited, (await view()).available], [ether(5).toString(), '0']);
    });

    it('refuses an instant exit a consumer did not sign, or signed long ago, and reserves nothing', async () => {
      const db = await database();
      const running = await hub(settings(db));
      const consumer = await depositor(running, ether(10));
      const griefer = privateKeyToAccount(generatePrivateKey());

      const forged = await post(running, '/v1/exits/instant', await exitRequest(consumer, ether(10), griefer));
      assert.equal(forged.status, 400);
      assert.equal(((await forged.json()) as Json).code, 'INVALID_SIGNATURE');
      const hourAgo = BigInt(Math.floor(Date.now() / 1000) - 3600);
      const stale = await post(running, '/v1/exits/instant', await exitRequest(consumer, ether(10), consumer, hourAgo));
      assert.equal(stale.status, 400);
      assert.equal(((await stale.json()) as Json).code, 'STALE_REQUEST');
      const unsigned = await post(running, '/v1/exits/instant', { consumer: consumer.account.address, amount: '1' });
      assert.equal(unsigned.status, 400);
      assert.equal(((await unsigned.json()) as Json).code, 'MALFORMED');

      const { rows } = await db.pool.query(
        'SELECT exit_reserved::text, (SELECT count(*)::int FROM instant_exits) AS exits FROM consumers WHERE address = $1',
        [toBytea(lower(consumer.account.address))],
      );
      assert.deepEqual(rows, [{ exit_reserved: '0', exits: 0 }]);
      const books: Json = await (await fetch(`${running.url}/v1/consumers/${consumer.account.address}`)).json();
      assert.equal(books.available, ether(10).toString());
    });

    it("dates an instant exit's deadline from block time when the chain's clock runs ahead of the hub's", async () => {
      const db = await database();
      const running = await hub(settings(db, { INSTANT_EXIT_VALIDITY_SECONDS: '600' }));
      const consumer = await depositor(running, ether(10));
      // Block time 2,000 s ahead: a deadline of the hub's clock + 600 s would already have passed.
      await test().increaseTime({ seconds: 2_000 });
      await test().mine({ blocks: 1 });
      const head = await rpc.getBlock({ blockTag: 'latest' });

      const answer = await post(running, '/v1/exits/instant', await exitRequest(consumer, ether(4)));
      assert.equal(answer.status, 200);
      const exit: Json = await answer.json();
      assert.ok(
        BigInt(exit.deadline) >= head.timestamp + 600n,
        `deadline ${exit.deadline}, block time ${head.timestamp}`,
      );
      await mined(
        instantExit(consumer, {
          hub: hubAddress,
          amount: BigInt(exit.amount),
          deadline: BigInt(exit.deadline),
          signature: exit.signature,
        }),
      );
      const channel = await getConsumerChannel(rpc, { hub: hubAddress, consumer: consumer.account.address });
      assert.equal(channel.balance, ether(6));
    });
  });

  describe('provider settlements and the relayer', () => {
    it('relays a registration, quotes, and pays the beneficiary total - settled - hub fee - relayer fee, once', async () => {
      const db = await database();
      const running = await hub(settings(db));
      const identity = privateKeyToAccount(generatePrivateKey());
      const beneficiary = privateKeyToAccount(generatePrivateKey()).address;

      // The provider holds no gas token: the hub's relayer registers it, for the quoted fee the Registry
      // takes from its tokens (allowed through a permit someone else submits).
      await fundIdentity(await funded(), wallet(identity), { token, registry, tokens: ether(1), allowance: ether(1) });
      const registrationQuote = decodeHubAnswer(
        'relayQuote',
        await (await fetch(`${running.url}/v1/quotes/relay?kind=identity`)).json(),
      );
      // The registration names the hub's relayer, the only account the Registry takes it from.
      assert.equal(registrationQuote.relayer, privateKeyToAccount(chain.operatorKey).address);
      const registration = await signRegisterIdentity(wallet(identity), {
        registry,
        beneficiary,
        relayerFee: registrationQuote.relayerFee,
        relayer: registrationQuote.relayer,
      });
      const relayed = await post(running, '/v1/relay/identities', {
        identity: identity.address,
        beneficiary,
        relayerFee: registrationQuote.relayerFee.toString(),
        signature: registration.signature,
      });
      assert.equal(relayed.status, 202);
      const job: Json = await relayed.json();
      assert.deepEqual(Object.keys(job).sort(), ['id', 'status']);
      await until('the registration confirmed', async () => {
        const state: Json = await (await fetch(`${running.url}/v1/settlements/${job.id}`)).json();
        return state.status === 'confirmed' && state;
      });
      assert.equal(
        (await getProviderChannel(rpc, { hub: hubAddress, provider: identity.address })).beneficiary,
        beneficiary,
      );

      const consumer = await depositor(running, ether(20));
      const p = provider(running, identity);
      await p.pay(consumer, ether(4), ether(4));
      const latest = await p.pay(consumer, ether(10), ether(6));

      const quote: Json = await (
        await fetch(`${running.url}/v1/quotes/settlement?provider=${identity.address}`)
      ).json();
      decodeHubAnswer('settlementQuote', quote);
      assert.equal(quote.provider, identity.address);
      assert.equal(quote.amount, ether(10).toString());
      assert.equal(quote.hubFee, ((ether(10) * 100n) / 10_000n).toString());
      const gasPrice = BigInt(quote.gasPrice);
      assert.equal(BigInt(quote.relayerFee), (gasPrice * 84_000n * 12_000n + 9_999n) / 10_000n);
      assert.ok(BigInt(quote.validUntil) > BigInt(Math.floor(Date.now() / 1000)));
      // The hub's relayer, which the authorization must name: RELAYER_KEY's account, here OPERATOR_KEY's.
      assert.equal(quote.relayer, privateKeyToAccount(chain.operatorKey).address);

      const relayerFee = BigInt(quote.relayerFee);
      const latestPromise = {
        hub: hubAddress,
        chainId: 31337,
        provider: identity.address,
        total: BigInt(latest.total),
        hashlock: latest.hashlock,
      };
      const authorization = await signSettlementAuthorization(identity, latestPromise, relayerFee, quote.relayer);
      const before = await tokenBalance(beneficiary);
      const body = { provider: identity.address, relayerFee: relayerFee.toString(), authorization };
      const first = await post(running, '/v1/settlements', body);
      assert.equal(first.status, 202);
      const accepted: Json = await first.json();
      assert.equal(decodeHubAnswer('job', accepted).status, 'queued');

      // The hub's free funds are empty: the consumer settlement that backs the promise goes first.
      const settled = await until('the provider settlement confirmed', async () => {
        const state: Json = await (await fetch(`${running.url}/v1/settlements/${accepted.id}`)).json();
        return state.status === 'confirmed' && state;
      });
      decodeHubAnswer('settlement', settled);
      assert.equal(settled.kind, 'provider');
      assert.match(settled.txHash, /^0x[0-9a-f]{64}$/);
      assert.equal(settled.error, null);
      const hubFee = (ether(10) * 100n) / 10_000n;
      assert.equal((await tokenBalance(beneficiary)) - before, ether(10) - hubFee - relayerFee);
      const info = await rpc.readContract({ address: hubAddress, abi: hubAbi, functionName: 'isPunished' });
      assert.equal(info, false, 'paid from free funds, not the stake');

      // The same request again: the same settlement, nothing more on-chain.
      const repeat = await post(running, '/v1/settlements', body);
      assert.equal(repeat.status, 202);
      assert.deepEqual(await repeat.json(), { id: accepted.id, status: 'confirmed' });
      assert.equal((await settledEvents('ProviderSettled', identity.address)).length, 1);
      assert.equal((await settlementRows(db, 'provider', identity.address)).length, 1);

      // A request whose authorization is not the provider's is refused before anything is queued.
      const forged = await post(running, '/v1/settlements', { ...body, relayerFee: (relayerFee + 1n).toString() });
      assert.equal(forged.status, 400);
      assert.equal(((await forged.json()) as Json).code, 'INVALID_SIGNATURE');
      // So is one that names another relayer than the hub's: the Hub would refuse it from the hub's relayer.
      const elsewhere = await signSettlementAuthorization(identity, latestPromise, relayerFee, identity.address);
      const misnamed = await post(running, '/v1/settlements', { ...body, authorization: elsewhere });
      assert.equal(misnamed.status, 400);
      assert.equal(((await misnamed.json()) as Json).code, 'INVALID_SIGNATURE');
    });

    it('settles a provider over the threshold on the hub’s own account (policy)', async () => {
      const db = await database();
      const running = await hub(settings(db, { PROVIDER_SETTLEMENT_THRESHOLD: ether(1).toString() }));
      const consumer = await depositor(running, ether(10));
      const [over, under] = [provider(running), provider(running)];
      await over.pay(consumer, ether(2), ether(2));
      await under.pay(consumer, ether(2.5), ether(0.5));
      await running.context.settlement.scanner.collectDueConsumers();
      await allConfirmed(db, 'consumer', [consumer.account.address]);

      assert.equal(await running.context.settlement.scanner.collectDueProviders(), 1);
      const [row] = await allConfirmed(db, 'provider', [over.account.address]);
      assert.equal(row.amount, ether(2).toString());
      // No relayer fee: the provider (its own beneficiary) gets the amount less the hub fee.
      assert.equal(await tokenBalance(over.account.address), ether(2) - (ether(2) * 100n) / 10_000n);
      assert.deepEqual(await settlementRows(db, 'provider', under.account.address), []);
    });

    it('fails a job the contract will always refuse, with the reason, and does not retry it', async () => {
      const db = await database();
      // Gas free of charge: the hub relays beneficiary changes, for which the Registry pays no fee.
      const running = await hub(settings(db, { RELAYER_TOKENS_PER_WEI: '0' }));
      // An identity that never registered: setBeneficiaryFor reverts with RegistryIdentityNotRegistered.
      const identity = privateKeyToAccount(generatePrivateKey());
      const change = await signSetBeneficiary(wallet(identity), {
        registry,
        beneficiary: privateKeyToAccount(generatePrivateKey()).address,
      });
      const response = await post(running, '/v1/relay/beneficiaries', {
        identity: identity.address,
        beneficiary: change.beneficiary,
        signature: change.signature,
      });
      assert.equal(response.status, 202);
      const { id }: Json = await response.json();
      const failed: Json = await until('the settlement failed', async () => {
        const state: Json = await (await fetch(`${running.url}/v1/settlements/${id}`)).json();
        return state.status === 'failed' && state;
      });
      assert.equal(failed.txHash, null);
      // The Registry's custom error is the code a client branches on; the message says it for people.
      assert.deepEqual(decodeHubAnswer('settlement', failed).error, {
        code: 'RegistryIdentityNotRegistered',
        message: `${identity.address} is not registered`,
      });
      const [row] = (await db.pool.query('SELECT error, error_code FROM settlements WHERE id = $1', [id])).rows;
      assert.deepEqual(row, {
        error: `${identity.address} is not registered`,
        error_code: 'RegistryIdentityNotRegistered',
      });
      // The dead letter: the job is in the failed set after one attempt.
      const job = await running.context.settlement.queues.queue(QueueName.Relay).getJob(id);
      assert.equal(await job?.getState(), 'failed');
      assert.equal(job?.attemptsMade, 1);
      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM transactions');
      assert.equal(rows[0].n, 0, 'nothing was sent');
    });
  });

  describe('surviving restarts', () => {
    it('loses and repeats nothing when Redis restarts empty with jobs queued', async () => {
      const db = await database();
      const running = await hub(settings(db));
      const consumers = await Promise.all([1, 2, 3].map(() => depositor(running, ether(10))));
      const p = provider(running);
      for (const consumer of consumers) await p.pay(consumer, ether(2), ether(2));
      const queue = running.context.settlement.queues.queue(QueueName.ConsumerSettlement);

      // Two settlements queued in Redis, held there by pausing the queue.
      await queue.pause();
      await running.context.settlement.scanner.collectDueConsumers(lower(consumers[0]!.account.address));
      await running.context.settlement.scanner.collectDueConsumers(lower(consumers[1]!.account.address));
      assert.equal(await queue.count(), 2);

      // Redis goes away with them; a third settlement is recorded while it is down; Redis comes back empty.
      await redis.stop();
      await running.context.settlement.scanner.collectDueConsumers(lower(consumers[2]!.account.address));
      await redis.start();

      const addresses = consumers.map((c) => c.account.address);
      await allConfirmed(db, 'consumer', addresses);
      for (const address of addresses) {
        assert.equal((await settledEvents('ConsumerSettled', address)).length, 1);
        assert.equal((await settlementRows(db, 'consumer', address)).length, 1);
      }
    });

    it('loses and repeats nothing when the hub process is killed with a transaction in flight', async () => {
      const db = await database();
      const env = settings(db, { SETTLEMENT_SCAN_INTERVAL_MS: '300' });
      const first = await hub(env);
      const consumers = await Promise.all([1, 2].map(() => depositor(first, ether(10))));
      const p = provider(first);
      for (const consumer of consumers) await p.pay(consumer, ether(3), ether(3));
      await first.close();
      cleanups.pop();

      // The hub as its own process; blocks are mined only when the test says so. The follower of the
      // hubs below looks at the chain once, at start: the pipeline must conclude the batch by itself.
      env.FOLLOWER_POLL_MS = '3600000';
      await test().setAutomine(false);
      const port = await freePort();
      const child = spawn(
        process.execPath,
        ['-r', 'ts-node/register/transpile-only', path.join(__dirname, '..', 'src', 'main.ts'), 'start'],
        { env: { ...process.env, ...env, PORT: String(port) }, stdio: 'ignore', cwd: path.join(__dirname, '..') },
      );
      cleanups.push(async () => child.kill('SIGKILL'));
      const addresses = consumers.map((c) => c.account.address);
      const submitted = await until(
        'the batch submitted by the hub process',
        async () => {
          const rows = (await Promise.all(addresses.map((a) => settlementRows(db, 'consumer', a)))).flat();
          return rows.length === 2 && rows.every((row) => row.status === 'submitted') && rows;
        },
        30_000,
      );
      child.kill('SIGKILL');
      await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));

      // The transaction is in the node's pool, not mined. A new hub process takes over, then a block comes.
      const restarted = await hub(env);
      await sleep(500);
      await test().setAutomine(true);
      await test().mine({ blocks: 1 });
      const confirmed = await allConfirmed(db, 'consumer', addresses);
      assert.equal(confirmed[0].tx, submitted[0].tx);
      assert.equal(confirmed[1].tx, submitted[0].tx);
      for (const address of addresses) {
        assert.equal((await settledEvents('ConsumerSettled', address)).length, 1);
      }
      const { rows } = await db.pool.query(`SELECT encode(hash, 'hex') AS hash, status FROM transactions`);
      assert.deepEqual(rows, [{ hash: submitted[0].tx, status: 'mined' }], 'one transaction signed for the batch');
      // The jobs the killed process held run to completion in the new one.
      const queue = restarted.context.settlement.queues.queue(QueueName.ConsumerSettlement);
      await until(
        'the jobs done',
        async () => (await queue.getJobCounts('active', 'wait', 'delayed', 'failed')).active === 0,
      );
      assert.deepEqual(await queue.getJobCounts('active', 'wait', 'delayed', 'failed'), {
        active: 0,
        wait: 0,
        delayed: 0,
        failed: 0,
      });
    });

    it('replaces a transaction not mined in time with the same nonce and higher fees', async () => {
      const db = await database();
      const running = await hub(settings(db, { TX_RESUBMIT_AFTER_MS: '400', SETTLEMENT_BATCH_WINDOW_MS: '0' }));
      const consumer = await depositor(running, ether(10));
      await provider(running).pay(consumer, ether(1), ether(1));
      await test().setAutomine(false);
      await running.context.settlement.scanner.collectDueConsumers();
      await until('a replacement', async () => {
        const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM transactions');
        return rows[0].n >= 2;
      });
      await test().setAutomine(true);
      await test().mine({ blocks: 1 });
      const [row] = await allConfirmed(db, 'consumer', [consumer.account.address]);
      const { rows } = await db.pool.query(
        `SELECT encode(hash, 'hex') AS hash, nonce::int, status, max_fee_per_gas::numeric AS fee FROM transactions ORDER BY created_at`,
      );
      assert.equal(new Set(rows.map((r) => r.nonce)).size, 1, 'one nonce');
      assert.ok(BigInt(rows[1].fee) > BigInt(rows[0].fee));
      const minedRow = rows.find((r) => r.status === 'mined');
      assert.equal(row.tx, minedRow.hash);
      assert.equal((await settledEvents('ConsumerSettled', consumer.account.address)).length, 1);
    });
  });
});
