import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  decideSettlement,
  InvalidOptionError,
  type SettlementInput,
  SettlementPolicy,
  type SettlementPolicyOptions,
} from '../src/index.js';

const TOKEN = 10n ** 18n;
const NOW = 1_764_000_000;
const policy: SettlementPolicyOptions = { threshold: 10n * TOKEN, maxFeeShareBps: 200 }; // settle from 10, fees up to 2 %

const quote = (amount: bigint, hubFee: bigint, relayerFee: bigint, now = NOW): SettlementInput => ({
  amount,
  hubFee,
  relayerFee,
  now,
});

describe('decideSettlement', { timeout: 30_000 }, () => {
  describe('before any deadline', () => {
    it('settles at the threshold when the fees are within their share', () => {
      const decision = decideSettlement(policy, quote(10n * TOKEN, TOKEN / 10n, TOKEN / 20n));
      assert.deepEqual(decision, {
        settle: true,
        reason: 'WORTH_IT',
        amount: 10n * TOKEN,
        fee: (15n * TOKEN) / 100n,
        net: 10n * TOKEN - (15n * TOKEN) / 100n,
        feeShareBps: 150,
      });
    });

    it('settles when the fees take exactly the share allowed', () => {
      const decision = decideSettlement(policy, quote(10n * TOKEN, TOKEN / 10n, TOKEN / 10n));
      assert.equal(decision.settle, true);
      assert.equal(decision.feeShareBps, 200);
    });

    it('waits when the fees take one unit more than the share allowed', () => {
      const decision = decideSettlement(policy, quote(10n * TOKEN, TOKEN / 10n, TOKEN / 10n + 1n));
      assert.equal(decision.settle, false);
      assert.equal(decision.reason, 'FEE_TOO_HIGH');
      assert.equal(decision.feeShareBps, 201, 'rounded up: never shown lower than it is');
    });

    it('waits below the threshold, however cheap', () => {
      const decision = decideSettlement(policy, quote(10n * TOKEN - 1n, 0n, 0n));
      assert.equal(decision.settle, false);
      assert.equal(decision.reason, 'BELOW_THRESHOLD');
    });
  });

  describe('near the deadline', () => {
    const withDeadline = { ...policy, deadline: NOW + 3_600, deadlineMarginSeconds: 600 };

    it('waits as usual before the margin', () => {
      const decision = decideSettlement(withDeadline, quote(TOKEN, TOKEN / 10n, 0n, NOW + 2_999));
      assert.equal(decision.reason, 'BELOW_THRESHOLD');
    });

    it('settles from the margin on, whatever the amount and the fee share', () => {
      const decision = decideSettlement(withDeadline, quote(TOKEN, TOKEN / 10n, 0n, NOW + 3_000));
      assert.equal(decision.settle, true);
      assert.equal(decision.reason, 'DEADLINE');
      assert.equal(decision.feeShareBps, 1_000);
      assert.equal(decision.net, (9n * TOKEN) / 10n);
    });

    it('settles after the deadline too', () => {
      assert.equal(decideSettlement(withDeadline, quote(TOKEN, 0n, 0n, NOW + 10_000)).reason, 'DEADLINE');
    });
  });

  describe('when settling is pointless', () => {
    it('does nothing with nothing to settle', () => {
      const decision = decideSettlement({ ...policy, deadline: NOW }, quote(0n, 0n, 0n));
      assert.equal(decision.settle, false);
      assert.equal(decision.reason, 'NOTHING_TO_SETTLE');
      assert.equal(decision.feeShareBps, 10_000);
    });

    it('does nothing when the fees take everything, even at the deadline', () => {
      const decision = decideSettlement({ ...policy, deadline: NOW }, quote(TOKEN, TOKEN / 2n, TOKEN / 2n));
      assert.equal(decision.settle, false);
      assert.equal(decision.reason, 'FEES_EXCEED_AMOUNT');
      assert.equal(decision.net, 0n);
    });
  });

  it('refuses options out of range', () => {
    assert.throws(() => decideSettlement({ ...policy, maxFeeShareBps: 10_001 }, quote(1n, 0n, 0n)), InvalidOptionError);
    assert.throws(() => decideSettlement({ ...policy, threshold: -1n }, quote(1n, 0n, 0n)), InvalidOptionError);
    assert.throws(() => new SettlementPolicy({ ...policy, maxFeeShareBps: 1.5 }), InvalidOptionError);
  });
});

describe('SettlementPolicy', { timeout: 30_000 }, () => {
  it('decides like decideSettlement with its options', () => {
    const settlement = new SettlementPolicy(policy);
    const input = quote(20n * TOKEN, TOKEN / 10n, 0n);
    assert.deepEqual(settlement.decide(input), decideSettlement(policy, input));
  });

  it('keeps the earlier of two deadlines unless told to replace it', () => {
    const settlement = new SettlementPolicy(policy);
    settlement.setDeadline(NOW + 1_000);
    settlement.setDeadline(NOW + 5_000);
    assert.equal(settlement.options.deadline, NOW + 1_000);
    settlement.setDeadline(NOW + 5_000, true);
    assert.equal(settlement.options.deadline, NOW + 5_000);
    settlement.setDeadline(undefined);
    assert.equal(settlement.options.deadline, undefined);
  });

  it('asks for a quote only from the threshold on, or near the deadline', () => {
    const settlement = new SettlementPolicy({ ...policy, deadline: NOW + 7_200 });
    assert.equal(settlement.worthQuoting(10n * TOKEN - 1n, NOW), false);
    assert.equal(settlement.worthQuoting(10n * TOKEN, NOW), true);
    assert.equal(settlement.worthQuoting(1n, NOW + 3_600), true, 'within the default margin of an hour');
    assert.equal(settlement.worthQuoting(0n, NOW + 7_200), false, 'nothing to settle');
  });
});
