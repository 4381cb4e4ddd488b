import assert from 'node:assert/strict';
import { bumpFees } from '../src/chain/outbox/outbox.rules';
import { Batcher } from '../src/settlement/executor/batcher';
import { ShuttingDown } from '../src/settlement/settlement.errors';
import {
  classifyRevert,
  consumerClaimWorthIt,
  gasCostInTokens,
  minimumRelayerFee,
  parseTokenRate,
  providerSettlementDue,
  quoteRelayerFee,
  settlementId,
  waitForFreeFunds,
} from '../src/settlement/settlement.policy';

const gwei = 10n ** 9n;

describe('settlement policy', () => {
  describe('relayer fee quotes', () => {
    it('is gas price x gas per promise x margin, in tokens, rounded up', () => {
      const rate = parseTokenRate('1');
      assert.equal(
        quoteRelayerFee({ gasPrice: 2n * gwei, gasPerPromise: 84_000n, marginBps: 12_000, rate }),
        201_600n * gwei,
      );
      assert.equal(quoteRelayerFee({ gasPrice: 1n, gasPerPromise: 1n, marginBps: 12_000, rate }), 2n);
      assert.equal(minimumRelayerFee({ gasPrice: 2n * gwei, gasPerPromise: 84_000n, rate }), 168_000n * gwei);
    });

    it('converts gas coin to tokens at RELAYER_TOKENS_PER_WEI', () => {
      assert.deepEqual(parseTokenRate('2500.25'), { numerator: 250_025n, denominator: 100n });
      assert.equal(gasCostInTokens(100_000n, 10n * gwei, parseTokenRate('0.5')), 500_000n * gwei);
      assert.equal(gasCostInTokens(1n, 1n, parseTokenRate('0.5')), 1n);
    });
  });

  describe('what is due', () => {
    it('settles a consumer claim worth more than its gas, and an exiting consumer whatever it holds', () => {
      assert.equal(consumerClaimWorthIt({ collectable: 10n, gasCost: 5n, exiting: false }), true);
      assert.equal(consumerClaimWorthIt({ collectable: 5n, gasCost: 5n, exiting: false }), false);
      assert.equal(consumerClaimWorthIt({ collectable: 1n, gasCost: 5n, exiting: true }), true);
      assert.equal(consumerClaimWorthIt({ collectable: 0n, gasCost: 0n, exiting: true }), false);
    });

    it('settles a provider over the threshold when the gas is within the fee share, and never with threshold 0', () => {
      const base = { threshold: 100n, gasCost: 1n, maxFeeShareBps: 100 };
      assert.equal(providerSettlementDue({ ...base, unsettled: 100n }), true);
      assert.equal(providerSettlementDue({ ...base, unsettled: 99n }), false);
      assert.equal(providerSettlementDue({ ...base, unsettled: 100n, gasCost: 2n }), false);
      assert.equal(providerSettlementDue({ ...base, threshold: 0n, unsettled: 10n ** 30n }), false);
    });

    it('waits for free funds during the first half of the attempts only', () => {
      const short = { freeFunds: 1n, outflow: 2n, attempts: 8 };
      assert.equal(waitForFreeFunds({ ...short, attempt: 3 }), true);
      assert.equal(waitForFreeFunds({ ...short, attempt: 4 }), false);
      assert.equal(waitForFreeFunds({ ...short, freeFunds: 2n, attempt: 0 }), false);
    });
  });

  it('tells permanent reverts from already-settled claims and transient ones', () => {
    assert.equal(classifyRevert('HubInvalidSignature'), 'permanent');
    assert.equal(classifyRevert('RegistryIdentityNotRegistered'), 'permanent');
    assert.equal(classifyRevert('HubProviderPromiseStale'), 'settled');
    assert.equal(classifyRevert('HubInsufficientFunds'), 'transient');
  });

  describe('fee bumps', () => {
    const previous = { maxFeePerGas: 100n, maxPriorityFeePerGas: 10n };
    it('raises both fees by the bump, or to the network’s when higher', () => {
      const network = { maxFeePerGas: 50n, maxPriorityFeePerGas: 1n };
      assert.deepEqual(bumpFees({ previous, network, bumpPercent: 25 }), {
        maxFeePerGas: 125n,
        maxPriorityFeePerGas: 13n,
      });
      const busy = { maxFeePerGas: 300n, maxPriorityFeePerGas: 30n };
      assert.deepEqual(bumpFees({ previous, network: busy, bumpPercent: 25 }), busy);
    });
    it('stays within the cap, and gives up when the cap leaves less than the +10 % nodes ask for', () => {
      const network = { maxFeePerGas: 0n, maxPriorityFeePerGas: 0n };
      assert.deepEqual(bumpFees({ previous, network, bumpPercent: 25, cap: 112n }), {
        maxFeePerGas: 112n,
        maxPriorityFeePerGas: 13n,
      });
      assert.equal(bumpFees({ previous, network, bumpPercent: 25, cap: 105n }), undefined);
    });
  });

  it('keys settlements by channel and amount, without the ":" BullMQ refuses in job ids', () => {
    assert.equal(settlementId.consumer('0xABC', 5n), 'c-0xabc-5');
    assert.equal(settlementId.provider('0xabc', 7n), 'p-0xabc-7');
    assert.ok(!settlementId.identity('0xabc', 0n).includes(':'));
  });
});

describe('batcher', () => {
  const recorder = () => {
    const batches: string[][] = [];
    const run = async (items: { id: string }[]) => {
      batches.push(items.map((item) => item.id));
      return new Map(items.map((item) => [item.id, { ok: true as const, value: item.id.toUpperCase() }]));
    };
    return { batches, run };
  };

  it('sends what arrived within the window as one batch, and splits at the size', async () => {
    const { batches, run } = recorder();
    const batcher = new Batcher(run, { maxBatch: 3, windowMs: 30 });
    const results = await Promise.all(['a', 'b', 'c', 'd'].map((id) => batcher.submit({ id })));
    assert.deepEqual(results, ['A', 'B', 'C', 'D']);
    assert.deepEqual(batches, [['a', 'b', 'c'], ['d']]);
  });

  it('sends at once for an urgent item, and gives an item submitted twice one outcome', async () => {
    const { batches, run } = recorder();
    const batcher = new Batcher(run, { maxBatch: 10, windowMs: 60_000 });
    const first = batcher.submit({ id: 'a' });
    const again = batcher.submit({ id: 'a' });
    assert.equal(await batcher.submit({ id: 'b' }, true), 'B');
    assert.deepEqual(await Promise.all([first, again]), ['A', 'A']);
    assert.deepEqual(batches, [['a', 'b']]);
  });

  it('gives each item its own outcome, and fails waiting items with ShuttingDown on close', async () => {
    const outcome = (id: string) =>
      id === 'bad' ? { ok: false as const, error: new Error('bad') } : { ok: true as const, value: 1 };
    const batcher = new Batcher(async (items: { id: string }[]) => new Map(items.map((i) => [i.id, outcome(i.id)])), {
      maxBatch: 2,
      windowMs: 60_000,
    });
    const [good, bad] = [batcher.submit({ id: 'good' }), batcher.submit({ id: 'bad' })];
    assert.equal(await good, 1);
    await assert.rejects(bad, /bad/);
    const waiting = batcher.submit({ id: 'late' });
    batcher.close();
    await assert.rejects(waiting, ShuttingDown);
  });
});
