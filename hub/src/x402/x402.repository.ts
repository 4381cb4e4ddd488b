import type { Pool } from 'pg';
import { fromBytea, type Hex, toBytea } from '../db/bytes';
import { withTransaction } from '../db/transaction';
import { agreementKey, type BatchState, type ExchangeCandidate, type ExchangeRecord } from '../exchange/exchange.rules';
import { toConsumerState, toExchangeRecord, toProviderState } from '../repositories/exchange.repository';

/**
 * The reads of the x402 facilitator. `state` reads the rows the exchange rules need for one candidate,
 * as the exchange's batch reads them but without locking or creating any row: `/x402/verify` runs
 * the rules on it and writes nothing.
 */
export class X402Repository {
  constructor(private readonly pool: Pool) {}

  /** The candidate's consumer, provider, agreement and the exchanges the rules look up, in one snapshot. */
  async state(candidate: ExchangeCandidate): Promise<BatchState> {
    // One snapshot for the four reads, without a lock: nothing here is written.
    return withTransaction(
      this.pool,
      async (client) => {
        const state: BatchState = {
          consumers: new Map(),
          providers: new Map(),
          agreements: new Map(),
          exchanges: new Map(),
        };
        const consumer = await client.query({
          name: 'x402.consumer',
          text: `SELECT address, balance, settled, exit_amount, exit_reserved, signed_total, credited, best_hashlock
                 FROM consumers WHERE address = $1`,
          values: [toBytea(candidate.consumer)],
        });
        for (const row of consumer.rows) {
          state.consumers.set(candidate.consumer, toConsumerState(candidate.consumer, row));
        }
        const provider = await client.query({
          name: 'x402.provider',
          text: 'SELECT promised, latest_hashlock, unrevealed_hashlock FROM providers WHERE address = $1',
          values: [toBytea(candidate.provider)],
        });
        for (const row of provider.rows) {
          state.providers.set(candidate.provider, toProviderState(candidate.provider, row));
        }
        const agreement = await client.query({
          name: 'x402.agreement',
          text: 'SELECT consumer, credited_total FROM agreements WHERE provider = $1 AND agreement_id = $2',
          values: [toBytea(candidate.provider), toBytea(candidate.agreementId)],
        });
        for (const row of agreement.rows) {
          state.agreements.set(agreementKey(candidate.provider, candidate.agreementId), {
            provider: candidate.provider,
            agreementId: candidate.agreementId,
            consumer: fromBytea(row.consumer),
            creditedTotal: BigInt(row.credited_total),
          });
        }
        const hashlocks = [candidate.hashlock];
        const unrevealed = state.providers.get(candidate.provider)?.unrevealedHashlock;
        if (unrevealed) hashlocks.push(unrevealed);
        const exchanges = await client.query({
          name: 'x402.exchanges',
          text: `SELECT hashlock, provider, consumer, agreement_id, agreement_total, consumer_total, consumer_signature,
                      increment, hub_total, encrypted_preimage, preimage
                 FROM exchanges WHERE hashlock = ANY($1::bytea[])`,
          values: [hashlocks.map(toBytea)],
        });
        for (const row of exchanges.rows) state.exchanges.set(fromBytea(row.hashlock), toExchangeRecord(row));
        return state;
      },
      { mode: 'ISOLATION LEVEL REPEATABLE READ READ ONLY' },
    );
  }

  /** The exchange recorded with `hashlock`, if any. */
  async exchange(hashlock: Hex): Promise<ExchangeRecord | undefined> {
    const { rows } = await this.pool.query({
      name: 'x402.exchange',
      text: 'SELECT * FROM exchanges WHERE hashlock = $1',
      values: [toBytea(hashlock)],
    });
    return rows[0] ? toExchangeRecord(rows[0]) : undefined;
  }
}
