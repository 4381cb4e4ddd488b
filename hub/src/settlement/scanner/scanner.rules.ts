import type { Hex } from '../../db/bytes';
import type { ExchangeRecord } from '../../exchange/exchange.rules';
import { consumerClaimWorthIt, providerSettlementDue, settlementId } from '../settlement.policy';
import type { NewSettlement, SettlementFailure, SettlementRecord } from '../settlement.types';

// The scanner's rules, as pure functions of what the books and the chain say: which settlements a scan
// creates, and which confirmed settlements a reorg took away.

/** A consumer whose highest promise is above what it settled on-chain, with that promise's exchange. */
export interface DueConsumer {
  consumer: Hex;
  balance: bigint;
  settled: bigint;
  exitReadyAt: Date | null;
  exchange: ExchangeRecord;
}

/** A provider whose latest hub promise is above what it settled on-chain, with that promise's exchange. */
export interface DueProvider {
  provider: Hex;
  promised: bigint;
  settled: bigint;
  exchange: ExchangeRecord;
}

/** A due consumer with the exchange its claim would carry: its highest promise whose R is known, if any. */
export interface ConsumerCandidate extends DueConsumer {
  claim: ExchangeRecord | undefined;
}

/**
 * The consumer settlements a scan creates: for each consumer with a claim whose R is known, one of that
 * claim's total, when it collects more than its gas (always when the consumer is exiting, or the scan
 * is `urgent`). Exiting consumers' settlements are urgent.
 */
export function dueConsumerSettlements(
  candidates: readonly ConsumerCandidate[],
  input: { gasCost: bigint; urgent: boolean },
): { urgent: NewSettlement[]; normal: NewSettlement[] } {
  const urgent: NewSettlement[] = [];
  const normal: NewSettlement[] = [];
  for (const candidate of candidates) {
    const exchange = candidate.claim;
    if (!exchange) continue;
    const total = exchange.consumerTotal;
    const owed = total - candidate.settled;
    const exiting = input.urgent || candidate.exitReadyAt !== null;
    const collectable = owed < candidate.balance ? owed : candidate.balance;
    if (!consumerClaimWorthIt({ collectable, gasCost: input.gasCost, exiting })) continue;
    (exiting ? urgent : normal).push({
      id: settlementId.consumer(candidate.consumer, total),
      kind: 'consumer',
      subject: candidate.consumer,
      amount: total,
      payload: { hashlock: exchange.hashlock },
    });
  }
  return { urgent, normal };
}

/** A due provider, with whether the R of its latest hub promise is known. */
export interface ProviderCandidate extends DueProvider {
  revealed: boolean;
}

/** The settlements the hub makes itself for providers over the threshold (policy), without a relayer fee. */
export function dueProviderSettlements(
  candidates: readonly ProviderCandidate[],
  policy: { threshold: bigint; gasCost: bigint; maxFeeShareBps: number },
): NewSettlement[] {
  return candidates
    .filter(
      (candidate) =>
        providerSettlementDue({ unsettled: candidate.promised - candidate.settled, ...policy }) && candidate.revealed,
    )
    .map((candidate) => ({
      id: settlementId.provider(candidate.provider, candidate.promised),
      kind: 'provider',
      subject: candidate.provider,
      amount: candidate.promised,
      payload: { hashlock: candidate.exchange.hashlock, relayerFee: '0', authorization: null },
    }));
}

/** What a look for reorged settlements reopens: transactions no longer in their block, settlements no longer settled. */
export interface Reopening {
  transactions: { hash: Hex; block: bigint; reason: SettlementFailure }[];
  settlements: { id: string; reason: SettlementFailure }[];
}

/**
 * Decides what a reorg took away: each mined transaction the canonical block no longer includes
 * (`included` false; undefined when the node did not answer: left for the next look), and each
 * confirmed settlement above what the chain says is settled now.
 */
export function reorged(
  mined: readonly { hash: Hex; block: bigint; included: boolean | undefined }[],
  confirmed: readonly { row: SettlementRecord; settled: bigint }[],
): Reopening {
  return {
    transactions: mined
      .filter((tx) => tx.included === false)
      .map(({ hash, block }) => ({
        hash,
        block,
        reason: {
          code: 'REORGED',
          message: `transaction ${hash} is no longer in block ${block} (reorg): sending it again`,
        },
      })),
    settlements: confirmed
      .filter(({ row, settled }) => settled < row.amount)
      .map(({ row, settled }) => ({
        id: row.id,
        reason: {
          code: 'REORGED',
          message: `settled ${settled} on-chain, below ${row.amount} (reorg): settling it again`,
        },
      })),
  };
}
