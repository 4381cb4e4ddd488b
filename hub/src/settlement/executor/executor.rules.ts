import { ContractCallError, ContractRevertError } from '@chit/sdk';
import { getAddress } from 'viem';
import type { Hex } from '../../db/bytes';
import { messageOf } from '../../errors/message-of';
import { SettlementFault } from '../settlement.errors';
import { classifyRevert } from '../settlement.policy';
import type { SettlementFacts, SettlementFailure, SettlementRecord } from '../settlement.types';

// The executor's rules, as pure functions of a transaction's receipt (or revert) and the chain read:
// what became of each settlement it carried. The repository records them in one transaction.

/** What became of one settlement. */
export type Outcome =
  | { id: string; status: 'confirmed'; txHash: Hex | null; facts: SettlementFacts }
  | { id: string; status: 'failed'; error: SettlementFailure }
  | { id: string; status: 'retrying'; error: SettlementFailure };

/**
 * The failure an error records: a decoded revert by its contract error's name, a revert nothing decodes
 * as `REVERTED`, a {@link SettlementFault} by its own code, anything else as `ERROR`; the message is
 * what the error says.
 */
export function failureOf(error: unknown): SettlementFailure {
  const message = messageOf(error);
  if (error instanceof ContractRevertError) return { code: error.errorName, message };
  if (error instanceof SettlementFault) return { code: error.code, message };
  if (error instanceof ContractCallError && error.revertData !== undefined) return { code: 'REVERTED', message };
  return { code: 'ERROR', message };
}

/** A decoded revert's failure: its contract error's name and its short message. */
const revertFailure = (revert: ContractRevertError): SettlementFailure => ({
  code: revert.errorName,
  message: revert.shortMessage,
});

/** Settled by a transaction the hub does not know: a claim of the same channel at least as high. */
const SETTLED_ELSEWHERE = { settledBy: 'another transaction' } as const;

/** What a decoded revert means for settlements of one channel: failed, settled by another, or retrying. */
export function revertOutcomes(ids: readonly string[], revert: ContractRevertError): Outcome[] {
  const verdict = classifyRevert(revert.errorName);
  return ids.map((id) =>
    verdict === 'permanent'
      ? { id, status: 'failed', error: revertFailure(revert) }
      : verdict === 'settled'
        ? { id, status: 'confirmed', txHash: null, facts: SETTLED_ELSEWHERE }
        : { id, status: 'retrying', error: revertFailure(revert) },
  );
}

/**
 * The outcomes of a mined transaction that reverted (`revert`: the error it reverted with, decoded
 * when it could be): a relayed action's by its revert; a claim fails on a permanent revert, and
 * otherwise is tried again (the state moved between the simulation and the block).
 */
export function revertedOutcomes(rows: readonly SettlementRecord[], mined: Hex, revert: unknown): Outcome[] {
  return rows.flatMap((row): Outcome[] => {
    if (revert instanceof ContractRevertError && row.kind !== 'consumer' && row.kind !== 'provider') {
      return revertOutcomes([row.id], revert);
    }
    if (revert instanceof ContractRevertError && classifyRevert(revert.errorName) === 'permanent') {
      return [{ id: row.id, status: 'failed', error: revertFailure(revert) }];
    }
    const code = revert instanceof ContractRevertError ? revert.errorName : 'REVERTED';
    const message = `transaction ${mined} reverted: ${messageOf(revert)}`;
    return [{ id: row.id, status: 'retrying', error: { code, message } }];
  });
}

/** A decoded log of a receipt. */
export interface HubLog {
  address: string;
  eventName: string;
  args: unknown;
}

/** The settlement event of `row` among a receipt's Hub logs: its channel's, for at least its total. */
export function settlementEvent(row: SettlementRecord, logs: readonly HubLog[], hub: Hex): HubLog | undefined {
  return logs.find((log) => {
    if (log.address.toLowerCase() !== hub.toLowerCase()) return false;
    const args = log.args as { consumer?: string; provider?: string; total?: bigint };
    const subject = row.kind === 'consumer' ? args.consumer : args.provider;
    const name = row.kind === 'consumer' ? 'ConsumerSettled' : 'ProviderSettled';
    return (
      log.eventName === name &&
      subject?.toLowerCase() === row.subject &&
      args.total !== undefined &&
      args.total >= row.amount
    );
  });
}

/**
 * The outcomes of a mined transaction that succeeded: a relayed action is confirmed; a claim with its
 * settlement event is confirmed with the event's facts; a claim the contract skipped is settled by
 * another transaction when the chain has it settled (`settled`, read for those claims), else a consumer
 * claim fails (nothing left in the channel) and a provider claim is tried again.
 */
export function minedOutcomes(
  rows: readonly SettlementRecord[],
  receipt: { hash: Hex; block: bigint; logs: readonly HubLog[] },
  hub: Hex,
  settled: ReadonlyMap<string, bigint>,
): Outcome[] {
  const block = receipt.block.toString();
  return rows.map((row): Outcome => {
    if (row.kind === 'identity' || row.kind === 'beneficiary') {
      return { id: row.id, status: 'confirmed', txHash: receipt.hash, facts: { block } };
    }
    const event = settlementEvent(row, receipt.logs, hub);
    if (event) {
      const args = stringify(event.args as Record<string, unknown>);
      return { id: row.id, status: 'confirmed', txHash: receipt.hash, facts: { block, ...args } };
    }
    if ((settled.get(row.id) ?? 0n) >= row.amount) {
      return { id: row.id, status: 'confirmed', txHash: null, facts: SETTLED_ELSEWHERE };
    }
    if (row.kind === 'consumer') {
      return {
        id: row.id,
        status: 'failed',
        error: {
          code: 'NOTHING_TO_COLLECT',
          message: `the channel of ${getAddress(row.subject)} is empty: nothing to collect`,
        },
      };
    }
    return {
      id: row.id,
      status: 'retrying',
      error: { code: 'NOT_SETTLED', message: `transaction ${receipt.hash} did not settle it` },
    };
  });
}

/** The claims of `rows` a receipt's logs show no settlement event for: their channel must be read. */
export function skippedClaims(
  rows: readonly SettlementRecord[],
  logs: readonly HubLog[],
  hub: Hex,
): SettlementRecord[] {
  return rows.filter((row) => (row.kind === 'consumer' || row.kind === 'provider') && !settlementEvent(row, logs, hub));
}

function stringify(args: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(args).map(([key, value]) => [key, String(value).toLowerCase()]));
}
