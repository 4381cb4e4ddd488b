import type { HistoryBucket } from '@chit/sdk';
import { type Address, getAddress } from 'viem';
import type { Hex } from '../db/bytes';
import { hubFeeOf } from '../settlement/settlement.policy';
import type { HistoryRepository, SettlementRow } from './history.repository';
import { fillBuckets, type Range, requireRange } from './history.rules';

/** The most counterparties (a provider's consumers, a consumer's providers) one answer lists. */
export const MAX_COUNTERPARTIES = 100;
/** The most settlements one answer lists. */
export const MAX_SETTLEMENTS = 1_000;
/** The most settlement batches one answer lists. */
export const MAX_BATCHES = 500;

const lower = (address: Address): Hex => address.toLowerCase() as Hex;
const iso = (at: Date) => at.toISOString();
const zeroVolume = (start: Date) => ({ start, amount: 0n, exchanges: 0 });
const sum = (rows: readonly { amount: bigint; exchanges: number }[]) => ({
  amount: rows.reduce((total, row) => total + row.amount, 0n),
  exchanges: rows.reduce((total, row) => total + row.exchanges, 0),
});

/**
 * Earnings, spending and the hub's figures over time (docs/history.md), from the rollups the exchange
 * batches keep: what the history endpoints answer once the session is checked.
 */
export class HistoryService {
  constructor(
    private readonly repository: HistoryRepository,
    /** The hub fee in basis points in force now (the Hub contract's, as last read). */
    private readonly fee: () => Promise<number>,
    /** Stake and free funds on-chain, and the books' liabilities: one sample of the hub's money. */
    private readonly money: () => Promise<{ stake: bigint; freeFunds: bigint; liabilities: bigint }>,
  ) {}

  async provider(provider: Address, range: Range, bucket: HistoryBucket) {
    requireRange(range, bucket);
    const [rows, books, fee] = await Promise.all([
      this.repository.providerVolume(lower(provider), range, bucket),
      this.repository.providerBooks(lower(provider)),
      this.fee(),
    ]);
    const buckets = fillBuckets(range, bucket, rows, zeroVolume).map((row) => ({
      start: iso(row.start),
      amount: row.amount,
      hubFee: hubFeeOf(row.amount, fee),
      exchanges: row.exchanges,
    }));
    const total = sum(rows);
    const promised = books?.promised ?? 0n;
    const settled = books?.settled ?? 0n;
    return {
      provider: getAddress(provider),
      from: iso(range.from),
      to: iso(range.to),
      bucket,
      fee,
      buckets,
      total: { amount: total.amount, hubFee: hubFeeOf(total.amount, fee), exchanges: total.exchanges },
      books: { promised, settled, unsettled: promised > settled ? promised - settled : 0n },
    };
  }

  async providerConsumers(provider: Address, range: Range) {
    requireRange(range);
    const rows = await this.repository.counterparties('provider', lower(provider), range, MAX_COUNTERPARTIES);
    return {
      provider: getAddress(provider),
      from: iso(range.from),
      to: iso(range.to),
      consumers: rows.map(({ counterparty, amount, exchanges }) => ({
        consumer: getAddress(counterparty),
        amount,
        exchanges,
      })),
    };
  }

  async providerSettlements(provider: Address, range: Range) {
    requireRange(range);
    const rows = await this.repository.providerSettlements(lower(provider), range, MAX_SETTLEMENTS);
    return {
      provider: getAddress(provider),
      from: iso(range.from),
      to: iso(range.to),
      settlements: rows.map(toSettlementAnswer),
    };
  }

  async consumer(consumer: Address, range: Range, bucket: HistoryBucket) {
    requireRange(range, bucket);
    const rows = await this.repository.consumerVolume(lower(consumer), range, bucket);
    return {
      consumer: getAddress(consumer),
      from: iso(range.from),
      to: iso(range.to),
      bucket,
      buckets: fillBuckets(range, bucket, rows, zeroVolume).map((row) => ({ ...row, start: iso(row.start) })),
      total: sum(rows),
    };
  }

  async consumerProviders(consumer: Address, range: Range) {
    requireRange(range);
    const rows = await this.repository.counterparties('consumer', lower(consumer), range, MAX_COUNTERPARTIES);
    return {
      consumer: getAddress(consumer),
      from: iso(range.from),
      to: iso(range.to),
      providers: rows.map(({ counterparty, amount, exchanges }) => ({
        provider: getAddress(counterparty),
        amount,
        exchanges,
      })),
    };
  }

  async hub(range: Range, bucket: HistoryBucket) {
    requireRange(range, bucket);
    const [rows, money, batches] = await Promise.all([
      this.repository.hubVolume(range, bucket),
      this.repository.hubMoney(range, bucket),
      this.repository.hubBatches(range, MAX_BATCHES),
    ]);
    return {
      from: iso(range.from),
      to: iso(range.to),
      bucket,
      buckets: fillBuckets(range, bucket, rows, zeroVolume).map((row) => ({ ...row, start: iso(row.start) })),
      total: sum(rows),
      money: money.map((sample) => ({ ...sample, at: iso(sample.at) })),
      batches: batches.map((batch) => ({ ...batch, at: iso(batch.at) })),
    };
  }

  /** Records a sample of the hub's money for this minute (the first replica to get there writes it). */
  async sampleMoney(): Promise<void> {
    await this.repository.recordMoney(await this.money());
  }
}

/** A settlement as the history answers it: the event's figures once it is confirmed. */
function toSettlementAnswer(row: SettlementRow) {
  const fact = (key: string) => {
    const value = row.payload[key];
    return typeof value === 'string' && /^[0-9]+$/.test(value) ? BigInt(value) : null;
  };
  const amount = row.status === 'confirmed' ? fact('amount') : null;
  const hubFee = row.status === 'confirmed' ? fact('hubFee') : null;
  // The fee the provider authorized; the event's, once confirmed.
  const relayerFee =
    (row.status === 'confirmed' ? fact('relayerFee') : null) ?? BigInt(String(row.payload.relayerFee ?? '0'));
  return {
    id: row.id,
    status: row.status,
    total: row.total,
    amount,
    hubFee,
    relayerFee,
    payout: amount !== null && hubFee !== null ? amount - hubFee - relayerFee : null,
    txHash: row.txHash,
    gasUsed: row.gasUsed,
    error: row.error,
    createdAt: iso(row.createdAt),
    updatedAt: iso(row.updatedAt),
  };
}
