import assert from 'node:assert/strict';
import { ensureRedis, testTokenAbi } from '@chit/devstack';
import {
  cancelExit,
  deposit,
  finalizeExit,
  getConsumerChannel,
  hubAbi,
  instantExit,
  newHashlock,
  registerIdentity,
  requestExit,
  type SignedHubPromise,
  sealPreimage,
  setBeneficiary,
  settleConsumer,
  settleProvider,
  signConsumerPromise,
  signInstantExit,
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
  toHex,
} from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { startHub } from '../src/app';
import { ChainService } from '../src/chain/chain.service';
import { type ChainEventMap, ChainEvents } from '../src/chain/chain-events';
import { ChainFollower } from '../src/chain/follower/follower.service';
import { loadConfig } from '../src/config/config';
import { OperatorSigner } from '../src/crypto/operator-signer';
import { fromBytea, toBytea } from '../src/db/bytes';
import { ExchangeService } from '../src/exchange/exchange.service';
import { ChainRepository } from '../src/repositories/chain.repository';
import { ExchangeRepository, RevealRepository } from '../src/repositories/exchange.repository';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';

type TestDatabase = Awaited<ReturnType<typeof createTestDatabase>>;
type Recorded = { [K in keyof ChainEventMap]: { name: K; args: ChainEventMap[K][0] } }[keyof ChainEventMap];

const EVENT_NAMES: (keyof ChainEventMap)[] = [
  'deposited',
  'exitRequested',
  'exited',
  'consumerSettled',
  'providerSettled',
  'rewound',
];
const ether = (n: number | string) => parseEther(String(n));
const lower = (address: string) => address.toLowerCase() as `0x${string}`;

describe('chain follower', () => {
  let chain: Awaited<ReturnType<typeof startChain>>;
  let rpc: PublicClient;
  let hub: Address;
  let registry: Address;
  let token: Address;
  const databases: TestDatabase[] = [];
  const followers: ChainFollower[] = [];

  const test = () => createTestClient({ chain: foundry, mode: 'anvil', transport: http(chain.url) });
  const wallet = (account: PrivateKeyAccount) =>
    createWalletClient({ account, chain: foundry, transport: http(chain.url) });

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    hub = chain.deployment.hub.address as Address;
    registry = chain.deployment.registry.address as Address;
    token = chain.deployment.token.address as Address;
    rpc = createPublicClient({ chain: foundry, transport: http(chain.url) });
  });

  after(async () => {
    for (const follower of followers) await follower.stop();
    for (const db of databases) await db.drop();
    chain?.stop();
  });

  async function database(): Promise<TestDatabase> {
    const db = await createTestDatabase();
    databases.push(db);
    return db;
  }

  /** A follower of the test hub on `db` (a fresh database by default) and the events it emitted. */
  async function follower(confirmations: number, db?: TestDatabase) {
    const books = db ?? (await database());
    const events = new ChainEvents();
    const emitted: Recorded[] = [];
    for (const name of EVENT_NAMES) {
      events.on(name, ((args: unknown) => emitted.push({ name, args } as Recorded)) as never);
    }
    const instance = new ChainFollower(
      new ChainService(chain.url, hub).client,
      new ChainRepository(books.pool),
      events,
      {
        hub,
        registry,
        cursorId: 'test',
        confirmations,
        startBlock: 0n,
        pollMs: 50,
      },
    );
    followers.push(instance);
    return { follower: instance, db: books, pool: books.pool, emitted };
  }

  const mined = async (sent: Promise<{ hash: Hash }> | Promise<Hash>) => {
    const result = await sent;
    return waitForTransaction(rpc, { hash: typeof result === 'string' ? result : result.hash });
  };

  /** A fresh account with ETH and `tokens` test tokens. */
  async function funded(tokens = ether(100)) {
    const account = privateKeyToAccount(generatePrivateKey());
    await test().setBalance({ address: account.address, value: ether(10) });
    const operator = wallet(privateKeyToAccount(chain.operatorKey));
    await mined(
      operator.writeContract({
        address: token,
        abi: testTokenAbi,
        functionName: 'mint',
        args: [account.address, tokens],
      }),
    );
    return wallet(account);
  }

  const mine = (blocks: number) => test().mine({ blocks });

  // biome-ignore lint/suspicious/noExplicitAny: pg rows
  async function consumerRow(pool: TestDatabase['pool'], address: Address): Promise<any> {
    const { rows } = await pool.query(
      `SELECT balance::text, settled::text, exit_amount::text, extract(epoch FROM exit_ready_at)::bigint::text AS ready_at
         FROM consumers WHERE address = $1`,
      [toBytea(lower(address))],
    );
    return rows[0];
  }

  /** The consumer's channel as the contract has it, in the shape of {@link consumerRow}. */
  async function channelOnChain(address: Address) {
    const channel = await getConsumerChannel(rpc, { hub, consumer: address });
    return {
      balance: channel.balance.toString(),
      settled: channel.settled.toString(),
      exit_amount: (channel.exit?.amount ?? 0n).toString(),
      ready_at: channel.exit ? channel.exit.readyAt.toString() : null,
    };
  }

  const eventsFor = (emitted: Recorded[], who: Address) =>
    emitted.filter((e) => 'consumer' in e.args && e.args.consumer === lower(who));

  describe('deposits', () => {
    it('applies deposit and depositFor after CONFIRMATIONS blocks and not before', async () => {
      const { follower: f, pool, emitted } = await follower(2);
      await f.syncOnce();
      const consumer = await funded();
      const payer = await funded();
      const other = privateKeyToAccount(generatePrivateKey()).address;
      const own = await mined(deposit(consumer, { hub, amount: ether(10) }));

      // Applied once two blocks are on top of it, not before.
      assert.equal((await f.syncOnce()).block, own.blockNumber - 2n);
      assert.equal(await consumerRow(pool, consumer.account.address), undefined);
      await mine(1);
      await f.syncOnce();
      assert.equal(await consumerRow(pool, consumer.account.address), undefined);
      assert.deepEqual(eventsFor(emitted, consumer.account.address), []);
      await mine(1);
      await f.syncOnce();
      assert.deepEqual(await consumerRow(pool, consumer.account.address), {
        balance: ether(10).toString(),
        settled: '0',
        exit_amount: '0',
        ready_at: null,
      });
      assert.deepEqual(eventsFor(emitted, consumer.account.address), [
        {
          name: 'deposited',
          args: {
            consumer: lower(consumer.account.address),
            amount: ether(10),
            balance: ether(10),
            block: own.blockNumber,
          },
        },
      ]);

      // depositFor: the payer pays into another consumer's channel, which gets a row of its own.
      const forOther = await mined(deposit(payer, { hub, amount: ether(4), consumer: other }));
      await mine(1);
      await f.syncOnce();
      assert.equal(await consumerRow(pool, other), undefined);
      await mine(1);
      await f.syncOnce();
      assert.equal((await consumerRow(pool, other)).balance, ether(4).toString());
      assert.equal(await consumerRow(pool, payer.account.address), undefined);
      assert.deepEqual(eventsFor(emitted, other), [
        {
          name: 'deposited',
          args: { consumer: lower(other), amount: ether(4), balance: ether(4), block: forOther.blockNumber },
        },
      ]);
    });
  });

  describe('exits', () => {
    it('records an exit request, its cancellation, a finalized exit and an instant exit', async () => {
      const { follower: f, pool, emitted } = await follower(0);
      const consumer = await funded();
      const address = consumer.account.address;
      await mined(deposit(consumer, { hub, amount: ether(10) }));
      const requested = await mined(requestExit(consumer, { hub, amount: ether(4) }));
      await f.syncOnce();
      const onChain = await channelOnChain(address);
      assert.ok(onChain.ready_at !== null);
      assert.deepEqual(await consumerRow(pool, address), onChain);
      assert.equal((await consumerRow(pool, address)).exit_amount, ether(4).toString());
      assert.deepEqual(eventsFor(emitted, address).slice(1), [
        {
          name: 'exitRequested',
          args: {
            consumer: lower(address),
            amount: ether(4),
            readyAt: BigInt(onChain.ready_at),
            block: requested.blockNumber,
          },
        },
      ]);

      await mined(cancelExit(consumer, { hub }));
      await f.syncOnce();
      assert.deepEqual(await consumerRow(pool, address), {
        balance: ether(10).toString(),
        settled: '0',
        exit_amount: '0',
        ready_at: null,
      });
      assert.equal(eventsFor(emitted, address).length, 2, 'a cancellation emits nothing');

      await mined(requestExit(consumer, { hub, amount: ether(3) }));
      await test().increaseTime({ seconds: Number(chain.deployment.parameters.exitDelay) + 1 });
      await mine(1);
      const finalized = await mined(finalizeExit(consumer, { hub }));
      const nonce = await rpc.readContract({ address: hub, abi: hubAbi, functionName: 'nonces', args: [address] });
      const deadline = (await rpc.getBlock()).timestamp + 600n;
      const signature = await signInstantExit(privateKeyToAccount(chain.operatorKey), {
        hub,
        chainId: foundry.id,
        consumer: address,
        amount: ether(2),
        nonce,
        deadline,
      });
      const instant = await mined(instantExit(consumer, { hub, amount: ether(2), deadline, signature }));
      await f.syncOnce();
      assert.deepEqual(await consumerRow(pool, address), {
        balance: ether(5).toString(),
        settled: '0',
        exit_amount: '0',
        ready_at: null,
      });
      assert.deepEqual(
        eventsFor(emitted, address).filter((e) => e.name === 'exited'),
        [
          { name: 'exited', args: { consumer: lower(address), amount: ether(3), block: finalized.blockNumber } },
          { name: 'exited', args: { consumer: lower(address), amount: ether(2), block: instant.blockNumber } },
        ],
      );
    });
  });

  describe('settlements', () => {
    const operator = () => new OperatorSigner(chain.operatorKey);

    /** A consumer with a channel the follower has seen, and a hub promise the hub's exchange issued. */
    async function exchanged(pool: TestDatabase['pool'], f: ChainFollower, total: bigint) {
      const consumer = await funded();
      await mined(deposit(consumer, { hub, amount: ether(10) }));
      await f.syncOnce();
      const provider = privateKeyToAccount(generatePrivateKey());
      const signer = operator();
      const exchange = new ExchangeService(
        { hub, chainId: foundry.id },
        new ExchangeRepository(pool),
        new RevealRepository(pool),
        signer,
        { maxBatch: 16, concurrency: 1 },
      );
      const { preimage, hashlock } = newHashlock();
      const promise = await signConsumerPromise(consumer.account, {
        hub,
        chainId: foundry.id,
        consumer: consumer.account.address,
        total,
        hashlock,
        agreement: { provider: provider.address, id: keccak256(toHex(provider.address)), total },
      });
      const { hubPromise } = await exchange.exchange({
        promise,
        encryptedPreimage: sealPreimage(signer.publicKey, preimage),
      });
      // The hub learns R from the box at exchange time; to see the follower learn it from a settlement,
      // forget it, as a hub of an earlier version (which did not open boxes then) would not know it.
      await pool.query('UPDATE exchanges SET preimage = NULL WHERE hashlock = $1', [toBytea(hashlock)]);
      await pool.query('UPDATE providers SET unrevealed_hashlock = $2 WHERE address = $1', [
        toBytea(provider.address.toLowerCase()),
        toBytea(hashlock),
      ]);
      return { consumer, provider, promise, hubPromise: hubPromise as SignedHubPromise, preimage, hashlock };
    }

    // biome-ignore lint/suspicious/noExplicitAny: pg rows
    const exchangeRow = async (pool: TestDatabase['pool'], hashlock: Hex): Promise<any> =>
      (
        await pool.query(
          `SELECT e.preimage, p.settled::text AS provider_settled, p.unrevealed_hashlock
             FROM exchanges e JOIN providers p ON p.address = e.provider WHERE e.hashlock = $1`,
          [toBytea(hashlock)],
        )
      ).rows[0];

    it('moves a consumer settlement into the books and learns R from it', async () => {
      const { follower: f, pool, emitted } = await follower(0);
      const { consumer, promise, preimage, hashlock } = await exchanged(pool, f, ether(3));
      assert.equal((await exchangeRow(pool, hashlock)).preimage, null);
      const relayer = await funded(0n);
      const receipt = await mined(settleConsumer(relayer, { promise, preimage }));
      await f.syncOnce();
      const address = consumer.account.address;
      assert.deepEqual(await consumerRow(pool, address), await channelOnChain(address));
      assert.equal((await consumerRow(pool, address)).settled, ether(3).toString());
      assert.equal((await consumerRow(pool, address)).balance, ether(7).toString());
      const row = await exchangeRow(pool, hashlock);
      assert.equal(fromBytea(row.preimage), preimage);
      assert.equal(row.unrevealed_hashlock, null);
      assert.deepEqual(eventsFor(emitted, address).slice(1), [
        {
          name: 'consumerSettled',
          args: {
            consumer: lower(address),
            total: ether(3),
            amount: ether(3),
            preimage,
            txHash: receipt.transactionHash,
            block: receipt.blockNumber,
          },
        },
      ]);
    });

    it('learns R and the settled total from a provider settlement made by someone else', async () => {
      const { follower: f, pool, emitted } = await follower(0);
      const { provider, hubPromise, preimage, hashlock } = await exchanged(pool, f, ether(2));
      assert.equal(fromBytea((await exchangeRow(pool, hashlock)).unrevealed_hashlock), hashlock);
      // Free funds to pay from, so that the hub is not punished for the other tests.
      const funder = await funded();
      await mined(
        funder.writeContract({ address: token, abi: testTokenAbi, functionName: 'approve', args: [hub, ether(5)] }),
      );
      await mined(funder.writeContract({ address: hub, abi: hubAbi, functionName: 'addFreeFunds', args: [ether(5)] }));
      const relayer = await funded(0n);
      const fee = ether('0.01');
      const authorization = await signSettlementAuthorization(provider, hubPromise, fee, relayer.account.address);
      const receipt = await mined(
        settleProvider(relayer, { promise: hubPromise, preimage, relayer: { fee, authorization } }),
      );
      await f.syncOnce();
      const row = await exchangeRow(pool, hashlock);
      assert.equal(fromBytea(row.preimage), preimage);
      assert.equal(row.provider_settled, ether(2).toString());
      assert.equal(row.unrevealed_hashlock, null);
      const settled = emitted.filter((e) => e.name === 'providerSettled');
      assert.deepEqual(settled, [
        {
          name: 'providerSettled',
          args: {
            provider: lower(provider.address),
            total: ether(2),
            amount: ether(2),
            preimage,
            txHash: receipt.transactionHash,
            block: receipt.blockNumber,
          },
        },
      ]);
    });
  });

  describe('identities', () => {
    it('records registrations and beneficiary changes', async () => {
      const { follower: f, pool } = await follower(0);
      const identity = await funded(0n);
      const [first, second] = [privateKeyToAccount(generatePrivateKey()), privateKeyToAccount(generatePrivateKey())];
      const beneficiary = async () =>
        (
          await pool.query('SELECT beneficiary FROM identities WHERE address = $1', [
            toBytea(lower(identity.account.address)),
          ])
        ).rows.map((row) => fromBytea(row.beneficiary));
      await mined(registerIdentity(identity, { registry, beneficiary: first.address }));
      await f.syncOnce();
      assert.deepEqual(await beneficiary(), [lower(first.address)]);
      await mined(setBeneficiary(identity, { registry, beneficiary: second.address }));
      await f.syncOnce();
      assert.deepEqual(await beneficiary(), [lower(second.address)]);
    });
  });

  describe('reorgs', () => {
    /** The chain-side columns of the books, and the cursor: what two followers of one chain must agree on. */
    async function chainBooks(pool: TestDatabase['pool']) {
      const consumers = await pool.query(
        `SELECT encode(address, 'hex') AS address, balance::text, settled::text, exit_amount::text, exit_ready_at
           FROM consumers ORDER BY address`,
      );
      const cursor = await pool.query('SELECT block::text, encode(block_hash, $1) AS hash FROM chain_cursor', ['hex']);
      return { consumers: consumers.rows, cursor: cursor.rows };
    }

    it('rewinds to the last common block and leaves the books as the new chain has them', async () => {
      const { follower: f, pool, emitted } = await follower(0);
      const [a, c] = [await funded(), await funded()];
      await f.syncOnce();
      const fork = (await rpc.getBlock()).number;
      const snapshot = await test().snapshot();

      await mined(deposit(a, { hub, amount: ether(5) }));
      await mined(deposit(c, { hub, amount: ether(7) }));
      await f.syncOnce();
      assert.equal((await consumerRow(pool, a.account.address)).balance, ether(5).toString());
      assert.equal((await consumerRow(pool, c.account.address)).balance, ether(7).toString());

      // The other branch: a different deposit by A, none by C, and a longer chain.
      await test().revert({ id: snapshot });
      const replaced = await mined(deposit(a, { hub, amount: ether(3) }));
      await mine(3);
      const before = emitted.length;
      const result = await f.syncOnce();
      assert.deepEqual(result.rewoundTo, [fork]);
      assert.deepEqual(emitted.slice(before), [
        { name: 'rewound', args: { block: fork } },
        {
          name: 'deposited',
          args: {
            consumer: lower(a.account.address),
            amount: ether(3),
            balance: ether(3),
            block: replaced.blockNumber,
          },
        },
      ]);
      assert.deepEqual(await consumerRow(pool, a.account.address), await channelOnChain(a.account.address));
      assert.equal((await consumerRow(pool, a.account.address)).balance, ether(3).toString());
      assert.equal(
        await consumerRow(pool, c.account.address),
        undefined,
        'the row only the old branch created is gone',
      );
      const head = await rpc.getBlock();
      assert.equal(result.block, head.number);

      // A follower that never saw the old branch keeps exactly the same books.
      const { follower: fresh, pool: freshPool } = await follower(0);
      await fresh.syncOnce();
      assert.deepEqual(await chainBooks(pool), await chainBooks(freshPool));
      assert.equal((await chainBooks(pool)).cursor[0].hash, head.hash.slice(2));

      // A branch shorter than the one the follower applied: the cursor's block is gone altogether.
      const shortFork = (await rpc.getBlock()).number;
      const shortSnapshot = await test().snapshot();
      await mined(deposit(c, { hub, amount: ether(1) }));
      await mined(requestExit(a, { hub, amount: ether(2) }));
      await mine(2);
      await f.syncOnce();
      assert.equal((await consumerRow(pool, c.account.address)).balance, ether(1).toString());
      assert.equal((await consumerRow(pool, a.account.address)).exit_amount, ether(2).toString());
      await test().revert({ id: shortSnapshot });
      assert.deepEqual((await f.syncOnce()).rewoundTo, [shortFork]);
      assert.equal(await consumerRow(pool, c.account.address), undefined);
      assert.deepEqual(await consumerRow(pool, a.account.address), await channelOnChain(a.account.address));
      assert.equal((await consumerRow(pool, a.account.address)).exit_amount, '0');
      assert.deepEqual(await chainBooks(pool), await chainBooks(freshPool));
    });
  });

  describe('restarts and crashes', () => {
    it('resumes from its cursor without applying anything twice', async () => {
      const { follower: first, db, pool, emitted } = await follower(0);
      const consumer = await funded();
      await mined(deposit(consumer, { hub, amount: ether(4) }));
      await first.syncOnce();
      assert.equal(eventsFor(emitted, consumer.account.address).length, 1);
      const checkpoints = async () => (await pool.query('SELECT count(*)::int AS n FROM chain_checkpoints')).rows[0].n;
      const journal = await checkpoints();

      const { follower: second, emitted: again } = await follower(0, db);
      assert.deepEqual(await second.syncOnce(), { block: (await rpc.getBlock()).number, ranges: 0, rewoundTo: [] });
      assert.deepEqual(again, []);
      assert.equal(await checkpoints(), journal);

      const topUp = await mined(deposit(consumer, { hub, amount: ether(1) }));
      await second.syncOnce();
      assert.deepEqual(again, [
        {
          name: 'deposited',
          args: {
            consumer: lower(consumer.account.address),
            amount: ether(1),
            balance: ether(5),
            block: topUp.blockNumber,
          },
        },
      ]);
      assert.equal((await consumerRow(pool, consumer.account.address)).balance, ether(5).toString());
      assert.equal(eventsFor(emitted, consumer.account.address).length, 1);
    });

    it('commits a range together with its cursor or not at all', async () => {
      const { follower: f, pool, emitted } = await follower(0);
      await f.syncOnce();
      const cursor = (await pool.query('SELECT block, block_hash FROM chain_cursor')).rows[0];
      const consumer = await funded();
      await mined(deposit(consumer, { hub, amount: ether(6) }));
      // A failure at the very end of the transaction, after the books were written.
      await pool.query(`CREATE FUNCTION fail() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'crash before commit'; END $$`);
      await pool.query('CREATE TRIGGER crash BEFORE UPDATE ON chain_cursor FOR EACH ROW EXECUTE FUNCTION fail()');
      await assert.rejects(f.syncOnce(), /crash before commit/);
      assert.equal(await consumerRow(pool, consumer.account.address), undefined);
      assert.deepEqual((await pool.query('SELECT block, block_hash FROM chain_cursor')).rows[0], cursor);
      assert.deepEqual(eventsFor(emitted, consumer.account.address), []);

      await pool.query('DROP TRIGGER crash ON chain_cursor');
      await f.syncOnce();
      assert.equal((await consumerRow(pool, consumer.account.address)).balance, ether(6).toString());
      assert.equal(eventsFor(emitted, consumer.account.address).length, 1);
    });

    it('lets two followers share one database and apply each range once', async () => {
      const db = await database();
      const [one, two] = [await follower(0, db), await follower(0, db)];
      await one.follower.syncOnce();
      const consumer = await funded();
      await mined(deposit(consumer, { hub, amount: ether(2) }));
      await Promise.all([one.follower.syncOnce(), two.follower.syncOnce()]);
      const both = [
        ...eventsFor(one.emitted, consumer.account.address),
        ...eventsFor(two.emitted, consumer.account.address),
      ];
      assert.equal(both.length, 1);
      assert.equal((await consumerRow(db.pool, consumer.account.address)).balance, ether(2).toString());
    });
  });

  describe('in the hub', () => {
    it('is started by startHub and applies deposits by itself', async () => {
      const db = await database();
      const redis = await ensureRedis();
      const running = await startHub(
        loadConfig({
          DATABASE_URL: db.url,
          REDIS_URL: redis.url,
          RPC_URL: chain.url,
          HUB_ADDRESS: hub,
          OPERATOR_KEY: chain.operatorKey,
          PORT: '0',
          LOG_LEVEL: 'silent',
          QUEUE_PREFIX: queuePrefix(redis.url, 'follower'),
          CONFIRMATIONS: '0',
          FOLLOWER_POLL_MS: '50',
        }),
      );
      try {
        const consumer = await funded();
        await mined(deposit(consumer, { hub, amount: ether(8) }));
        const deadline = Date.now() + 10_000;
        let books: { balance?: string } = {};
        while (Date.now() < deadline) {
          const response = await fetch(`${running.url}/v1/consumers/${consumer.account.address}`);
          if (response.status === 200) {
            books = (await response.json()) as { balance: string };
            break;
          }
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(books.balance, ether(8).toString());
      } finally {
        await running.close();
        await redis.stop();
      }
    });
  });
});
