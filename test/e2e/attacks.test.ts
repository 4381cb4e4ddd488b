import assert from 'node:assert/strict';
import {
  ConsumerLedger,
  chitTokenAbi,
  finalizeExit,
  HubError,
  type Invoice,
  MemoryStore,
  newHashlock,
  OverchargeError,
  type Prices,
  PromiseRejectedError,
  registryAbi,
  requestExit,
  type SignedConsumerPromise,
  type SignedHubPromise,
  sealPreimage,
  settleProvider,
} from '@chit/sdk';
import { type Address, type Hex, parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { cost, feeOf, sum } from './support/figures';
import { overWire } from './support/session';
import { type Consumer, type Provider, type Stack, startStack, until } from './support/stack';

const ether = (value: string) => parseEther(value);
const MINUTE = 60_000;

/** Runs `task` and returns what it threw, checking its class and code; fails if it did not throw. */
async function rejection<E extends Error & { code: string }>(
  task: Promise<unknown>,
  type: abstract new (...args: never[]) => E,
  code: string,
): Promise<E> {
  try {
    await task;
  } catch (error) {
    assert.ok(error instanceof type, `expected a ${type.name}, got ${error}`);
    assert.equal(error.code, code, `expected code ${code}, got ${error.code}: ${error.message}`);
    return error;
  }
  assert.fail(`expected a ${type.name} ${code}, but it succeeded`);
}

// Misbehaving consumers and providers against the real hub. Every test uses fresh parties on one stack
// and ends with the same books check: the hub collects what was credited, the provider settles, and
// every balance moved by exactly what the honest part of the session cost.
describe('attacks', function () {
  this.timeout(120_000);
  const prices: Prices = { perMinute: ether('0.01'), perGiB: ether('0.02') };
  const timePrices: Prices = { perMinute: ether('0.01'), perGiB: 0n };
  let stack: Stack;
  let stakeAtStart: bigint;

  before(async () => {
    stack = await startStack({ hubEnv: { SETTLEMENT_SCAN_INTERVAL_MS: '500', SETTLEMENT_BATCH_WINDOW_MS: '200' } });
    stakeAtStart = (await stack.read.hubFigures()).stake;
  });

  after(async () => {
    await stack?.stop();
  });

  interface ConsumerOutcome {
    consumer: Consumer;
    deposit: bigint;
    /** What the hub credited, so what it must collect. */
    paid: bigint;
    /** What the consumer took back by exiting. */
    exited?: bigint;
  }

  /**
   * The books check every test ends with: the hub collects exactly what it credited, each provider
   * settles its hub promise on-chain and its beneficiary gets exactly its earnings less the hub fee, and
   * the hub's free funds, stake and token balance moved by exactly that.
   */
  async function settleAndCheck(
    before: Awaited<ReturnType<Stack['read']['hubFigures']>>,
    consumers: ConsumerOutcome[],
    /** `claim`: the hub promise and R to settle, when not the provider ledger's latest. */
    providers: { provider: Provider; earned: bigint; claim?: { hubPromise: SignedHubPromise; preimage: Hex } }[],
  ) {
    for (const { consumer, paid } of consumers) {
      const books = await stack.hub.client.consumer(consumer.address);
      assert.equal(books.credited, paid, 'the hub credited exactly the honest payments');
      if (paid > 0n) {
        await until(`the hub to collect ${paid} from ${consumer.address}`, async () => {
          return (await stack.read.consumerChannel(consumer.address)).settled === paid;
        });
      }
    }
    let payouts = 0n;
    for (const { provider, earned, claim } of providers) {
      const { hubPromise, preimage } = claim ?? (await provider.ledger.latest());
      assert.equal(hubPromise?.total ?? 0n, earned, 'the provider holds a hub promise for exactly its earnings');
      if (earned > 0n) {
        await stack.chain.send(settleProvider(provider.wallet, { promise: hubPromise!, preimage: preimage! }));
      }
      const payout = earned - feeOf(earned, stack.hubFee);
      assert.equal(await stack.read.tokenBalance(provider.beneficiary), payout);
      assert.equal(await stack.read.providerSettled(provider.address), earned);
      payouts += payout;
    }
    for (const { consumer, deposit, paid, exited = 0n } of consumers) {
      assert.deepEqual(await stack.read.consumerChannel(consumer.address), {
        balance: deposit - paid - exited,
        settled: paid,
        exit: null,
      });
      assert.equal(await stack.read.tokenBalance(consumer.address), consumer.tokens - deposit + exited);
    }
    const collected = sum(consumers.map((c) => c.paid));
    const deposited = sum(consumers.map((c) => c.deposit));
    const exited = sum(consumers.map((c) => c.exited ?? 0n));
    assert.deepEqual(await stack.read.hubFigures(), {
      freeFunds: before.freeFunds + collected - payouts,
      stake: stakeAtStart,
      stakeOwed: 0n,
      punished: false,
      tokenBalance: before.tokenBalance + deposited - exited - payouts,
    });
  }

  describe('a consumer', () => {
    it('that promises beyond its balance is refused (OVERSPEND) and the provider stops serving it', async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('0.045');
      const consumer = await stack.newConsumer({ deposit });
      const provider = await stack.newProvider();
      const link = stack.connect(consumer, provider, { prices: timePrices });
      // Four minutes fit in the channel (0.04); the fifth would not.
      for (let minute = 1; minute <= 4; minute++) {
        stack.clock.advance(MINUTE);
        await link.step();
      }
      const paid = cost(timePrices, 4 * MINUTE, 0n);
      assert.equal(paid, ether('0.04'));
      for (let minute = 5; minute <= 7; minute++) {
        stack.clock.advance(MINUTE);
        const invoice = await link.invoice();
        assert.ok(invoice, `an invoice at minute ${minute}`);
        assert.equal(invoice.agreementTotal, cost(timePrices, minute * MINUTE, 0n));
        const promise = await link.pay(invoice); // the consumer signs for more than it holds
        await rejection(link.deliver(promise), HubError, 'OVERSPEND');
      }
      assert.equal(link.stops, 1);
      assert.equal(link.provider.shouldServe(), false);
      stack.clock.advance(MINUTE);
      assert.equal(await link.invoice(), undefined, 'no more invoices: the provider stopped serving');
      assert.equal(link.provider.paid, paid);
      link.close();
      await settleAndCheck(before, [{ consumer, deposit, paid }], [{ provider, earned: paid }]);
    });

    it('that stops paying is cut off after three unpaid invoices and served again once it pays', async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('1');
      const consumer = await stack.newConsumer({ deposit });
      const provider = await stack.newProvider();
      const link = stack.connect(consumer, provider, { prices });
      let bytes = 0n;
      const round = async () => {
        stack.clock.advance(MINUTE);
        bytes += 123_456_789n;
        link.traffic(123_456_789n);
      };
      for (let i = 0; i < 2; i++) {
        await round();
        await link.step();
      }
      let unpaid: Invoice | undefined;
      for (let i = 0; i < 3; i++) {
        await round();
        unpaid = await link.invoice();
        assert.ok(unpaid, 'the provider invoices');
        assert.equal(link.provider.unpaidInvoices, i + 1);
      }
      assert.equal(link.stops, 1);
      assert.equal(link.provider.shouldServe(), false);
      await round();
      assert.equal(await link.invoice(), undefined, 'a consumer that does not pay gets no more service');
      // Paying the latest invoice settles everything due up to it.
      const late = cost(prices, 5 * MINUTE, bytes - 123_456_789n);
      assert.equal(unpaid!.agreementTotal, late);
      await link.deliver(await link.pay(unpaid!));
      assert.equal(link.resumes, 1);
      assert.equal(link.provider.shouldServe(), true);
      assert.equal(link.provider.unpaidInvoices, 0);
      assert.equal(link.provider.paid, late);
      link.close();
      await settleAndCheck(before, [{ consumer, deposit, paid: late }], [{ provider, earned: late }]);
    });

    it('that replays an old promise gets nothing more credited', async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('1');
      const consumer = await stack.newConsumer({ deposit });
      const provider = await stack.newProvider();
      const link = stack.connect(consumer, provider, { prices: timePrices });
      const paid: { promise: SignedConsumerPromise; total: bigint }[] = [];
      for (let minute = 1; minute <= 3; minute++) {
        stack.clock.advance(MINUTE);
        const { promise, hubPromise } = await link.step();
        paid.push({ promise, total: hubPromise.total });
      }
      const earned = cost(timePrices, 3 * MINUTE, 0n);
      // The next invoice is answered with the first promise again: the provider refuses it.
      stack.clock.advance(MINUTE);
      const invoice = await link.invoice();
      assert.ok(invoice);
      await rejection(link.deliver(paid[0]!.promise), PromiseRejectedError, 'UNKNOWN_HASHLOCK');
      // Sent straight to the hub, the old promise needs its R, which the consumer does not know.
      const info = await stack.hub.client.info();
      await rejection(
        stack.hub.client.exchange({
          promise: paid[0]!.promise,
          encryptedPreimage: sealPreimage(info.publicKey, newHashlock().preimage),
        }),
        HubError,
        'INVALID_PREIMAGE_BOX',
      );
      assert.equal((await stack.hub.client.consumer(consumer.address)).credited, earned);
      assert.equal((await stack.hub.client.provider(provider.address)).earned, earned);
      // The latest promise, delivered again, gets the latest hub promise again.
      const again = await link.deliver(paid[2]!.promise);
      assert.equal(again.total, earned);
      link.close();
      await settleAndCheck(before, [{ consumer, deposit, paid: earned }], [{ provider, earned }]);
    });
    it("that exchanges its own promise first with a box of its making spoils nothing: the provider's is credited", async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('1');
      const consumer = await stack.newConsumer({ deposit });
      const provider = await stack.newProvider();
      const link = stack.connect(consumer, provider, { prices: timePrices });
      stack.clock.advance(MINUTE);
      const invoice = await link.invoice();
      assert.ok(invoice);
      const promise = await link.pay(invoice);
      // The consumer holds the promise, not R: a box sealed to another key or holding a guessed R is refused.
      const info = await stack.hub.client.info();
      for (const encryptedPreimage of [
        sealPreimage(privateKeyToAccount(generatePrivateKey()).publicKey, newHashlock().preimage),
        sealPreimage(info.publicKey, newHashlock().preimage),
      ]) {
        await rejection(stack.hub.client.exchange({ promise, encryptedPreimage }), HubError, 'INVALID_PREIMAGE_BOX');
      }
      assert.equal((await stack.hub.client.consumer(consumer.address)).credited, 0n);
      // The provider's own exchange goes through, and the hub collects with the R it opened.
      const earned = cost(timePrices, MINUTE, 0n);
      assert.equal((await link.deliver(promise)).total, earned);
      link.close();
      await settleAndCheck(before, [{ consumer, deposit, paid: earned }], [{ provider, earned }]);
    });
  });

  describe('a provider', () => {
    it('that invoices above its prices is refused by the consumer (OVERCHARGE): nothing is signed', async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('1');
      const consumer = await stack.newConsumer({ deposit });
      const provider = await stack.newProvider();
      // The provider bills twice the price per minute the consumer agreed to.
      const agreed = timePrices;
      const billed = { perMinute: 2n * agreed.perMinute, perGiB: 0n };
      const link = stack.connect(consumer, provider, { prices: billed, consumerPrices: agreed });
      for (let minute = 1; minute <= 3; minute++) {
        stack.clock.advance(MINUTE);
        const invoice = await link.invoice();
        assert.ok(invoice);
        const error = await rejection(link.pay(invoice), OverchargeError, 'OVERCHARGE');
        assert.equal(error.asked, cost(billed, minute * MINUTE, 0n));
        assert.equal(error.justified, cost(agreed, minute * MINUTE, 0n));
        // The consumer's tolerance: 5 s more, rounded up.
        const allowed = (agreed.perMinute * BigInt(minute * MINUTE + 5_000) + BigInt(MINUTE) - 1n) / BigInt(MINUTE);
        assert.equal(error.allowed, allowed);
      }
      assert.equal(await consumer.ledger.total(), 0n, 'the consumer signed nothing');
      assert.equal(link.stops, 1, 'the provider stops serving a consumer that refuses to pay');
      await rejection(stack.hub.client.provider(provider.address), HubError, 'UNKNOWN_PROVIDER');
      link.close();
      await settleAndCheck(before, [{ consumer, deposit, paid: 0n }], [{ provider, earned: 0n }]);
    });

    it('that replays an exchange gets the same answer and is credited once', async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('1');
      const consumer = await stack.newConsumer({ deposit });
      // The provider's requests to the hub, recorded on their way.
      const exchanges: { body: string; answer: unknown }[] = [];
      const recording: typeof fetch = async (input, init) => {
        const response = await fetch(input, init);
        const url = input instanceof Request ? input.url : String(input);
        if (url.endsWith('/v1/exchange') && response.ok) {
          exchanges.push({ body: String(init?.body), answer: await response.clone().json() });
        }
        return response;
      };
      const provider = await stack.newProvider({ fetch: recording });
      const link = stack.connect(consumer, provider, { prices });
      for (let minute = 1; minute <= 2; minute++) {
        stack.clock.advance(MINUTE);
        link.traffic(50_000_000n);
        await link.step();
      }
      const earned = cost(prices, 2 * MINUTE, 100_000_000n);
      assert.equal(exchanges.length, 2);
      for (const { body, answer } of [...exchanges, ...exchanges]) {
        const response = await fetch(`${stack.hub.url}/v1/exchange`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        assert.equal(response.status, 200);
        assert.deepEqual(await response.json(), answer);
      }
      assert.equal((await stack.hub.client.provider(provider.address)).earned, earned);
      assert.equal((await stack.hub.client.consumer(consumer.address)).credited, earned);
      link.close();
      await settleAndCheck(before, [{ consumer, deposit, paid: earned }], [{ provider, earned }]);
    });

    it('cannot exchange a promise made for another provider, another hub or another chain', async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('1');
      const consumer = await stack.newConsumer({ deposit });
      const honest = await stack.newProvider();
      const thief = await stack.newProvider();
      const link = stack.connect(consumer, honest, { prices: timePrices });
      const theft = stack.connect(consumer, thief, { prices: timePrices });
      stack.clock.advance(MINUTE);
      const invoice = await link.invoice();
      assert.ok(invoice);
      const promise = await link.pay(invoice);
      // Another provider's promise: the thief's session refuses it, nothing reaches the hub.
      await rejection(theft.deliver(promise), PromiseRejectedError, 'WRONG_PROVIDER');
      await rejection(stack.hub.client.provider(thief.address), HubError, 'UNKNOWN_PROVIDER');
      assert.equal((await stack.hub.client.consumer(consumer.address)).credited, 0n);

      // A promise for another hub (a second operator's, registered on the same Registry) or chain.
      const otherHub = await registerSecondHub();
      const info = await stack.hub.client.info();
      for (const [scope, code] of [
        [{ hub: otherHub, chainId: info.chainId }, 'WRONG_HUB'],
        [{ hub: info.hub, chainId: info.chainId + 1 }, 'WRONG_CHAIN'],
      ] as const) {
        const foreign = await signedElsewhere(consumer, honest.address, scope);
        await rejection(link.deliver(foreign.promise), PromiseRejectedError, code);
        await rejection(
          stack.hub.client.exchange({
            promise: foreign.promise,
            encryptedPreimage: sealPreimage(info.publicKey, foreign.preimage),
          }),
          HubError,
          code,
        );
      }
      await rejection(stack.hub.client.provider(honest.address), HubError, 'UNKNOWN_PROVIDER');
      assert.equal((await stack.hub.client.consumer(consumer.address)).credited, 0n);

      // The honest provider exchanges its own promise.
      await link.deliver(promise);
      const earned = cost(timePrices, MINUTE, 0n);
      link.close();
      theft.close();
      await settleAndCheck(
        before,
        [{ consumer, deposit, paid: earned }],
        [
          { provider: honest, earned },
          { provider: thief, earned: 0n },
        ],
      );
    });
  });

  // Last: it moves the chain's clock a day ahead.
  describe('an exiting consumer', () => {
    it('has its unsettled promise collected by the hub before the timelocked exit completes', async () => {
      // No periodic scan: only the exit request makes the hub settle.
      await stack.hub.restart({ SETTLEMENT_SCAN_INTERVAL_MS: '3600000' });
      try {
        const before = await stack.read.hubFigures();
        const deposit = ether('1');
        const consumer = await stack.newConsumer({ deposit });
        const provider = await stack.newProvider();
        const link = stack.connect(consumer, provider, { prices: timePrices });
        for (let minute = 1; minute <= 3; minute++) {
          stack.clock.advance(MINUTE);
          await link.step();
        }
        const paid = cost(timePrices, 3 * MINUTE, 0n);
        await new Promise((resolve) => setTimeout(resolve, 1_000));
        assert.equal((await stack.read.consumerChannel(consumer.address)).settled, 0n, 'nothing collected yet');

        // The consumer asks to leave with its whole balance, including what it promised.
        await stack.chain.send(requestExit(consumer.wallet, { hub: stack.chain.hub, amount: deposit }));
        const { exit } = await stack.read.consumerChannel(consumer.address);
        assert.ok(exit);
        await until('the hub to collect before the exit is ready', async () => {
          return (await stack.read.consumerChannel(consumer.address)).settled === paid;
        });
        assert.ok((await stack.chain.timestamp()) < exit.readyAt, 'collected within the timelock');
        // While the exit is pending, the hub credits nothing more.
        stack.clock.advance(MINUTE);
        const invoice = await link.invoice();
        assert.ok(invoice);
        await rejection(link.deliver(await link.pay(invoice)), HubError, 'OVERSPEND');

        await stack.chain.increaseTime(exit.readyAt - (await stack.chain.timestamp()) + 1n);
        const exiting = finalizeExit(consumer.wallet, { hub: stack.chain.hub });
        await stack.chain.send(exiting);
        const { amount } = await exiting;
        assert.equal(amount, deposit - paid, 'the exit pays what the consumer did not owe');
        link.close();
        await settleAndCheck(
          before,
          [{ consumer, deposit, paid, exited: deposit - paid }],
          [{ provider, earned: paid }],
        );
      } finally {
        await stack.hub.restart({ SETTLEMENT_SCAN_INTERVAL_MS: '500' });
      }
    });
  });

  // The drain of issue 10: a consumer and a provider, one person, try to take the operator's money with a
  // hub promise whose R the hub cannot learn, then an exit. Also last: it moves the chain's clock.
  describe('a consumer and a provider together', () => {
    /** The consumer pays `provider` an invoice of `amount` made by the test, which holds its R. */
    async function promiseWithR(consumer: Consumer, provider: Provider, amount: bigint) {
      const info = await stack.hub.client.info();
      const { preimage, hashlock } = newHashlock();
      const invoice: Invoice = {
        hub: info.hub,
        chainId: info.chainId,
        provider: provider.address,
        agreementId: newHashlock().hashlock,
        agreementTotal: amount,
        hashlock,
        fee: stack.hubFee,
      };
      const { promise } = await consumer.ledger.payInvoice(invoice);
      return { promise: overWire('consumerPromise', promise), preimage, publicKey: info.publicKey };
    }

    /** The consumer's timelocked exit of `amount`, finalized; returns what it was paid. */
    async function exit(consumer: Consumer, amount: bigint, beforeFinalizing?: () => Promise<unknown>) {
      await stack.chain.send(requestExit(consumer.wallet, { hub: stack.chain.hub, amount }));
      const { exit: pending } = await stack.read.consumerChannel(consumer.address);
      assert.ok(pending);
      await beforeFinalizing?.();
      await stack.chain.increaseTime(pending.readyAt - (await stack.chain.timestamp()) + 1n);
      const exiting = finalizeExit(consumer.wallet, { hub: stack.chain.hub });
      await stack.chain.send(exiting);
      return (await exiting).amount;
    }

    it('get no hub promise on a box the hub cannot open: the exit takes the deposit back, the operator loses nothing', async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('3');
      const consumer = await stack.newConsumer({ deposit });
      const provider = await stack.newProvider();
      const { promise, preimage, publicKey } = await promiseWithR(consumer, provider, deposit);
      const stranger = privateKeyToAccount(generatePrivateKey()).publicKey;
      for (const encryptedPreimage of [
        sealPreimage(stranger, preimage), // well formed, sealed to another key
        sealPreimage(publicKey, newHashlock().preimage), // opens, but to an R of another hashlock
      ]) {
        await rejection(provider.hub.exchange({ promise, encryptedPreimage }), HubError, 'INVALID_PREIMAGE_BOX');
      }
      await rejection(stack.hub.client.provider(provider.address), HubError, 'UNKNOWN_PROVIDER');
      assert.equal(await exit(consumer, deposit), deposit);
      await settleAndCheck(before, [{ consumer, deposit, paid: 0n, exited: deposit }], [{ provider, earned: 0n }]);
    });

    it('who never reveal R are collected within the exit timelock: the provider is paid, the operator loses nothing', async () => {
      const before = await stack.read.hubFigures();
      const deposit = ether('3');
      const consumer = await stack.newConsumer({ deposit });
      const provider = await stack.newProvider();
      const paid = ether('2');
      const { promise, preimage, publicKey } = await promiseWithR(consumer, provider, paid);
      const { hubPromise } = await provider.hub.exchange({
        promise,
        encryptedPreimage: sealPreimage(publicKey, preimage),
      });
      assert.equal(hubPromise.total, paid);
      // No reveal. The consumer asks for everything back; the hub collects first, with the R it opened.
      const exited = await exit(consumer, deposit, () =>
        until('the hub to collect before the exit is ready', async () => {
          return (await stack.read.consumerChannel(consumer.address)).settled === paid;
        }),
      );
      assert.equal(exited, deposit - paid);
      await settleAndCheck(
        before,
        [{ consumer, deposit, paid, exited }],
        [{ provider, earned: paid, claim: { hubPromise, preimage } }],
      );
    });
  });

  /** Registers a second hub on the Registry, operated by demo account #1. */
  async function registerSecondHub(): Promise<Address> {
    const operator = privateKeyToAccount(stack.chain.accounts[1]!.privateKey as Hex);
    const wallet = stack.chain.wallet(operator);
    const stake = BigInt(stack.chain.deployment.parameters.minStake);
    const { registry, token } = stack.chain;
    await stack.chain.send(
      wallet.writeContract({ address: token, abi: chitTokenAbi, functionName: 'approve', args: [registry, stake] }),
    );
    await stack.chain.send(
      wallet.writeContract({
        address: registry,
        abi: registryAbi,
        functionName: 'registerHub',
        args: [stake, 100, 'http://127.0.0.1:9'],
      }),
    );
    return stack.chain.rpc.readContract({
      address: registry,
      abi: registryAbi,
      functionName: 'hubOf',
      args: [operator.address],
    });
  }

  /** The consumer's promise paying `provider` 0.01 on another hub or chain (its own ledger there). */
  async function signedElsewhere(consumer: Consumer, provider: Address, scope: { hub: Address; chainId: number }) {
    const ledger = new ConsumerLedger({ ...scope, account: consumer.account, store: new MemoryStore() });
    const { preimage, hashlock } = newHashlock();
    const invoice: Invoice = {
      hub: scope.hub,
      chainId: scope.chainId,
      provider,
      agreementId: newHashlock().hashlock,
      agreementTotal: ether('0.01'),
      hashlock,
      fee: stack.hubFee,
    };
    const { promise } = await ledger.payInvoice(invoice);
    return { promise: overWire('consumerPromise', promise), preimage };
  }
});
