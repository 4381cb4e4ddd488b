import type { Pool, PoolClient } from 'pg';
import { fromBytea, fromByteaOrNull, type Hex, toBytea } from '../db/bytes';
import { withTransaction } from '../db/transaction';
import {
  type AgreementState,
  agreementKey,
  type BatchState,
  type BatchWrites,
  type ConsumerState,
  type ExchangeCandidate,
  type ExchangeRecord,
  type ProviderState,
} from '../exchange/exchange.rules';

/** A consumers row (balance, settled, exit_amount, exit_reserved, signed_total, credited, best_hashlock) as the rules see it. */
// biome-ignore lint/suspicious/noExplicitAny: a pg row
export function toConsumerState(address: Hex, row: any): ConsumerState {
  return {
    address,
    balance: BigInt(row.balance),
    settled: BigInt(row.settled),
    exitAmount: BigInt(row.exit_amount),
    exitReserved: BigInt(row.exit_reserved),
    signedTotal: BigInt(row.signed_total),
    credited: BigInt(row.credited),
    bestHashlock: fromByteaOrNull(row.best_hashlock),
  };
}

/** A providers row (promised, latest_hashlock, unrevealed_hashlock) as the rules see it. */
// biome-ignore lint/suspicious/noExplicitAny: a pg row
export function toProviderState(address: Hex, row: any): ProviderState {
  return {
    address,
    promised: BigInt(row.promised),
    latestHashlock: fromByteaOrNull(row.latest_hashlock),
    unrevealedHashlock: fromByteaOrNull(row.unrevealed_hashlock),
  };
}

/**
 * The exchange's SQL: one transaction per batch of candidates. Rows are locked in one global order
 * (consumers, then providers, each sorted by address) so that batches on several replicas never
 * deadlock, and one COMMIT (one fsync) covers the whole batch. The batch's statements are named, so
 * each connection parses and plans them once (prepared statements).
 */
export class ExchangeRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Locks the rows `candidates` touch, lets `decide` rule on them, writes what it decided and commits.
   * Retries the whole batch on a serialization failure or deadlock.
   */
  async inBatch<T>(
    candidates: ExchangeCandidate[],
    decide: (state: BatchState) => { writes: BatchWrites; result: T },
  ): Promise<T> {
    return withTransaction(
      this.pool,
      async (client) => {
        const { writes, result } = decide(await this.lock(client, candidates));
        await this.write(client, writes);
        return result;
      },
      { retry: 4 },
    );
  }

  private async lock(client: PoolClient, candidates: ExchangeCandidate[]): Promise<BatchState> {
    const consumerKeys = [...new Set(candidates.map((c) => c.consumer))].sort();
    const providerKeys = [...new Set(candidates.map((c) => c.provider))].sort();

    const consumers = new Map<Hex, ConsumerState>();
    const consumerRows = await client.query({
      name: 'exchange.lock-consumers',
      text: `SELECT address, balance, settled, exit_amount, exit_reserved, signed_total, credited, best_hashlock
         FROM consumers WHERE address = ANY($1::bytea[]) ORDER BY address FOR UPDATE`,
      values: [consumerKeys.map(toBytea)],
    });
    for (const row of consumerRows.rows) {
      const address = fromBytea(row.address);
      consumers.set(address, toConsumerState(address, row));
    }

    const providers = new Map<Hex, ProviderState>();
    const lockProviders = async (keys: Hex[]) => {
      const { rows } = await client.query({
        name: 'exchange.lock-providers',
        text: `SELECT address, promised, latest_hashlock, unrevealed_hashlock
           FROM providers WHERE address = ANY($1::bytea[]) ORDER BY address FOR UPDATE`,
        values: [keys.map(toBytea)],
      });
      for (const row of rows) {
        const address = fromBytea(row.address);
        providers.set(address, toProviderState(address, row));
      }
    };
    await lockProviders(providerKeys);
    // A provider's first exchange: an empty row means nothing (no promise yet), and creating it lets
    // FOR UPDATE lock it. The second SELECT is a new statement, so it also sees a row another batch
    // created and committed meanwhile.
    const missing = providerKeys.filter((key) => !providers.has(key));
    if (missing.length > 0) {
      await client.query({
        name: 'exchange.create-providers',
        text: 'INSERT INTO providers (address) SELECT unnest($1::bytea[]) ON CONFLICT (address) DO NOTHING',
        values: [missing.map(toBytea)],
      });
      await lockProviders(missing);
    }

    // Agreements are keyed by provider, so the provider locks above already serialise their writes.
    const agreements = new Map<string, AgreementState>();
    const agreementRows = await client.query({
      name: 'exchange.agreements',
      text: `SELECT a.provider, a.agreement_id, a.consumer, a.credited_total
         FROM agreements a
         JOIN unnest($1::bytea[], $2::bytea[]) AS k(provider, agreement_id)
           ON a.provider = k.provider AND a.agreement_id = k.agreement_id`,
      values: [candidates.map((c) => toBytea(c.provider)), candidates.map((c) => toBytea(c.agreementId))],
    });
    for (const row of agreementRows.rows) {
      const provider = fromBytea(row.provider);
      const agreementId = fromBytea(row.agreement_id);
      agreements.set(agreementKey(provider, agreementId), {
        provider,
        agreementId,
        consumer: fromBytea(row.consumer),
        creditedTotal: BigInt(row.credited_total),
      });
    }

    const hashlocks = new Set<Hex>(candidates.map((c) => c.hashlock));
    for (const provider of providers.values())
      if (provider.unrevealedHashlock) hashlocks.add(provider.unrevealedHashlock);
    const exchanges = new Map<Hex, ExchangeRecord>();
    const exchangeRows = await client.query({
      name: 'exchange.exchanges',
      text: `SELECT hashlock, provider, consumer, agreement_id, agreement_total, consumer_total, consumer_signature,
              increment, hub_total, encrypted_preimage, preimage
         FROM exchanges WHERE hashlock = ANY($1::bytea[])`,
      values: [[...hashlocks].map(toBytea)],
    });
    for (const row of exchangeRows.rows) exchanges.set(fromBytea(row.hashlock), toExchangeRecord(row));
    return { consumers, providers, agreements, exchanges };
  }

  /**
   * Every write of a batch in one statement (one round trip): credits only ever come with a new
   * exchange, so a batch without one writes nothing. The history rollups (migration 0006) take the new
   * exchanges' increments in the same statement; their provider, consumer and pair rows belong to rows
   * this batch already locked, so they add no wait, and the hub's row is one of 16 stripes.
   */
  private async write(client: PoolClient, writes: BatchWrites): Promise<void> {
    if (writes.exchanges.length === 0) return;
    // Every new exchange carries its R; reveals are of earlier exchanges (a statement's CTEs would not
    // see each other's rows).
    const reveals = [...writes.reveals];
    const consumers = [...writes.consumers.values()];
    const providers = [...writes.providers.values()];
    const agreements = [...writes.agreements.values()];
    const exchanges = writes.exchanges;
    const optional = (hex: Hex | null) => (hex ? toBytea(hex) : null);
    await client.query({
      name: 'exchange.write',
      text: `WITH
       consumer_updates AS (
         UPDATE consumers c
            SET signed_total = v.signed_total, credited = v.credited, best_hashlock = v.best_hashlock, updated_at = now()
           FROM unnest($1::bytea[], $2::numeric[], $3::numeric[], $4::bytea[])
             AS v(address, signed_total, credited, best_hashlock)
          WHERE c.address = v.address),
       provider_updates AS (
         UPDATE providers p
            SET promised = v.promised, latest_hashlock = v.latest_hashlock,
                unrevealed_hashlock = v.unrevealed_hashlock, updated_at = now()
           FROM unnest($5::bytea[], $6::numeric[], $7::bytea[], $8::bytea[])
             AS v(address, promised, latest_hashlock, unrevealed_hashlock)
          WHERE p.address = v.address),
       agreement_upserts AS (
         INSERT INTO agreements (provider, agreement_id, consumer, credited_total)
         SELECT * FROM unnest($9::bytea[], $10::bytea[], $11::bytea[], $12::numeric[])
         ON CONFLICT (provider, agreement_id) DO UPDATE SET credited_total = EXCLUDED.credited_total),
       exchange_inserts AS (
         INSERT INTO exchanges (hashlock, provider, consumer, agreement_id, agreement_total, consumer_total,
                                consumer_signature, increment, hub_total, encrypted_preimage, preimage)
         SELECT * FROM unnest($13::bytea[], $14::bytea[], $15::bytea[], $16::bytea[], $17::numeric[], $18::numeric[],
                              $19::bytea[], $20::numeric[], $21::numeric[], $22::bytea[], $23::bytea[])),
       new_exchanges AS (
         SELECT * FROM unnest($14::bytea[], $15::bytea[], $20::numeric[]) AS v(provider, consumer, increment)),
       provider_rollup AS (
         INSERT INTO provider_hourly AS r (provider, hour, amount, exchanges)
         SELECT provider, date_trunc('hour', now(), 'UTC'), sum(increment), count(*) FROM new_exchanges GROUP BY provider
         ON CONFLICT (provider, hour) DO UPDATE
           SET amount = r.amount + EXCLUDED.amount, exchanges = r.exchanges + EXCLUDED.exchanges),
       consumer_rollup AS (
         INSERT INTO consumer_hourly AS r (consumer, hour, amount, exchanges)
         SELECT consumer, date_trunc('hour', now(), 'UTC'), sum(increment), count(*) FROM new_exchanges GROUP BY consumer
         ON CONFLICT (consumer, hour) DO UPDATE
           SET amount = r.amount + EXCLUDED.amount, exchanges = r.exchanges + EXCLUDED.exchanges),
       pair_rollup AS (
         INSERT INTO pair_daily AS r (provider, consumer, day, amount, exchanges)
         SELECT provider, consumer, date_trunc('day', now(), 'UTC'), sum(increment), count(*)
           FROM new_exchanges GROUP BY provider, consumer
         ON CONFLICT (provider, consumer, day) DO UPDATE
           SET amount = r.amount + EXCLUDED.amount, exchanges = r.exchanges + EXCLUDED.exchanges),
       hub_rollup AS (
         INSERT INTO hub_hourly AS r (hour, stripe, amount, exchanges)
         SELECT date_trunc('hour', now(), 'UTC'), floor(random() * 16)::smallint, sum(increment), count(*) FROM new_exchanges
         HAVING count(*) > 0
         ON CONFLICT (hour, stripe) DO UPDATE
           SET amount = r.amount + EXCLUDED.amount, exchanges = r.exchanges + EXCLUDED.exchanges)
       UPDATE exchanges e SET preimage = v.preimage
         FROM unnest($24::bytea[], $25::bytea[]) AS v(hashlock, preimage)
        WHERE e.hashlock = v.hashlock AND e.preimage IS NULL`,
      values: [
        consumers.map((r) => toBytea(r.address)),
        consumers.map((r) => r.signedTotal.toString()),
        consumers.map((r) => r.credited.toString()),
        consumers.map((r) => optional(r.bestHashlock)),
        providers.map((r) => toBytea(r.address)),
        providers.map((r) => r.promised.toString()),
        providers.map((r) => optional(r.latestHashlock)),
        providers.map((r) => optional(r.unrevealedHashlock)),
        agreements.map((r) => toBytea(r.provider)),
        agreements.map((r) => toBytea(r.agreementId)),
        agreements.map((r) => toBytea(r.consumer)),
        agreements.map((r) => r.creditedTotal.toString()),
        exchanges.map((r) => toBytea(r.hashlock)),
        exchanges.map((r) => toBytea(r.provider)),
        exchanges.map((r) => toBytea(r.consumer)),
        exchanges.map((r) => toBytea(r.agreementId)),
        exchanges.map((r) => r.agreementTotal.toString()),
        exchanges.map((r) => r.consumerTotal.toString()),
        exchanges.map((r) => toBytea(r.consumerSignature)),
        exchanges.map((r) => r.increment.toString()),
        exchanges.map((r) => r.hubTotal.toString()),
        exchanges.map((r) => toBytea(r.encryptedPreimage)),
        exchanges.map((r) => optional(r.preimage)),
        reveals.map(([hashlock]) => toBytea(hashlock)),
        reveals.map(([, preimage]) => toBytea(preimage)),
      ],
    });
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a pg row
export function toExchangeRecord(row: any): ExchangeRecord {
  return {
    hashlock: fromBytea(row.hashlock),
    provider: fromBytea(row.provider),
    consumer: fromBytea(row.consumer),
    agreementId: fromBytea(row.agreement_id),
    agreementTotal: BigInt(row.agreement_total),
    consumerTotal: BigInt(row.consumer_total),
    consumerSignature: fromBytea(row.consumer_signature),
    increment: BigInt(row.increment),
    hubTotal: BigInt(row.hub_total),
    encryptedPreimage: fromBytea(row.encrypted_preimage),
    preimage: fromByteaOrNull(row.preimage),
  };
}

/** Reveals and recoveries: the single-row reads and writes around exchanges. */
export class RevealRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Records R for the provider's exchange with `hashlock` and clears the provider's unrevealed marker
   * if it pointed there. False when the provider has no exchange with that hashlock.
   */
  async reveal(provider: Hex, hashlock: Hex, preimage: Hex): Promise<boolean> {
    return withTransaction(this.pool, async (client) => {
      // The provider row first, like the exchange batches, so a reveal and an exchange of one provider
      // never lock in opposite orders.
      await client.query('SELECT 1 FROM providers WHERE address = $1 FOR UPDATE', [toBytea(provider)]);
      const updated = await client.query(
        `UPDATE exchanges SET preimage = COALESCE(preimage, $3) WHERE hashlock = $1 AND provider = $2`,
        [toBytea(hashlock), toBytea(provider), toBytea(preimage)],
      );
      await client.query(
        `UPDATE providers SET unrevealed_hashlock = NULL, updated_at = now()
          WHERE address = $1 AND unrevealed_hashlock = $2`,
        [toBytea(provider), toBytea(hashlock)],
      );
      return updated.rowCount === 1;
    });
  }

  /** The exchange with `hashlock`, if any. */
  async byHashlock(hashlock: Hex): Promise<ExchangeRecord | undefined> {
    const { rows } = await this.pool.query('SELECT * FROM exchanges WHERE hashlock = $1', [toBytea(hashlock)]);
    return rows[0] ? toExchangeRecord(rows[0]) : undefined;
  }

  /** The provider's latest exchange (the one its latest hub promise carries), if any. */
  async latest(provider: Hex): Promise<ExchangeRecord | undefined> {
    const { rows } = await this.pool.query(
      `SELECT e.* FROM providers p JOIN exchanges e ON e.hashlock = p.latest_hashlock WHERE p.address = $1`,
      [toBytea(provider)],
    );
    return rows[0] ? toExchangeRecord(rows[0]) : undefined;
  }
}
