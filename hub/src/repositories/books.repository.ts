import type { Pool } from 'pg';
import { fromBytea, fromByteaOrNull, type Hex, toBytea } from '../db/bytes';

export interface ConsumerBooks {
  address: Hex;
  balance: bigint;
  settled: bigint;
  signedTotal: bigint;
  credited: bigint;
  exitAmount: bigint;
  /** Reserved for co-signed instant exits (instant_exits). */
  exitReserved: bigint;
  exitReadyAt: Date | null;
  bestHashlock: Hex | null;
}

export interface ProviderBooks {
  address: Hex;
  promised: bigint;
  settled: bigint;
  latestHashlock: Hex | null;
}

/** Reads of consumer and provider books for the data API. */
export class BooksRepository {
  constructor(private readonly pool: Pool) {}

  async consumer(address: Hex): Promise<ConsumerBooks | undefined> {
    const { rows } = await this.pool.query('SELECT * FROM consumers WHERE address = $1', [toBytea(address)]);
    const row = rows[0];
    if (!row) return undefined;
    return {
      address: fromBytea(row.address),
      balance: BigInt(row.balance),
      settled: BigInt(row.settled),
      signedTotal: BigInt(row.signed_total),
      credited: BigInt(row.credited),
      exitAmount: BigInt(row.exit_amount),
      exitReserved: BigInt(row.exit_reserved),
      exitReadyAt: row.exit_ready_at,
      bestHashlock: fromByteaOrNull(row.best_hashlock),
    };
  }

  async provider(address: Hex): Promise<ProviderBooks | undefined> {
    const { rows } = await this.pool.query('SELECT * FROM providers WHERE address = $1', [toBytea(address)]);
    const row = rows[0];
    if (!row || row.latest_hashlock === null) return undefined;
    return {
      address: fromBytea(row.address),
      promised: BigInt(row.promised),
      settled: BigInt(row.settled),
      latestHashlock: fromByteaOrNull(row.latest_hashlock),
    };
  }
}
