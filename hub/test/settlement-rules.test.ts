import assert from 'node:assert/strict';
import { ContractCallError, ContractRevertError } from '@chit/sdk';
import { getAddress } from 'viem';
import type { Hex } from '../src/db/bytes';
import { HubError } from '../src/errors/hub-error';
import { messageOf } from '../src/errors/message-of';
import type { ExchangeRecord } from '../src/exchange/exchange.rules';
import {
  failureOf,
  minedOutcomes,
  revertedOutcomes,
  revertOutcomes,
  skippedClaims,
} from '../src/settlement/executor/executor.rules';
import {
  decideInstantExit,
  type InstantExitRecord,
  type InstantExitState,
  requireFreshRequest,
  sweepAction,
} from '../src/settlement/instant-exit/instant-exit.rules';
import { requireProviderSettlement } from '../src/settlement/requests/requests.rules';
import { dueConsumerSettlements, dueProviderSettlements, reorged } from '../src/settlement/scanner/scanner.rules';
import { PermanentFault, SettlementFault, TransactionLostError } from '../src/settlement/settlement.errors';
import type { SettlementRecord } from '../src/settlement/settlement.types';

const HUB = `0x${'aa'.repeat(20)}` as Hex;
const ALICE = `0x${'a1'.repeat(20)}` as Hex;
const BOB = `0x${'b0'.repeat(20)}` as Hex;
const TX = `0x${'11'.repeat(32)}` as Hex;

function settlement(kind: SettlementRecord['kind'], subject: Hex, amount: bigint): SettlementRecord {
  const base = {
    id: `${kind}-${subject}-${amount}`,
    subject,
    amount,
    status: 'submitted' as const,
    txHash: TX,
    error: null,
    attempts: 1,
    createdAt: new Date(0),
    updatedAt: new Date(0),
  };
  switch (kind) {
    case 'consumer':
      return { ...base, kind, payload: { hashlock: TX } };
    case 'provider':
      return { ...base, kind, payload: { hashlock: TX, relayerFee: '0', authorization: null } };
    case 'identity':
      return { ...base, kind, payload: { registry: HUB, beneficiary: BOB, nonce: '0', signature: TX } };
    case 'beneficiary':
      return { ...base, kind, payload: { registry: HUB, beneficiary: BOB, nonce: '0', signature: TX } };
  }
}

function exchange(consumerTotal: bigint): ExchangeRecord {
  return {
    hashlock: `0x${consumerTotal.toString(16).padStart(64, '0')}`,
    provider: BOB,
    consumer: ALICE,
    agreementId: TX,
    agreementTotal: consumerTotal,
    consumerTotal,
    consumerSignature: TX,
    increment: 1n,
    hubTotal: consumerTotal,
    encryptedPreimage: TX,
    preimage: TX,
  };
}

const stale = () =>
  new ContractRevertError({
    errorName: 'HubConsumerPromiseStale',
    args: { consumer: ALICE, total: 5n, settled: 5n },
    data: '0x',
  });
const permanent = () => new ContractRevertError({ errorName: 'HubZeroAmount', args: {}, data: '0x' });
const transient = () =>
  new ContractRevertError({ errorName: 'HubInsufficientFreeFunds', args: { freeFunds: 1n, needed: 2n }, data: '0x' });

const refusal = (code: string) => (error: unknown) => error instanceof HubError && error.code === code;

describe('settlement rules', () => {
  describe('executor: outcomes of a revert', () => {
    it('fails the claims on a permanent revert, confirms them on a stale one, retries them otherwise', () => {
      assert.deepEqual(revertOutcomes(['a'], permanent()), [
        { id: 'a', status: 'failed', error: { code: 'HubZeroAmount', message: 'The amount is zero' } },
      ]);
      assert.deepEqual(revertOutcomes(['a', 'b'], stale()), [
        { id: 'a', status: 'confirmed', txHash: null, facts: { settledBy: 'another transaction' } },
        { id: 'b', status: 'confirmed', txHash: null, facts: { settledBy: 'another transaction' } },
      ]);
      assert.deepEqual(revertOutcomes(['a'], transient()), [
        {
          id: 'a',
          status: 'retrying',
          error: {
            code: 'HubInsufficientFreeFunds',
            message: "The hub's free funds hold 1, less than the 2 asked for",
          },
        },
      ]);
    });

    it('retries a claim whose mined transaction reverted transiently, and judges a relayed action by its revert', () => {
      const claim = settlement('consumer', ALICE, 5n);
      const relayed = settlement('identity', BOB, 0n);
      const outcomes = revertedOutcomes([claim, relayed], TX, stale());
      assert.deepEqual(outcomes[0], {
        id: claim.id,
        status: 'retrying',
        error: { code: 'HubConsumerPromiseStale', message: `transaction ${TX} reverted: ${messageOf(stale())}` },
      });
      assert.deepEqual(outcomes[1], {
        id: relayed.id,
        status: 'confirmed',
        txHash: null,
        facts: { settledBy: 'another transaction' },
      });
      assert.deepEqual(revertedOutcomes([claim], TX, permanent())[0], {
        id: claim.id,
        status: 'failed',
        error: { code: 'HubZeroAmount', message: 'The amount is zero' },
      });
    });

    it('codes a revert that decodes to no contract error REVERTED, for a claim and a relayed action alike', () => {
      const unknown = new ContractCallError({
        shortMessage: 'The contract reverted with unknown data 0xdeadbeef',
        revertData: '0xdeadbeef',
      });
      const rows = [settlement('provider', BOB, 5n), settlement('identity', BOB, 0n)];
      assert.deepEqual(
        revertedOutcomes(rows, TX, unknown).map((outcome) => outcome.status === 'retrying' && outcome.error),
        rows.map(() => ({ code: 'REVERTED', message: `transaction ${TX} reverted: ${messageOf(unknown)}` })),
      );
    });
  });

  describe('executor: the failure an error records', () => {
    it('codes a decoded revert by its contract error, a settlement fault by its code, anything else ERROR', () => {
      assert.deepEqual(failureOf(transient()), { code: 'HubInsufficientFreeFunds', message: messageOf(transient()) });
      assert.deepEqual(failureOf(new PermanentFault('no exchange', 'INVALID_CLAIM')), {
        code: 'INVALID_CLAIM',
        message: 'no exchange',
      });
      assert.deepEqual(failureOf(new PermanentFault('not registered', 'RegistryIdentityNotRegistered')), {
        code: 'RegistryIdentityNotRegistered',
        message: 'not registered',
      });
      assert.deepEqual(failureOf(new TransactionLostError('nonce 3 was used', 'REPLACED')), {
        code: 'REPLACED',
        message: 'nonce 3 was used',
      });
      assert.equal(failureOf(new SettlementFault('reorg', 'REORGED')).code, 'REORGED');
      const undecoded = new ContractCallError({ shortMessage: 'reverted', revertData: '0x12345678' });
      assert.equal(failureOf(undecoded).code, 'REVERTED');
      assert.deepEqual(failureOf(new ContractCallError({ shortMessage: 'The node did not answer' })), {
        code: 'ERROR',
        message: 'The node did not answer',
      });
      assert.deepEqual(failureOf(new Error('R of 0x12 is not known yet')), {
        code: 'ERROR',
        message: 'R of 0x12 is not known yet',
      });
    });
  });

  describe('executor: outcomes of a mined transaction', () => {
    const logs = [{ address: HUB, eventName: 'ConsumerSettled', args: { consumer: ALICE, total: 7n, amount: 7n } }];

    it('confirms a claim with its settlement event and the event’s facts, and a relayed action with its block', () => {
      const claim = settlement('consumer', ALICE, 7n);
      const relayed = settlement('beneficiary', BOB, 0n);
      assert.deepEqual(minedOutcomes([claim, relayed], { hash: TX, block: 9n, logs }, HUB, new Map()), [
        {
          id: claim.id,
          status: 'confirmed',
          txHash: TX,
          facts: { block: '9', consumer: ALICE, total: '7', amount: '7' },
        },
        { id: relayed.id, status: 'confirmed', txHash: TX, facts: { block: '9' } },
      ]);
    });

    it('reads the channels of the claims the contract skipped, and decides them by what the chain settled', () => {
      const settledElsewhere = settlement('consumer', BOB, 3n);
      const empty = settlement('consumer', `0x${'c0'.repeat(20)}`, 3n);
      const provider = settlement('provider', BOB, 3n);
      const rows = [settlement('consumer', ALICE, 7n), settledElsewhere, empty, provider];
      assert.deepEqual(
        skippedClaims(rows, logs, HUB).map((row) => row.id),
        [settledElsewhere.id, empty.id, provider.id],
      );
      const settled = new Map([
        [settledElsewhere.id, 3n],
        [empty.id, 0n],
        [provider.id, 2n],
      ]);
      const outcomes = minedOutcomes(rows, { hash: TX, block: 9n, logs }, HUB, settled);
      assert.deepEqual(
        outcomes.map((outcome) => outcome.status),
        ['confirmed', 'confirmed', 'failed', 'retrying'],
      );
      assert.deepEqual(outcomes[2], {
        id: empty.id,
        status: 'failed',
        error: {
          code: 'NOTHING_TO_COLLECT',
          message: `the channel of ${getAddress(empty.subject)} is empty: nothing to collect`,
        },
      });
      assert.deepEqual(outcomes[3], {
        id: provider.id,
        status: 'retrying',
        error: { code: 'NOT_SETTLED', message: `transaction ${TX} did not settle it` },
      });
      assert.deepEqual(outcomes[1], {
        id: settledElsewhere.id,
        status: 'confirmed',
        txHash: null,
        facts: { settledBy: 'another transaction' },
      });
    });

    it('takes no event of another contract or for a lower total', () => {
      const claim = settlement('consumer', ALICE, 8n);
      const other = [{ ...logs[0]!, address: BOB }];
      assert.equal(skippedClaims([claim], logs, HUB).length, 1);
      assert.equal(skippedClaims([settlement('consumer', ALICE, 7n)], other, HUB).length, 1);
    });
  });

  describe('scanner', () => {
    const due = { consumer: ALICE, balance: 100n, settled: 0n, exitReadyAt: null, exchange: exchange(10n) };

    it('creates a consumer settlement worth its gas, urgent when the consumer exits', () => {
      const decided = dueConsumerSettlements(
        [
          { ...due, claim: exchange(10n) },
          { ...due, consumer: BOB, claim: exchange(2n) },
          { ...due, consumer: HUB, exitReadyAt: new Date(0), claim: exchange(2n) },
          { ...due, consumer: TX.slice(0, 42) as Hex, claim: undefined },
        ],
        { gasCost: 5n, urgent: false },
      );
      assert.deepEqual(
        decided.normal.map((s) => s.id),
        [`c-${ALICE}-10`],
      );
      assert.deepEqual(
        decided.urgent.map((s) => s.id),
        [`c-${HUB}-2`],
      );
      assert.deepEqual(decided.normal[0]?.payload, { hashlock: exchange(10n).hashlock });
    });

    it('collects no more than the channel holds when it weighs the gas', () => {
      const decided = dueConsumerSettlements([{ ...due, balance: 3n, claim: exchange(10n) }], {
        gasCost: 5n,
        urgent: false,
      });
      assert.equal(decided.normal.length + decided.urgent.length, 0);
      assert.equal(
        dueConsumerSettlements([{ ...due, balance: 3n, claim: exchange(10n) }], { gasCost: 5n, urgent: true }).urgent
          .length,
        1,
      );
    });

    it('creates a provider settlement over the threshold only when its R is known', () => {
      const candidate = { provider: BOB, promised: 100n, settled: 0n, exchange: exchange(100n) };
      const policy = { threshold: 50n, gasCost: 1n, maxFeeShareBps: 100 };
      assert.deepEqual(dueProviderSettlements([{ ...candidate, revealed: true }], policy), [
        {
          id: `p-${BOB}-100`,
          kind: 'provider',
          subject: BOB,
          amount: 100n,
          payload: { hashlock: exchange(100n).hashlock, relayerFee: '0', authorization: null },
        },
      ]);
      assert.deepEqual(dueProviderSettlements([{ ...candidate, revealed: false }], policy), []);
      assert.deepEqual(dueProviderSettlements([{ ...candidate, revealed: true }], { ...policy, gasCost: 2n }), []);
    });

    it('reopens the transactions no longer in their block and the settlements the chain no longer has', () => {
      const row = settlement('provider', BOB, 5n);
      const reopening = reorged(
        [
          { hash: TX, block: 3n, included: false },
          { hash: HUB, block: 3n, included: true },
          { hash: BOB, block: 4n, included: undefined },
        ],
        [
          { row, settled: 4n },
          { row: settlement('consumer', ALICE, 5n), settled: 5n },
        ],
      );
      assert.deepEqual(reopening.transactions, [
        {
          hash: TX,
          block: 3n,
          reason: { code: 'REORGED', message: `transaction ${TX} is no longer in block 3 (reorg): sending it again` },
        },
      ]);
      assert.deepEqual(reopening.settlements, [
        { id: row.id, reason: { code: 'REORGED', message: 'settled 4 on-chain, below 5 (reorg): settling it again' } },
      ]);
    });
  });

  describe('instant exits', () => {
    const state: InstantExitState = {
      consumer: ALICE,
      balance: 100n,
      settled: 10n,
      signedTotal: 30n,
      credited: 30n,
      exitAmount: 0n,
      exitReserved: 0n,
      existing: undefined,
    };
    const channel = { balance: 100n, settled: 10n, exitAmount: 0n };
    const input = { consumer: ALICE, amount: 80n, state, channel, chainNow: 1_000n, validitySeconds: 600n };
    const reservation: InstantExitRecord = {
      consumer: ALICE,
      nonce: 0n,
      amount: 80n,
      reserved: 80n,
      deadline: 1_600n,
      signature: TX,
      status: 'reserved',
      updatedAt: new Date(0),
    };

    it('signs what the consumer does not owe, until the deadline', () => {
      assert.deepEqual(decideInstantExit(input), { kind: 'sign', deadline: 1_600n, reserved: 80n });
    });

    it('refuses more than the consumer’s available money, with the worse of the books and the chain', () => {
      assert.throws(() => decideInstantExit({ ...input, amount: 81n }), refusal('OVERSPEND'));
      assert.throws(() => decideInstantExit({ ...input, channel: { ...channel, balance: 99n } }), refusal('OVERSPEND'));
      assert.throws(() => decideInstantExit({ ...input, state: undefined }), refusal('UNKNOWN_CONSUMER'));
    });

    it('answers the reservation held while it has more than half its validity left, and reserves the larger of two', () => {
      const existing = { ...state, exitReserved: 80n, existing: reservation };
      assert.deepEqual(decideInstantExit({ ...input, state: existing }), { kind: 'repeat', existing: reservation });
      assert.deepEqual(decideInstantExit({ ...input, state: existing, chainNow: 1_300n }), {
        kind: 'sign',
        deadline: 1_900n,
        reserved: 80n,
      });
      assert.deepEqual(decideInstantExit({ ...input, state: existing, amount: 50n }), {
        kind: 'sign',
        deadline: 1_600n,
        reserved: 80n,
      });
    });

    it('marks a reservation used once its nonce is spent, and releases it when it can no longer be used', () => {
      const chain = { spent: 1n, timestamp: 1_000n };
      assert.equal(sweepAction(reservation, chain, 0), 'use');
      assert.equal(sweepAction({ ...reservation, status: 'used' }, chain, 1_000), 'keep');
      assert.equal(sweepAction({ ...reservation, status: 'used' }, chain, 3_600_001), 'release');
      assert.equal(sweepAction(reservation, { spent: 0n, timestamp: 1_601n }, 0), 'release');
      assert.equal(sweepAction(reservation, { spent: 0n, timestamp: 1_600n }, 0), 'keep');
    });

    it('refuses a request issued more than five minutes from now', () => {
      requireFreshRequest(1_000n, 1_300n);
      assert.throws(() => requireFreshRequest(1_000n, 1_301n), refusal('STALE_REQUEST'));
      assert.throws(() => requireFreshRequest(1_301n, 1_000n), refusal('STALE_REQUEST'));
    });
  });

  describe('settlement requests', () => {
    const request = { total: 100n, settled: 0n, relayerFee: 10n, hubFeeBps: 100, minimum: 5n };

    it('takes a relayer fee between the gas cost and the provider’s payout', () => {
      requireProviderSettlement(request);
      requireProviderSettlement({ ...request, relayerFee: 99n });
    });

    it('refuses a settled promise, a fee above the payout and a fee below the gas cost', () => {
      assert.throws(() => requireProviderSettlement({ ...request, settled: 100n }), refusal('NOTHING_TO_SETTLE'));
      assert.throws(() => requireProviderSettlement({ ...request, relayerFee: 100n }), refusal('RELAYER_FEE_TOO_HIGH'));
      assert.throws(() => requireProviderSettlement({ ...request, relayerFee: 4n }), refusal('RELAYER_FEE_TOO_LOW'));
    });
  });
});
