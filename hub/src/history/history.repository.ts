import type { HistoryBucket } from '@chit/sdk';
import type { Pool } from 'pg';
import { fromBytea, fromByteaOrNull, type Hex, toBytea } from '../db/bytes';
import type { SettlementStatus } from '../settlement/settlement.types';
import type { Range } from './history.rules';

/** Volume in one bucket. */
export interface VolumeRow {
  start: Date;
  amount: bigint;
  exchanges: number;
}

/** A provider settlement as the books hold it, with its transaction's gas. */
export interface SettlementRow {
  id: string;
  status: SettlementStatus;
  total: bigint;
  payload: Record<string, unknown>;
  error: { code: string; message: string } | null;
  txHash: Hex | null;
  gasUsed: bigint | null;
  createdAt: Date;
  updatedAt: Date;
}

const volume = (row: { start: Date; amount: string; exchanges: string }): VolumeRow => ({
  start: row.start,
  amount: BigInt(row.amount),
  exchanges: Number(row.exchanges),
});

/**
 * The history's SQL: every read is of the rollups the exchange batches keep (migration 0006) or of an
 * index's range, never a scan of `exchanges`.
 */
export class HistoryRepository {
  constructor(private readonly pool: Pool) {}

  /** A provider's earnings per bucket, for the buckets that hold any. */
  async providerVolume(provider: Hex, range: Range, bucket: HistoryBucket): Promise<VolumeRow[]> {
    return this.volume('provider_hourly', 'provider', provider, range, bucket);
  }

  /** A consumer's spending per bucket, for the buckets that hold any. */
  async consumerVolume(consumer: Hex, range: Range, bucket: HistoryBucket): Promise<VolumeRow[]> {
    return this.volume('consumer_hourly', 'consumer', consumer, range, bucket);
  }

  /** The hub's volume per bucket (its 16 stripes summed), for the buckets that hold any. */
  async hubVolume(range: Range, bucket: HistoryBucket): Promise<VolumeRow[]> {
    const { rows } = await this.pool.query({
      name: `history.hub-volume`,
      text: `SELECT date_trunc($3, hour, 'UTC') AS start, sum(amount)::text AS amount, sum(exchanges)::text AS exchanges
               FROM hub_hourly WHERE hour >= date_trunc('hour', $1::timestamptz, 'UTC') AND hour < $2
              GROUP BY 1 ORDER BY 1`,
      values: [range.from, range.to, bucket],
    });
    return rows.map(volume);
  }

  private async volume(
    table: 'provider_hourly' | 'consumer_hourly',
    column: 'provider' | 'consumer',
    subject: Hex,
    range: Range,
    bucket: HistoryBucket,
  ): Promise<VolumeRow[]> {
    const { rows } = await this.pool.query({
      name: `history.${column}-volume`,
      text: `SELECT date_trunc($4, hour, 'UTC') AS start, sum(amount)::text AS amount, sum(exchanges)::text AS exchanges
               FROM ${table} WHERE ${column} = $1 AND hour >= date_trunc('hour', $2::timestamptz, 'UTC') AND hour < $3
              GROUP BY 1 ORDER BY 1`,
      values: [toBytea(subject), range.from, range.to, bucket],
    });
    return rows.map(volume);
  }

  /**
   * What each counterparty paid (or was paid) in the UTC days the range touches, largest first: a
   * provider's consumers, or a consumer's providers.
   */
  async counterparties(
    side: 'provider' | 'consumer',
    subject: Hex,
    range: Range,
    limit: number,
  ): Promise<Array<{ counterparty: Hex; amount: bigint; exchanges: number }>> {
    const other = side === 'provider' ? 'consumer' : 'provider';
    const { rows } = await this.pool.query({
      name: `history.${side}-counterparties`,
      text: `SELECT ${other} AS counterparty, sum(amount)::text AS amount, sum(exchanges)::text AS exchanges
               FROM pair_daily WHERE ${side} = $1 AND day >= date_trunc('day', $2::timestamptz, 'UTC') AND day < $3
              GROUP BY ${other} ORDER BY sum(amount) DESC, ${other} LIMIT $4`,
      values: [toBytea(subject), range.from, range.to, limit],
    });
    return rows.map((row) => ({
      counterparty: fromBytea(row.counterparty),
      amount: BigInt(row.amount),
      exchanges: Number(row.exchanges),
    }));
  }

  /** A provider's books: promised by the hub, settled on-chain; undefined for a provider the hub never promised. */
  async providerBooks(provider: Hex): Promise<{ promised: bigint; settled: bigint } | undefined> {
    const { rows } = await this.pool.query('SELECT promised::text, settled::text FROM providers WHERE address = $1', [
      toBytea(provider),
    ]);
    return rows[0] ? { promised: BigInt(rows[0].promised), settled: BigInt(rows[0].settled) } : undefined;
  }

  /** A provider's settlements created in the range, newest first, with the gas their transaction used. */
  async providerSettlements(provider: Hex, range: Range, limit: number): Promise<SettlementRow[]> {
    const { rows } = await this.pool.query({
      name: 'history.provider-settlements',
      text: `SELECT s.id, s.status, s.amount::text AS total, s.payload, s.error, s.error_code, s.tx_hash,
                    t.gas_used::text AS gas_used, s.created_at, s.updated_at
               FROM settlements s LEFT JOIN transactions t ON t.hash = s.tx_hash AND t.status = 'mined'
              WHERE s.subject = $1 AND s.kind = 'provider' AND s.created_at >= $2 AND s.created_at < $3
              ORDER BY s.created_at DESC, s.id LIMIT $4`,
      values: [toBytea(provider), range.from, range.to, limit],
    });
    return rows.map((row) => ({
      id: row.id,
      status: row.status,
      total: BigInt(row.total),
      payload: row.payload ?? {},
      error: row.error === null ? null : { code: row.error_code ?? 'ERROR', message: row.error },
      txHash: fromByteaOrNull(row.tx_hash),
      gasUsed: row.gas_used === null ? null : BigInt(row.gas_used),
      createdAt: row.created_at,
      updatedAt: row.updated_at,
    }));
  }

  /** The last sample of the hub's money in each bucket of the range. */
  async hubMoney(
    range: Range,
    bucket: HistoryBucket,
  ): Promise<Array<{ at: Date; stake: bigint; freeFunds: bigint; liabilities: bigint }>> {
    const { rows } = await this.pool.query({
      name: 'history.hub-money',
      text: `SELECT DISTINCT ON (date_trunc($3, at, 'UTC')) at, stake::text, free_funds::text, liabilities::text
               FROM hub_snapshots WHERE at >= $1 AND at < $2
              ORDER BY date_trunc($3, at, 'UTC'), at DESC`,
      values: [range.from, range.to, bucket],
    });
    return rows.map((row) => ({
      at: row.at,
      stake: BigInt(row.stake),
      freeFunds: BigInt(row.free_funds),
      liabilities: BigInt(row.liabilities),
    }));
  }

  /** Samples the hub's money for the current minute, unless another replica did. */
  async recordMoney(sample: { stake: bigint; freeFunds: bigint; liabilities: bigint }): Promise<void> {
    await this.pool.query(
      `INSERT INTO hub_snapshots (at, stake, free_funds, liabilities)
       VALUES (date_trunc('minute', now(), 'UTC'), $1, $2, $3) ON CONFLICT (at) DO NOTHING`,
      [sample.stake.toString(), sample.freeFunds.toString(), sample.liabilities.toString()],
    );
  }

  /** The transactions the hub's keys got mined in the range, newest first. */
  async hubBatches(range: Range, limit: number) {
    const { rows } = await this.pool.query({
      name: 'history.hub-batches',
      text: `SELECT hash, kind, claims, gas_used::text AS gas_used, block, created_at
               FROM transactions WHERE status = 'mined' AND created_at >= $1 AND created_at < $2
              ORDER BY created_at DESC LIMIT $3`,
      values: [range.from, range.to, limit],
    });
    return rows.map((row) => ({
      hash: fromBytea(row.hash),
      kind: row.kind as 'consumer' | 'provider' | 'identity' | 'beneficiary',
      claims: Number(row.claims),
      gasUsed: BigInt(row.gas_used ?? 0),
      block: Number(row.block),
      at: row.created_at as Date,
    }));
  }
}
