import assert from 'node:assert/strict';
import {
  finalizeExit,
  hubAbi,
  instantExit,
  type Prices,
  requestExit,
  settleProvider,
  signInstantExitRequest,
} from '@chit/sdk';
import { type Address, parseEther, parseEventLogs } from 'viem';
import { cost, feeOf, sum } from './support/figures';
import type { Link } from './support/session';
import { type Consumer, type Provider, type Stack, startStack, until } from './support/stack';

const ether = (value: string) => parseEther(value);

// The main scenario of issue #6: three consumers, three providers, sessions paying several providers at
// once, the hub's settlement pipeline, both kinds of provider settlement and both kinds of exit. Each
// `it` is one stage; the figures they check are computed here from prices, simulated time and traffic.
describe('lifecycle: deposit, pay, settle, exit', function () {
  this.timeout(120_000);

  const prices = {
    perMinute: { perMinute: ether('0.012'), perGiB: 0n },
    perGiB: { perMinute: 0n, perGiB: ether('0.05') },
    both: { perMinute: ether('0.007'), perGiB: ether('0.03') },
  } satisfies Record<string, Prices>;
  const minted = { a: ether('100'), b: ether('100'), c: ether('10') };
  const deposits = { a: ether('5'), b: ether('4'), c: ether('3') };
  const registrationFee = ether('0.001');
  /** Simulated time between two rounds of payments: at least the invoice interval (30 s). */
  const rounds = [30_000, 47_123, 60_000, 31_500, 90_000, 45_001];
  const elapsedMs = rounds.reduce((a, b) => a + b, 0);

  let stack: Stack;
  let a: Consumer;
  let b: Consumer;
  let c: Consumer;
  let p1: Provider;
  let p2: Provider;
  let p3: Provider;
  let stakeAtStart: bigint;
  const links: { link: Link; consumer: Consumer; provider: Provider; prices: Prices; bytes: bigint }[] = [];
  /** The expected agreement totals, summed by party. */
  const owed = new Map<Address, bigint>();
  const totalOf = (party: { address: Address }) => owed.get(party.address) ?? 0n;
  let relayerFee = 0n;

  before(async () => {
    stack = await startStack({
      hubEnv: { SETTLEMENT_SCAN_INTERVAL_MS: '500', SETTLEMENT_BATCH_WINDOW_MS: '400' },
    });
    const figures = await stack.read.hubFigures();
    assert.equal(figures.freeFunds, 0n);
    assert.equal(figures.tokenBalance, figures.stake);
    stakeAtStart = figures.stake;
  });

  after(async () => {
    await stack?.stop();
  });

  it('three consumers deposit: plain, with a permit, and with a permit a sponsor submits (no gas)', async () => {
    a = await stack.newConsumer({ tokens: minted.a, deposit: deposits.a, via: 'deposit' });
    b = await stack.newConsumer({ tokens: minted.b, deposit: deposits.b, via: 'permit' });
    c = await stack.newConsumer({ tokens: minted.c, deposit: deposits.c, via: 'relayed-permit' });
    assert.equal(await stack.read.ethBalance(c.address), 0n, 'consumer c never held gas');
    for (const [consumer, amount] of [
      [a, deposits.a],
      [b, deposits.b],
      [c, deposits.c],
    ] as const) {
      assert.deepEqual(await stack.read.consumerChannel(consumer.address), {
        balance: amount,
        settled: 0n,
        exit: null,
      });
      const books = await stack.hub.client.consumer(consumer.address);
      assert.equal(books.balance, amount);
      assert.equal(books.available, amount);
    }
  });

  it('three providers register their beneficiaries, one through the hub relayer without gas', async () => {
    p1 = await stack.newProvider({ register: 'direct' });
    p2 = await stack.newProvider({ register: 'direct' });
    p3 = await stack.newProvider({ register: 'relayed', registrationFee });
    assert.equal(await stack.read.ethBalance(p3.address), 0n, 'provider p3 never held gas');
    for (const provider of [p1, p2, p3]) {
      assert.equal(await stack.read.beneficiaryOf(provider.address), provider.beneficiary);
    }
    assert.equal(await stack.read.tokenBalance(p3.address), 0n, 'p3 paid its registration fee');
    assert.equal(await stack.read.tokenBalance(stack.relayer.address), registrationFee);
  });

  it('sessions: each consumer pays several providers at once, every payment exchanged at the hub', async () => {
    const plan: [Consumer, Provider, Prices][] = [
      [a, p1, prices.perMinute],
      [a, p2, prices.perGiB],
      [a, p3, prices.both],
      [b, p2, prices.perGiB],
      [b, p3, prices.both],
      [c, p1, prices.perMinute],
      [c, p3, prices.both],
    ];
    for (const [consumer, provider, price] of plan) {
      links.push({
        link: stack.connect(consumer, provider, { prices: price }),
        consumer,
        provider,
        prices: price,
        bytes: 0n,
      });
    }
    for (const [round, ms] of rounds.entries()) {
      stack.clock.advance(ms);
      links.forEach((entry, i) => {
        // Odd amounts of traffic, different on every link and round.
        const bytes = BigInt((round + 1) * (i + 3)) * 7_654_321n + BigInt(i * 131 + round * 17 + 1);
        entry.bytes += bytes;
        entry.link.traffic(bytes);
      });
      const paid = await Promise.all(links.map(({ link }) => link.step()));
      for (const [i, { hubPromise }] of paid.entries()) {
        // Its own hub promise, or the one the hub signed for a batch of the provider's exchanges of this
        // round (sign: 'latest'): another payment's, whose total covers this one.
        const provider = links[i]!.provider;
        const own = paid.find(
          (other, k) => links[k]!.provider === provider && other.invoice.hashlock === hubPromise.hashlock,
        );
        assert.ok(own, 'the hub promise carries an invoice hashlock of the provider, this round');
        assert.deepEqual(own.hubPromise, hubPromise, 'the same hub promise as the payment whose hashlock it carries');
        assert.equal(hubPromise.provider, provider.address);
      }
    }
    for (const entry of links) {
      const total = cost(entry.prices, elapsedMs, entry.bytes);
      assert.ok(total > 0n);
      assert.equal(entry.link.provider.paid, total, 'the agreement is paid exactly what its time and traffic cost');
      for (const party of [entry.consumer, entry.provider]) owed.set(party.address, totalOf(party) + total);
      entry.link.close();
    }
    // Each consumer's cumulative total, as it signed it and as the hub credited it.
    for (const consumer of [a, b, c]) {
      assert.equal(await consumer.ledger.total(), totalOf(consumer));
      const books = await stack.hub.client.consumer(consumer.address);
      assert.equal(books.credited, totalOf(consumer));
      assert.equal(books.latestPromise?.total, totalOf(consumer));
    }
    // Each provider's latest hub promise: everything the hub owes it.
    for (const provider of [p1, p2, p3]) {
      const { hubPromise } = await provider.ledger.latest();
      assert.equal(hubPromise?.total, totalOf(provider));
      const books = await stack.hub.client.provider(provider.address);
      assert.equal(books.earned, totalOf(provider));
      assert.equal(books.unsettled, totalOf(provider));
    }
    assert.equal(sum([a, b, c].map(totalOf)), sum([p1, p2, p3].map(totalOf)));
  });

  it('the hub collects the consumer promises on-chain, in batches', async () => {
    for (const consumer of [a, b, c]) {
      await until(`consumer ${consumer.address} settled on-chain`, async () => {
        return (await stack.read.consumerChannel(consumer.address)).settled === totalOf(consumer);
      });
    }
    for (const [consumer, amount] of [
      [a, deposits.a],
      [b, deposits.b],
      [c, deposits.c],
    ] as const) {
      assert.deepEqual(await stack.read.consumerChannel(consumer.address), {
        balance: amount - totalOf(consumer),
        settled: totalOf(consumer),
        exit: null,
      });
    }
    assert.equal((await stack.read.hubFigures()).freeFunds, sum([a, b, c].map(totalOf)));
    // At least one transaction carried several consumers' promises: the last round's, collected together.
    const { rows } = await stack.db.query<{ hash: Buffer; claims: number }>(
      `SELECT hash, claims FROM transactions WHERE kind = 'consumer' AND status = 'mined' ORDER BY claims DESC LIMIT 1`,
    );
    assert.ok(rows[0] && rows[0].claims >= 2, `a batch of several consumer claims (largest: ${rows[0]?.claims})`);
    const receipt = await stack.chain.rpc.getTransactionReceipt({ hash: `0x${rows[0].hash.toString('hex')}` });
    const settled = parseEventLogs({ abi: hubAbi, eventName: 'ConsumerSettled', logs: receipt.logs });
    assert.equal(settled.length, rows[0].claims);
  });

  it('providers settle: one on-chain itself, one through the hub relayer for a quoted fee', async () => {
    // p1 claims its latest hub promise with its R, paying its own gas.
    const latest = await p1.ledger.latest();
    await stack.chain.send(settleProvider(p1.wallet, { promise: latest.hubPromise!, preimage: latest.preimage! }));
    assert.equal(await stack.read.providerSettled(p1.address), totalOf(p1));
    assert.equal(await stack.read.tokenBalance(p1.beneficiary), totalOf(p1) - feeOf(totalOf(p1), stack.hubFee));

    // p2 asks for a quote and has the hub's relayer settle for the quoted fee.
    const quote = await p2.hub.settlementQuote(p2.address);
    assert.equal(quote.amount, totalOf(p2));
    assert.equal(quote.hubFee, feeOf(totalOf(p2), stack.hubFee));
    assert.ok(quote.relayerFee > 0n);
    relayerFee = quote.relayerFee;
    const job = await p2.ledger.settle(relayerFee);
    const done = await until('the relayed provider settlement', async () => {
      const status = await p2.hub.settlement(job.id);
      return status.status === 'confirmed' || status.status === 'failed' ? status : undefined;
    });
    assert.equal(done.status, 'confirmed', done.error?.message ?? '');
    assert.ok(done.txHash);
    assert.equal(await stack.read.providerSettled(p2.address), totalOf(p2));
    assert.equal(
      await stack.read.tokenBalance(p2.beneficiary),
      totalOf(p2) - feeOf(totalOf(p2), stack.hubFee) - relayerFee,
    );
    assert.equal(await stack.read.tokenBalance(stack.relayer.address), registrationFee + relayerFee);

    // The hub learns of both settlements from the chain.
    for (const provider of [p1, p2]) {
      await until(`the hub to see ${provider.address} settled`, async () => {
        const books = await stack.hub.client.provider(provider.address);
        return books.settled === totalOf(provider) && books.unsettled === 0n;
      });
    }
    const books = await stack.hub.client.provider(p3.address);
    assert.equal(books.settled, 0n);
    assert.equal(books.unsettled, totalOf(p3));
  });

  it('consumer b leaves at once with the hub co-signature', async () => {
    const amount = deposits.b - totalOf(b);
    const info = await stack.hub.client.info();
    const request = await signInstantExitRequest(b.account, {
      hub: info.hub,
      chainId: info.chainId,
      consumer: b.address,
      amount,
      issuedAt: BigInt(Math.floor(Date.now() / 1000)),
    });
    const cosigned = await stack.hub.client.instantExit(request);
    assert.equal(cosigned.amount, amount);
    await stack.chain.send(
      instantExit(b.wallet, {
        hub: stack.chain.hub,
        amount,
        deadline: cosigned.deadline,
        signature: cosigned.signature,
      }),
    );
    assert.deepEqual(await stack.read.consumerChannel(b.address), { balance: 0n, settled: totalOf(b), exit: null });
  });

  it('consumer a leaves alone through the timelocked exit', async () => {
    const amountLeft = deposits.a - totalOf(a);
    await stack.chain.send(requestExit(a.wallet, { hub: stack.chain.hub, amount: amountLeft }));
    await until('the hub to see the exit request', async () => {
      return (await stack.hub.client.consumer(a.address)).pendingExit?.amount === amountLeft;
    });
    await stack.chain.increaseTime(BigInt(stack.chain.deployment.parameters.exitDelay) + 1n);
    const exiting = finalizeExit(a.wallet, { hub: stack.chain.hub });
    await stack.chain.send(exiting);
    const { amount } = await exiting;
    assert.equal(amount, deposits.a - totalOf(a));
    assert.deepEqual(await stack.read.consumerChannel(a.address), { balance: 0n, settled: totalOf(a), exit: null });
  });

  it('every balance is what prices, time and traffic say, to the wei', async () => {
    const fee = (party: Provider) => feeOf(totalOf(party), stack.hubFee);
    // Consumers: wallets and channels.
    assert.equal(await stack.read.tokenBalance(a.address), minted.a - totalOf(a));
    assert.equal(await stack.read.tokenBalance(b.address), minted.b - totalOf(b));
    assert.equal(await stack.read.tokenBalance(c.address), minted.c - deposits.c);
    assert.deepEqual(await stack.read.consumerChannel(c.address), {
      balance: deposits.c - totalOf(c),
      settled: totalOf(c),
      exit: null,
    });
    // Providers: beneficiaries, on-chain settled totals, the relayer.
    assert.equal(await stack.read.tokenBalance(p1.beneficiary), totalOf(p1) - fee(p1));
    assert.equal(await stack.read.tokenBalance(p2.beneficiary), totalOf(p2) - fee(p2) - relayerFee);
    assert.equal(await stack.read.tokenBalance(p3.beneficiary), 0n);
    for (const provider of [p1, p2, p3]) assert.equal(await stack.read.tokenBalance(provider.address), 0n);
    assert.equal(await stack.read.providerSettled(p3.address), 0n);
    assert.equal(await stack.read.tokenBalance(stack.relayer.address), registrationFee + relayerFee);
    // The hub: free funds are what consumers paid less what providers were paid out; stake untouched.
    const consumersPaid = sum([a, b, c].map(totalOf));
    const freeFunds = consumersPaid - (totalOf(p1) - fee(p1)) - (totalOf(p2) - fee(p2));
    const figures = await stack.read.hubFigures();
    assert.deepEqual(figures, {
      freeFunds,
      stake: stakeAtStart,
      stakeOwed: 0n,
      punished: false,
      tokenBalance: deposits.c - totalOf(c) + stakeAtStart + freeFunds,
    });
    // The hub's books agree with the chain.
    await until('the books to follow the exits', async () => {
      const [booksA, booksB] = await Promise.all([a, b].map((x) => stack.hub.client.consumer(x.address)));
      return booksA!.balance === 0n && booksB!.balance === 0n && booksA!.pendingExit === null;
    });
    const booksC = await stack.hub.client.consumer(c.address);
    assert.equal(booksC.balance, deposits.c - totalOf(c));
    assert.equal(booksC.settled, totalOf(c));
    assert.equal(booksC.available, deposits.c - totalOf(c));
  });
});
