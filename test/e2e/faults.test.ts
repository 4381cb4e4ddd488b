import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { HubUnreachableError, hubAbi, type Prices, settleProvider } from '@chit/sdk';
import { FileStore } from '@chit/sdk/node';
import { type Address, type Hex, keccak256, parseEther, parseEventLogs } from 'viem';
import { FaultyFetch } from './support/faulty-fetch';
import { cost, feeOf, sum } from './support/figures';
import { RedisServer } from './support/redis-server';
import type { Link } from './support/session';
import { type Consumer, type Provider, type Stack, startStack, until } from './support/stack';
import { TcpProxy } from './support/tcp-proxy';

const ether = (value: string) => parseEther(value);
const SECOND = 1_000;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bytea = (address: Address | Hex) => Buffer.from(address.slice(2).toLowerCase(), 'hex');

/** Runs `task` and returns what it threw, checking its class; fails if it did not throw. */
async function rejection<E extends Error>(task: Promise<unknown>, type: abstract new (...args: never[]) => E) {
  try {
    await task;
  } catch (error) {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected a ${type.name}, but it succeeded`);
}

// Issue #6, faults: the hub killed mid-session, Redis lost with settlements queued, a reorg under a
// settlement, the RPC cut for a while, a provider that lost its store. Each test uses fresh parties on
// one stack, makes the fault happen for real (a SIGKILL, a redis-server of its own killed, evm_revert,
// a TCP proxy cut, a wiped directory), and ends with the same books check as attacks.test.ts: every
// balance on-chain and in the hub's books is what prices, simulated time and traffic say, to the wei,
// and no one was paid or credited twice.
describe('faults', function () {
  this.timeout(120_000);
  const prices = {
    time: { perMinute: ether('0.011'), perGiB: 0n },
    traffic: { perMinute: 0n, perGiB: ether('0.037') },
    both: { perMinute: ether('0.006'), perGiB: ether('0.021') },
  } satisfies Record<string, Prices>;

  let stack: Stack;
  let stakeAtStart: bigint;
  /** The hub's settings of the stack, which each test starts from. */
  let baseline: Record<string, string>;
  const cleanups: (() => Promise<unknown>)[] = [];

  before(async () => {
    stack = await startStack({ hubEnv: { SETTLEMENT_SCAN_INTERVAL_MS: '500', SETTLEMENT_BATCH_WINDOW_MS: '300' } });
    stakeAtStart = (await stack.read.hubFigures()).stake;
    baseline = { ...stack.hub.env };
  });

  afterEach(async () => {
    // The hub back on its own settings (and running) before the test's Redis or proxy goes away.
    await useHub().catch(() => {});
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
  });

  after(async () => {
    await stack?.stop();
  });

  /** The hub running with the stack's settings and `overrides`; restarted only when they differ. */
  async function useHub(overrides: Record<string, string> = {}) {
    const wanted = { ...baseline, ...overrides };
    const same = Object.entries(wanted).every(([key, value]) => stack.hub.env[key] === value);
    if (same && stack.hub.running) return;
    if (stack.hub.running) await stack.hub.stop();
    stack.hub.env = wanted;
    await stack.hub.start();
  }

  /** Mines a block every `ms` while `task` runs (the hub waits for confirmations). */
  async function whileMining<T>(task: Promise<T>, ms = 150): Promise<T> {
    let done = false;
    const miner = (async () => {
      while (!done) {
        await stack.chain.mine(1);
        await sleep(ms);
      }
    })();
    try {
      return await task;
    } finally {
      done = true;
      await miner;
    }
  }

  /** `GET /ready` as it answers: status and checks. */
  async function ready() {
    const response = await fetch(`${stack.hub.url}/ready`, { signal: AbortSignal.timeout(10_000) });
    const body = (await response.json()) as {
      checks: { postgres: boolean; redis: boolean; rpc: boolean; follower: boolean };
    };
    return { status: response.status, checks: body.checks };
  }

  /** The hub's consumer settlements of `consumer`, oldest first. */
  async function consumerSettlements(consumer: Address) {
    const { rows } = await stack.db.query<{ id: string; status: string; tx: string | null; amount: string }>(
      `SELECT id, status, '0x' || encode(tx_hash, 'hex') AS tx, amount::text FROM settlements
        WHERE kind = 'consumer' AND subject = $1 ORDER BY created_at`,
      [bytea(consumer)],
    );
    return rows;
  }

  /** The ConsumerSettled / ProviderSettled events of `who` on the canonical chain. */
  async function settledEvents(eventName: 'ConsumerSettled' | 'ProviderSettled', who: Address) {
    const logs = await stack.chain.rpc.getLogs({ address: stack.chain.hub, fromBlock: 0n, toBlock: 'latest' });
    return parseEventLogs({ abi: hubAbi, logs, eventName }).filter((log) => {
      const args = log.args as { consumer?: Address; provider?: Address };
      return (args.consumer ?? args.provider)?.toLowerCase() === who.toLowerCase();
    }) as unknown as { args: { total: bigint; amount: bigint; relayerFee?: bigint } }[];
  }

  /** A session between `consumer` and `provider`, with what it must cost. */
  interface Session {
    link: Link;
    consumer: Consumer;
    provider: Provider;
    prices: Prices;
    ms: number;
    bytes: bigint;
  }

  function open(consumer: Consumer, provider: Provider, price: Prices): Session {
    const link = stack.connect(consumer, provider, { prices: price, intervalMs: 30 * SECOND });
    return { link, consumer, provider, prices: price, ms: 0, bytes: 0n };
  }

  /** Simulated time passes and every session carries some traffic (odd amounts, different on each). */
  function elapse(sessions: Session[], ms: number) {
    stack.clock.advance(ms);
    sessions.forEach((session, i) => {
      const bytes = BigInt((i + 2) * 9_876_543 + ms * (i + 1)) + 7n;
      session.ms += ms;
      session.bytes += bytes;
      session.link.traffic(bytes);
    });
  }

  /** What the session must have been paid: its whole time and traffic at its prices, rounded down once. */
  const due = (session: Session) => cost(session.prices, session.ms, session.bytes);

  /** One full payment on every session: invoice, promise, exchange. */
  async function payAll(sessions: Session[]) {
    for (const session of sessions) {
      const { invoice, hubPromise } = await session.link.step();
      assert.equal(invoice.agreementTotal, due(session), 'the invoice asks what time and traffic cost');
      assert.equal(hubPromise.hashlock, invoice.hashlock);
    }
  }

  /** What each party is owed across `sessions`. */
  function totals(sessions: Session[]) {
    const owed = new Map<Address, bigint>();
    for (const session of sessions) {
      assert.equal(session.link.provider.paid, due(session), 'the session is paid exactly what it cost');
      for (const party of [session.consumer, session.provider]) {
        owed.set(party.address, (owed.get(party.address) ?? 0n) + due(session));
      }
    }
    return (party: { address: Address }) => owed.get(party.address) ?? 0n;
  }

  interface ConsumerOutcome {
    consumer: Consumer;
    /** Everything it deposited. */
    deposit: bigint;
    /** What the hub credited, so what it must collect. */
    paid: bigint;
  }

  interface ProviderOutcome {
    provider: Provider;
    earned: bigint;
    /** Settlements made already in the test (relayed or its own), each paying `amount` newly settled. */
    settled?: { amount: bigint; relayerFee: bigint }[];
  }

  /**
   * The books check every test ends with. The hub credited exactly what was paid and collects exactly
   * that on-chain; each provider holds a hub promise for exactly its earnings and settles what is left
   * of it itself; every beneficiary got its earnings less the hub fee (and relayer fees), each channel
   * and wallet moved by exactly that, the hub's free funds, stake and token balance too; the hub's books
   * agree; and the events show every wei settled once: no consumer collected twice, no provider paid twice.
   */
  async function settleAndCheck(
    before: Awaited<ReturnType<Stack['read']['hubFigures']>>,
    relayerBefore: bigint,
    consumers: ConsumerOutcome[],
    providers: ProviderOutcome[],
  ) {
    for (const { consumer, paid } of consumers) {
      const books = await stack.hub.client.consumer(consumer.address);
      assert.equal(books.credited, paid, 'the hub credited exactly the payments made');
      assert.equal(await consumer.ledger.total(), paid, 'the consumer signed exactly that in all');
      await until(
        `the hub to collect ${paid} from ${consumer.address}`,
        async () => (await stack.read.consumerChannel(consumer.address)).settled === paid,
        45_000,
      );
    }
    let payouts = 0n;
    let relayerFees = 0n;
    for (const { provider, earned, settled = [] } of providers) {
      const { hubPromise, preimage } = await provider.ledger.latest();
      assert.equal(hubPromise?.total ?? 0n, earned, 'the provider holds a hub promise for exactly its earnings');
      const books = await stack.hub.client.provider(provider.address);
      assert.equal(books.earned, earned, 'the hub owes it exactly that');
      const { rows } = await stack.db.query<{ n: string }>(
        'SELECT coalesce(sum(increment), 0)::text AS n FROM exchanges WHERE provider = $1',
        [bytea(provider.address)],
      );
      assert.equal(BigInt(rows[0]!.n), earned, 'the increments credited add up to its earnings: none twice');
      const already = sum(settled.map((s) => s.amount));
      const payments = [...settled];
      if (earned > already) {
        await stack.chain.send(settleProvider(provider.wallet, { promise: hubPromise!, preimage: preimage! }));
        payments.push({ amount: earned - already, relayerFee: 0n });
      }
      const payout = sum(payments.map((p) => p.amount - feeOf(p.amount, stack.hubFee) - p.relayerFee));
      assert.equal(await stack.read.tokenBalance(provider.beneficiary), payout, 'the beneficiary is paid exactly');
      assert.equal(await stack.read.providerSettled(provider.address), earned);
      const events = await settledEvents('ProviderSettled', provider.address);
      assert.deepEqual(
        events.map((e) => [e.args.amount, e.args.relayerFee]),
        payments.map((p) => [p.amount, p.relayerFee]),
        'each settlement paid once',
      );
      payouts += payout;
      relayerFees += sum(payments.map((p) => p.relayerFee));
    }
    for (const { consumer, deposit, paid } of consumers) {
      assert.deepEqual(await stack.read.consumerChannel(consumer.address), {
        balance: deposit - paid,
        settled: paid,
        exit: null,
      });
      assert.equal(await stack.read.tokenBalance(consumer.address), consumer.tokens - deposit);
      const events = await settledEvents('ConsumerSettled', consumer.address);
      assert.equal(sum(events.map((e) => e.args.amount)), paid, 'the hub collected every wei once');
    }
    const collected = sum(consumers.map((c) => c.paid));
    const deposited = sum(consumers.map((c) => c.deposit));
    assert.deepEqual(await stack.read.hubFigures(), {
      freeFunds: before.freeFunds + collected - payouts - relayerFees,
      stake: stakeAtStart,
      stakeOwed: 0n,
      punished: false,
      tokenBalance: before.tokenBalance + deposited - payouts - relayerFees,
    });
    assert.equal(await stack.read.tokenBalance(stack.relayer.address), relayerBefore + relayerFees);
    // The hub's books follow the chain (a block now and then for a hub that waits for confirmations).
    await until('the hub books to agree with the chain', async () => {
      for (const { consumer, deposit, paid } of consumers) {
        const books = await stack.hub.client.consumer(consumer.address);
        if (books.balance !== deposit - paid || books.settled !== paid) return stack.chain.mine(1).then(() => false);
      }
      for (const { provider, earned } of providers) {
        const books = await stack.hub.client.provider(provider.address);
        if (books.settled !== earned || books.unsettled !== 0n) return stack.chain.mine(1).then(() => false);
      }
      return true;
    });
    for (const { consumer } of consumers) {
      for (const row of await consumerSettlements(consumer.address)) {
        assert.equal(row.status, 'confirmed', `settlement ${row.id} is ${row.status}`);
      }
    }
  }

  async function startFigures() {
    return [await stack.read.hubFigures(), await stack.read.tokenBalance(stack.relayer.address)] as const;
  }

  it('the hub is SIGKILLed mid-session and restarted: providers send again, nothing lost or credited twice', async () => {
    await useHub();
    const [before, relayerBefore] = await startFigures();
    const deposit = ether('2');
    const a = await stack.newConsumer({ deposit });
    const b = await stack.newConsumer({ deposit });
    const wire1 = new FaultyFetch();
    const wire2 = new FaultyFetch();
    const p1 = await stack.newProvider({ fetch: wire1.fetch });
    const p2 = await stack.newProvider({ fetch: wire2.fetch });
    const sessions = [open(a, p1, prices.time), open(a, p2, prices.both), open(b, p2, prices.traffic)];
    const [ap1, ap2, bp2] = sessions as [Session, Session, Session];
    for (const ms of [30 * SECOND, 41 * SECOND]) {
      elapse(sessions, ms);
      await payAll(sessions);
    }

    // Round 3. Every consumer pays; p2's exchange is answered, then the hub dies right after it answered
    // p1's exchange (an answer p1 never gets), and b's payment to p2 never reaches it.
    elapse(sessions, 37 * SECOND);
    const invoiceOf = async (session: Session) => {
      const invoice = await session.link.invoice();
      assert.ok(invoice, 'an invoice is due');
      return invoice;
    };
    const [i1, i2, i3] = [await invoiceOf(ap1), await invoiceOf(ap2), await invoiceOf(bp2)];
    const promise1 = await ap1.link.pay(i1);
    const promise2 = await ap2.link.pay(i2);
    const promise3 = await bp2.link.pay(i3);

    const hubPromise2 = await ap2.link.deliver(promise2);
    assert.equal(hubPromise2.hashlock, i2.hashlock);
    wire1.once('/v1/exchange', async (forward) => {
      await (await forward()).text(); // the hub committed the exchange and answered...
      await stack.hub.kill('SIGKILL'); // ...and dies before the answer gets out
      throw new TypeError('fetch failed: connection reset');
    });
    await rejection(ap1.link.deliver(promise1), HubUnreachableError);
    assert.equal(stack.hub.running, false, 'the hub was killed');
    await rejection(bp2.link.deliver(promise3), HubUnreachableError);

    // The hub comes back. Each provider sends again, byte for byte, the exchange it got no answer for.
    await stack.hub.start();
    const mark1 = wire1.mark();
    const mark2 = wire2.mark();
    const again1 = await ap1.link.deliver(promise1);
    assert.equal(again1.total, due(ap1), 'the exchange the hub applied before dying is answered, not applied again');
    // Sent again byte for byte: every exchange request p1 made for that promise is the same.
    const sent1 = wire1.requests.filter((r) => r.path === '/v1/exchange' && sameHashlock(r.body, i1.hashlock));
    assert.ok(sent1.length >= 2 && wire1.requests.slice(mark1).some((r) => sent1.includes(r)));
    assert.equal(new Set(sent1.map((r) => JSON.stringify(r.body))).size, 1, 'the very same request');
    const again3 = await bp2.link.deliver(promise3);
    assert.equal(again3.total, due(ap2) + due(bp2));
    // The hub learnt p2's R of round 3 from its box, before it signed and died: nothing to reveal.
    const sentAgain3 = wire2.requests.slice(mark2).filter((r) => r.path === '/v1/exchange');
    assert.equal(sentAgain3.length, 1);
    assert.equal((sentAgain3[0]!.body as { previousPreimage?: Hex }).previousPreimage, undefined);
    assert.ok(!wire2.requests.some((r) => r.path === '/v1/reveal'), 'p2 never reveals R apart');
    const known = await stack.db.query<{ preimage: Buffer | null }>(
      'SELECT preimage FROM exchanges WHERE hashlock = $1',
      [bytea(i2.hashlock)],
    );
    assert.equal(keccak256(`0x${known.rows[0]!.preimage!.toString('hex')}`), i2.hashlock.toLowerCase());

    for (const ms of [30 * SECOND, 52 * SECOND]) {
      elapse(sessions, ms);
      await payAll(sessions);
    }
    for (const session of sessions) session.link.close();
    const totalOf = totals(sessions);
    const { rows } = await stack.db.query<{ n: number }>(
      'SELECT count(*)::int AS n FROM exchanges WHERE provider = ANY($1)',
      [[bytea(p1.address), bytea(p2.address)]],
    );
    assert.equal(rows[0]!.n, 3 * 5, 'one exchange in the books per payment');
    await settleAndCheck(
      before,
      relayerBefore,
      [
        { consumer: a, deposit, paid: totalOf(a) },
        { consumer: b, deposit, paid: totalOf(b) },
      ],
      [
        { provider: p1, earned: totalOf(p1) },
        { provider: p2, earned: totalOf(p2) },
      ],
    );
  });

  it('Redis is killed with settlements queued and comes back empty: the reconciler settles everything once', async () => {
    const redis = await RedisServer.start();
    cleanups.push(() => redis.kill());
    // The consumer settlements wait out a long batch window in the hub while Redis holds their jobs.
    await useHub({ REDIS_URL: redis.url, SETTLEMENT_BATCH_WINDOW_MS: '8000' });
    const [before, relayerBefore] = await startFigures();
    const deposit = ether('1');
    const c1 = await stack.newConsumer({ deposit });
    const c2 = await stack.newConsumer({ deposit });
    const p = await stack.newProvider();
    const sessions = [open(c1, p, prices.both), open(c2, p, prices.time)];
    for (const ms of [30 * SECOND, 44 * SECOND]) {
      elapse(sessions, ms);
      await payAll(sessions);
    }
    const firstTotals = sessions.map(due);
    // The scan found each consumer's totals as it paid (one settlement per total found); none sent yet.
    const queued = await until('the consumer settlements queued, waiting for their batch', async () => {
      const rows = [...(await consumerSettlements(c1.address)), ...(await consumerSettlements(c2.address))];
      const found = firstTotals.every((total) => rows.some((row) => BigInt(row.amount) === total));
      return found && rows.every((row) => row.status === 'queued') && rows;
    });
    const jobs = await redis.keys(`${stack.redis.prefix}:*`);
    for (const row of queued) {
      assert.ok(
        jobs.some((key) => key.endsWith(`:${row.id}`)),
        `Redis holds job ${row.id}`,
      );
    }

    // Redis dies with the jobs. Meanwhile exchanges go on, and the provider asks for a relayed settlement:
    // the hub records it, and cannot enqueue it.
    await redis.kill();
    elapse(sessions, 33 * SECOND);
    await payAll(sessions);
    const quote = await p.hub.settlementQuote(p.address);
    assert.equal(quote.amount, sum(sessions.map(due)));
    const job = await p.ledger.settle(quote.relayerFee);
    assert.equal((await p.hub.settlement(job.id)).status, 'queued');

    // Redis comes back empty, within the batch window: the reconciler enqueues the open settlements again.
    await redis.restart();
    await until('the lost jobs enqueued again', async () => {
      const keys = await redis.keys(`${stack.redis.prefix}:*`);
      return [...queued.map((row) => row.id), job.id].every((id) => keys.some((key) => key.endsWith(`:${id}`)));
    });
    const settlementsNow = [...(await consumerSettlements(c1.address)), ...(await consumerSettlements(c2.address))];
    assert.ok(
      settlementsNow.filter((row) => queued.some((q) => q.id === row.id)).every((row) => row.status === 'queued'),
      'the first settlements were still waiting for their batch when their jobs came back',
    );
    assert.equal((await ready()).status, 200);

    const done = await until(
      'the relayed provider settlement',
      async () => {
        const status = await p.hub.settlement(job.id);
        return status.status === 'confirmed' || status.status === 'failed' ? status : undefined;
      },
      45_000,
    );
    assert.equal(done.status, 'confirmed', done.error?.message ?? '');
    for (const session of sessions) session.link.close();
    const totalOf = totals(sessions);
    for (const [i, consumer] of [c1, c2].entries()) {
      const rows = await until(`${consumer.address} collected in full`, async () => {
        const rows = await consumerSettlements(consumer.address);
        return rows.length > 0 && rows.every((row) => row.status === 'confirmed') && rows;
      });
      // One settlement per total the scan found, each in one transaction at most.
      assert.ok(rows.some((row) => BigInt(row.amount) === firstTotals[i]));
    }
    await settleAndCheck(
      before,
      relayerBefore,
      [
        { consumer: c1, deposit, paid: totalOf(c1) },
        { consumer: c2, deposit, paid: totalOf(c2) },
      ],
      [{ provider: p, earned: totalOf(p), settled: [{ amount: quote.amount, relayerFee: quote.relayerFee }] }],
    );
  });

  // The hub's Redis client queues commands while Redis is away (jobs survive a restart), so the
  // readiness check bounds every dependency's answer (HealthService) rather than waiting for Redis.
  it('GET /ready answers 503 with redis false while Redis is down, and 200 once it is back', async () => {
    const redis = await RedisServer.start();
    cleanups.push(() => redis.kill());
    await useHub({ REDIS_URL: redis.url });
    assert.deepEqual(await ready(), {
      status: 200,
      checks: { postgres: true, redis: true, rpc: true, follower: true },
    });
    await redis.kill();
    const startedAt = Date.now();
    const answer = await ready().catch((error: Error) => error);
    assert.ok(!(answer instanceof Error), `no answer from /ready after ${Date.now() - startedAt} ms: ${answer}`);
    assert.deepEqual(answer, { status: 503, checks: { postgres: true, redis: false, rpc: true, follower: true } });
    await redis.restart();
    await until('/ready again', async () => (await ready()).status === 200);
  });

  describe('a chain reorg during settlement', () => {
    it('within CONFIRMATIONS: the follower rewinds, the dropped settlement is broadcast again and confirmed once', async () => {
      const [before, relayerBefore] = await startFigures();
      const c = await stack.newConsumer({ deposit: ether('1') });
      const d = await stack.newConsumer({ deposit: ether('1') });
      const p = await stack.newProvider();
      // From here the hub applies a block, and counts a transaction confirmed, with 2 blocks on top.
      await useHub({ CONFIRMATIONS: '2' });
      const snapshot = await stack.chain.snapshot();

      // A block the follower applies: d tops its channel up.
      await whileMining(d.deposit(ether('0.5')));
      assert.equal(await stack.booksBalance(d.address), ether('1.5'));

      // c pays p; the hub collects c's promise, and the block with its transaction is mined, not confirmed.
      // One payment: the hub's scan runs every 500 ms, and one between payments would settle a part.
      const session = open(c, p, prices.both);
      elapse([session], 106 * SECOND);
      await payAll([session]);
      const paid = due(session);
      const mined = await until('the consumer settlement mined, one block short of its confirmations', async () => {
        const [row] = await consumerSettlements(c.address);
        if (row?.status !== 'submitted' || !row.tx) return undefined;
        const receipt = await stack.chain.rpc.getTransactionReceipt({ hash: row.tx as Hex }).catch(() => undefined);
        return receipt && { hash: row.tx, block: receipt.blockNumber };
      });
      assert.equal((await stack.read.consumerChannel(c.address)).settled, paid);
      assert.equal((await consumerSettlements(c.address))[0]!.status, 'submitted');

      // The reorg: the chain goes back to before the top-up; the top-up and the settlement are gone.
      await stack.chain.revert(snapshot);
      assert.ok((await stack.chain.rpc.getBlockNumber()) < mined.block, 'the block with the settlement is gone');
      assert.equal((await stack.read.consumerChannel(d.address)).balance, ether('1'));
      await until(
        'the follower to rewind the top-up',
        async () => (await stack.booksBalance(d.address)) === ether('1'),
      );

      // The hub broadcasts the same signed transaction again; blocks on top confirm it.
      const confirmed = await until('the settlement confirmed on the new chain', async () => {
        const [row] = await consumerSettlements(c.address);
        if (row?.status === 'confirmed') return row;
        await stack.chain.mine(1);
        return undefined;
      });
      assert.equal(confirmed.tx, mined.hash, 'the same transaction, broadcast again');
      assert.equal((await consumerSettlements(c.address)).length, 1);
      assert.equal((await stack.read.consumerChannel(c.address)).settled, paid);

      // On the new chain d tops up by another amount: the books follow the new chain, not the old one.
      await whileMining(d.deposit(ether('0.25')));
      session.link.close();
      await settleAndCheck(
        before,
        relayerBefore,
        [
          { consumer: c, deposit: ether('1'), paid },
          { consumer: d, deposit: ether('1.25'), paid: 0n },
        ],
        [{ provider: p, earned: paid }],
      );
    });

    /**
     * A reorg takes away the block of a consumer settlement; the hub must collect the promise again.
     * `applied`: the hub counted the settlement confirmed and the follower applied its block before the
     * reorg (so it must rewind it too); else the block is the head, which neither counts yet.
     */
    async function reorgUnderSettlement(confirmations: number, applied: boolean) {
      const [before, relayerBefore] = await startFigures();
      const c = await stack.newConsumer({ deposit: ether('1') });
      const p = await stack.newProvider();
      await useHub({ CONFIRMATIONS: String(confirmations) });
      const snapshot = await stack.chain.snapshot();
      // One payment: the hub's scans (every 500 ms) would collect a promise between two, which is another story.
      const session = open(c, p, prices.time);
      elapse([session], 75 * SECOND);
      await payAll([session]);
      const paid = due(session);
      const row = await until('the hub to settle the promise', async () => {
        const [first] = await consumerSettlements(c.address);
        const receipt =
          first?.tx && first.tx !== '0x'
            ? await stack.chain.rpc.getTransactionReceipt({ hash: first.tx as Hex }).catch(() => undefined)
            : undefined;
        return receipt && first;
      });
      const receipt = await stack.chain.rpc.getTransactionReceipt({ hash: row.tx as Hex });
      const depth = () => stack.chain.rpc.getBlockNumber().then((head) => head - receipt.blockNumber + 1n);
      if (applied) {
        await until('the hub to count it confirmed and the follower to apply it', async () => {
          const [now] = await consumerSettlements(c.address);
          const books = await stack.hub.client.consumer(c.address);
          return (now?.status === 'confirmed' && books.settled === paid) || stack.chain.mine(1).then(() => false);
        });
      } else {
        assert.equal(await depth(), 1n, 'the settlement is in the head block, with nothing on top');
        await sleep(SECOND);
        assert.equal(
          (await consumerSettlements(c.address))[0]!.status,
          'submitted',
          `not counted confirmed with fewer than CONFIRMATIONS=${confirmations} blocks on top`,
        );
        assert.equal((await stack.hub.client.consumer(c.address)).settled, 0n, 'the follower has not applied it');
      }
      const reorged = await depth();
      await stack.chain.revert(snapshot);
      await until('the books to follow the new chain', async () => {
        return (await stack.hub.client.consumer(c.address)).settled === 0n;
      });
      const collected = await until(
        'the hub to collect the promise again',
        async () => {
          if ((await stack.read.consumerChannel(c.address)).settled === paid) return true;
          await stack.chain.mine(1);
          return false;
        },
        15_000,
      ).catch(() => false);
      if (!collected) {
        const [after] = await consumerSettlements(c.address);
        const still = await stack.chain.rpc.getTransactionReceipt({ hash: after!.tx as Hex }).catch(() => null);
        const books = await stack.hub.client.consumer(c.address);
        assert.fail(
          `not collected again after the reorg: settlement ${after!.id} is ${after!.status} with tx ${after!.tx} ` +
            `(at depth ${reorged} when the reorg took it), which the chain ${still ? 'has' : 'no longer has'}; the books ` +
            `say settled ${books.settled} of credited ${books.credited}; settled on-chain ` +
            `${(await stack.read.consumerChannel(c.address)).settled}`,
        );
      }
      assert.equal((await consumerSettlements(c.address)).length, 1, 'one settlement of the promise');
      session.link.close();
      await settleAndCheck(
        before,
        relayerBefore,
        [{ consumer: c, deposit: ether('1'), paid }],
        [{ provider: p, earned: paid }],
      );
    }

    // A transaction counts as confirmed with CONFIRMATIONS blocks on top of its block, the depth at which
    // the follower applies it; a settlement a reorg takes away after that is found again (the follower's
    // `rewound`, and the reconciler) and sent again, as the same settlement.
    it('a one-block reorg with CONFIRMATIONS=1 takes away a settlement in the head block: not counted confirmed, collected again', async () => {
      await reorgUnderSettlement(1, false);
    });

    it('deeper than CONFIRMATIONS: the follower rewinds a settlement the hub confirmed; collected again, once', async () => {
      await reorgUnderSettlement(1, true);
    });
  });

  it('the RPC is unreachable for a while: /ready says so, exchanges go on, settlements complete after', async () => {
    const anvil = new URL(stack.chain.url);
    const proxy = await TcpProxy.start({ host: anvil.hostname, port: Number(anvil.port) });
    cleanups.push(() => proxy.close());
    await useHub({ RPC_URL: proxy.url });
    const [before, relayerBefore] = await startFigures();
    const deposit = ether('1');
    const c1 = await stack.newConsumer({ deposit });
    const c2 = await stack.newConsumer({ deposit });
    const p = await stack.newProvider();
    const sessions = [open(c1, p, prices.traffic), open(c2, p, prices.both)];
    for (const ms of [30 * SECOND, 38 * SECOND]) {
      elapse(sessions, ms);
      await payAll(sessions);
    }
    const early = sessions.map(due);
    for (const [i, consumer] of [c1, c2].entries()) {
      await until(
        'the first settlements, through the proxy',
        async () => (await stack.read.consumerChannel(consumer.address)).settled === early[i],
      );
    }
    assert.ok(proxy.connections > 0, 'the hub reaches the chain through the proxy');

    // The link to the node is cut: the hub's connections are reset and new ones refused.
    await proxy.cut();
    const unready = await until('/ready to say rpc false', async () => {
      const answer = await ready();
      return answer.status === 503 && answer;
    });
    assert.deepEqual(unready.checks, { postgres: true, redis: true, rpc: false, follower: true });
    // Sessions go on meanwhile; the new payments are due for settlement, and cannot be settled.
    for (const ms of [30 * SECOND, 47 * SECOND, 35 * SECOND]) {
      elapse(sessions, ms);
      await payAll(sessions);
    }
    await sleep(2_000); // several scans of the due consumers, all failing
    for (const [i, consumer] of [c1, c2].entries()) {
      assert.equal((await stack.read.consumerChannel(consumer.address)).settled, early[i]);
    }
    assert.deepEqual((await ready()).checks, { postgres: true, redis: true, rpc: false, follower: true });

    await proxy.restore();
    const back = await until('/ready again', async () => {
      const answer = await ready();
      return answer.status === 200 && answer;
    });
    assert.deepEqual(back.checks, { postgres: true, redis: true, rpc: true, follower: true });
    for (const session of sessions) session.link.close();
    const totalOf = totals(sessions);
    await settleAndCheck(
      before,
      relayerBefore,
      [
        { consumer: c1, deposit, paid: totalOf(c1) },
        { consumer: c2, deposit, paid: totalOf(c2) },
      ],
      [{ provider: p, earned: totalOf(p) }],
    );
  });

  it('a provider that loses its store mid-session recovers its latest hub promise and R, and is paid all it earned', async () => {
    await useHub();
    const [before, relayerBefore] = await startFigures();
    const directory = mkdtempSync(path.join(tmpdir(), 'chit-e2e-provider-'));
    cleanups.push(async () => rmSync(directory, { recursive: true, force: true }));
    const deposit = ether('1');
    const consumer = await stack.newConsumer({ deposit });
    const wire = new FaultyFetch();
    const provider = await stack.newProvider({ store: new FileStore(directory), fetch: wire.fetch });
    const first = open(consumer, provider, prices.both);
    for (const ms of [30 * SECOND, 40 * SECOND, 50 * SECOND]) {
      elapse([first], ms);
      await payAll([first]);
    }
    // The last payment: the hub credits it, but no answer reaches the provider...
    elapse([first], 33 * SECOND);
    const invoice = await first.link.invoice();
    assert.ok(invoice);
    const promise = await first.link.pay(invoice);
    wire.always('/v1/exchange', async (forward) => {
      await (await forward()).text();
      throw new TypeError('fetch failed: connection reset');
    });
    await rejection(first.link.deliver(promise), HubUnreachableError);
    wire.clear('/v1/exchange');
    first.link.close();
    // ...and then its disk is gone.
    rmSync(directory, { recursive: true, force: true });
    const earnedBefore = due(first);

    // It starts again with the same identity on an empty store: the ledger asks the hub (signed recovery).
    const again = await stack.newProvider({
      key: provider.key,
      register: 'none',
      beneficiary: provider.beneficiary,
      gas: false,
      store: new FileStore(directory),
      fetch: wire.fetch,
    });
    const mark = wire.mark();
    await again.ledger.open();
    assert.deepEqual(
      wire.requests.slice(mark).map((r) => r.path),
      ['/v1/info', '/v1/recovery'],
      'recovered; the hub knows R, so nothing is revealed',
    );
    const recovered = await again.ledger.latest();
    assert.equal(recovered.hubPromise?.total, earnedBefore, 'the promise for the unanswered payment included');
    assert.equal(recovered.hubPromise?.hashlock, invoice.hashlock);
    assert.ok(recovered.preimage);
    assert.equal(keccak256(recovered.preimage), invoice.hashlock.toLowerCase(), 'R, opened from the box it sent');
    assert.deepEqual((await again.ledger.recover())?.hubPromise, recovered.hubPromise, 'recovery is repeatable');

    // Once the hub has collected the consumer promises behind it (a claim beyond the hub's free funds
    // would come out of its stake), it settles what it recovered, and is paid exactly that.
    await until(
      'the hub to collect the consumer promises',
      async () => (await stack.read.consumerChannel(consumer.address)).settled === earnedBefore,
    );
    await stack.chain.send(
      settleProvider(again.wallet, { promise: recovered.hubPromise!, preimage: recovered.preimage }),
    );
    assert.equal(await stack.read.tokenBalance(provider.beneficiary), earnedBefore - feeOf(earnedBefore, stack.hubFee));

    // And it serves the consumer again in a new session; its hub promises go on from the recovered total.
    const second = open(consumer, again, prices.time);
    for (const ms of [30 * SECOND, 42 * SECOND]) {
      elapse([second], ms);
      const { hubPromise } = await second.link.step();
      assert.equal(hubPromise.total, earnedBefore + due(second));
    }
    second.link.close();
    const earned = earnedBefore + due(second);
    await settleAndCheck(
      before,
      relayerBefore,
      [{ consumer, deposit, paid: earned }],
      [{ provider: again, earned, settled: [{ amount: earnedBefore, relayerFee: 0n }] }],
    );
  });
});

function sameHashlock(body: unknown, hashlock: Hex): boolean {
  const promise = (body as { promise?: { hashlock?: string } } | undefined)?.promise;
  return promise?.hashlock?.toLowerCase() === hashlock.toLowerCase();
}
