import type { Pool, PoolClient, QueryConfig } from 'pg';
import { byteaArray, fromBytea, fromByteaOrNull, type Hex, numericArray, toBytea } from '../db/bytes';
import { withTransaction } from '../db/transaction';
import {
  type AgreementState,
  agreementKey,
  type BatchState,
  type BatchWrites,
  type BooksRead,
  booksReadOf,
  type ConsumerState,
  type ExchangeCandidate,
  type ExchangeRecord,
  type ProviderState,
} from '../exchange/exchange.rules';

/** The SQLSTATE of `chit_require_unchanged_books` (migration 0007): a row the batch decided on changed. */
const BOOKS_CHANGED = 'CHB01';
const DEADLOCK = '40P01';

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
 * The exchange's SQL: one transaction per batch of candidates, and one fsync. A batch decided on rows
 * held in memory is one checked statement ({@link ExchangeRepository.writeUnlocked}); one decided on rows
 * read here locks them in one global order (consumers, then providers, each sorted by address), so that
 * batches on several replicas never deadlock, and writes through the same statement. The statements are
 * named, so each connection parses and plans them once (prepared statements).
 */
export class ExchangeRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Locks the rows `candidates` touch, lets `decide` rule on them, writes what it decided and commits.
   * Runs the whole batch again on a serialization failure, a deadlock, or a hashlock recorded after it
   * was read.
   */
  async inBatch<T>(
    candidates: ExchangeCandidate[],
    decide: (state: BatchState) => { writes: BatchWrites; result: T },
  ): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await withTransaction(
          this.pool,
          async (client) => {
            const state = await this.lock(client, candidates);
            const read = booksReadOf(state);
            const { writes, result } = decide(state);
            const statement = writeStatement(writes, read);
            if (statement) await client.query(statement);
            return result;
          },
          { retry: 4 },
        );
      } catch (error) {
        // The locks hold every row the batch read but a hashlock another provider's batch recorded
        // after the read: decided again, it is a repeat or HASHLOCK_REUSED.
        if ((error as { code?: string }).code !== BOOKS_CHANGED || attempt >= 4) throw error;
      }
    }
  }

  /**
   * Writes a batch decided on `read`, rows the hub holds in memory and did not lock, in one statement and
   * its own transaction (one round trip, one fsync). The statement checks that every row the decisions
   * read is still as `read` holds it, and that no exchange of the batch is recorded yet; when one is not,
   * it writes nothing and this answers false. A deadlock with another writer also answers false.
   */
  async writeUnlocked(writes: BatchWrites, read: BooksRead): Promise<boolean> {
    const statement = writeStatement(writes, read);
    if (!statement) return true;
    try {
      await this.pool.query(statement);
      return true;
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === BOOKS_CHANGED || code === DEADLOCK) return false;
      throw error;
    }
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

/**
 * Every write of a batch in one statement (one round trip), or undefined when it writes nothing: credits
 * only ever come with a new exchange. The statement writes each consumer, provider and agreement only
 * where the row still holds what the decisions read (`read`), records each new exchange only where its
 * hashlock is not recorded yet, and aborts (BOOKS_CHANGED) unless every write found its row, so a batch
 * decided on rows that changed meanwhile writes nothing. The history rollups (migration 0006) take the
 * new exchanges' increments in the same statement; their provider, consumer and pair rows belong to rows
 * this batch writes, so they add no wait, and the hub's row is one of 16 stripes.
 */
function writeStatement(writes: BatchWrites, read: BooksRead): QueryConfig | undefined {
  if (writes.exchanges.length === 0) return undefined;
  // Every new exchange carries its R; reveals are of earlier exchanges (a statement's CTEs would not
  // see each other's rows).
  const reveals = [...writes.reveals];
  // Rows in address order, consumers first, as the locked way locks them: the statement's updates take
  // their row locks in the order of its arrays, so it and other batches wait for one another rather
  // than deadlock.
  const byAddress = (a: { address: Hex }, b: { address: Hex }) => (a.address < b.address ? -1 : 1);
  const consumers = [...writes.consumers.values()]
    .sort(byAddress)
    .map((row) => ({ row, was: read.consumers.get(row.address)! }));
  const providers = [...writes.providers.values()]
    .sort(byAddress)
    .map((row) => ({ row, was: read.providers.get(row.address)! }));
  const agreements = [...writes.agreements].map(([key, row]) => ({ row, was: read.agreements.get(key) }));
  const updated = agreements.filter((a) => a.was) as Array<{ row: AgreementState; was: AgreementState }>;
  const inserted = agreements.filter((a) => !a.was).map((a) => a.row);
  const exchanges = writes.exchanges;
  return {
    name: 'exchange.write',
    text: `WITH
     consumer_updates AS (
       UPDATE consumers c
          SET signed_total = v.signed_total, credited = v.credited, best_hashlock = v.best_hashlock, updated_at = now()
         FROM unnest($1::bytea[], $2::numeric[], $3::numeric[], $4::bytea[],
                     $5::numeric[], $6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::bytea[])
           AS v(address, signed_total, credited, best_hashlock,
                balance_was, settled_was, exit_amount_was, exit_reserved_was, signed_total_was, credited_was, best_hashlock_was)
        WHERE c.address = v.address
          AND c.balance = v.balance_was AND c.settled = v.settled_was
          AND c.exit_amount = v.exit_amount_was AND c.exit_reserved = v.exit_reserved_was
          AND c.signed_total = v.signed_total_was AND c.credited = v.credited_was
          AND c.best_hashlock IS NOT DISTINCT FROM v.best_hashlock_was
       RETURNING 1),
     provider_updates AS (
       UPDATE providers p
          SET promised = v.promised, latest_hashlock = v.latest_hashlock,
              unrevealed_hashlock = v.unrevealed_hashlock, updated_at = now()
         FROM unnest($12::bytea[], $13::numeric[], $14::bytea[], $15::bytea[], $16::numeric[], $17::bytea[], $18::bytea[])
           AS v(address, promised, latest_hashlock, unrevealed_hashlock, promised_was, latest_hashlock_was, unrevealed_hashlock_was)
        WHERE p.address = v.address AND p.promised = v.promised_was
          AND p.latest_hashlock IS NOT DISTINCT FROM v.latest_hashlock_was
          AND p.unrevealed_hashlock IS NOT DISTINCT FROM v.unrevealed_hashlock_was
       RETURNING 1),
     agreement_updates AS (
       UPDATE agreements a SET credited_total = v.credited_total
         FROM unnest($19::bytea[], $20::bytea[], $21::bytea[], $22::numeric[], $23::numeric[])
           AS v(provider, agreement_id, consumer, credited_total, credited_total_was)
        WHERE a.provider = v.provider AND a.agreement_id = v.agreement_id
          AND a.consumer = v.consumer AND a.credited_total = v.credited_total_was
       RETURNING 1),
     agreement_inserts AS (
       INSERT INTO agreements (provider, agreement_id, consumer, credited_total)
       SELECT * FROM unnest($24::bytea[], $25::bytea[], $26::bytea[], $27::numeric[])
       ON CONFLICT (provider, agreement_id) DO NOTHING
       RETURNING 1),
     exchange_inserts AS (
       INSERT INTO exchanges (hashlock, provider, consumer, agreement_id, agreement_total, consumer_total,
                              consumer_signature, increment, hub_total, encrypted_preimage, preimage)
       SELECT * FROM unnest($28::bytea[], $29::bytea[], $30::bytea[], $31::bytea[], $32::numeric[], $33::numeric[],
                            $34::bytea[], $35::numeric[], $36::numeric[], $37::bytea[], $38::bytea[])
       ON CONFLICT (hashlock) DO NOTHING
       RETURNING 1),
     reveal_updates AS (
       UPDATE exchanges e SET preimage = v.preimage
         FROM unnest($39::bytea[], $40::bytea[]) AS v(hashlock, preimage)
        WHERE e.hashlock = v.hashlock AND e.preimage IS NULL),
     new_exchanges AS (
       SELECT * FROM unnest($29::bytea[], $30::bytea[], $35::numeric[]) AS v(provider, consumer, increment)),
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
     SELECT chit_require_unchanged_books(
       (SELECT count(*) FROM consumer_updates) = cardinality($1::bytea[])
       AND (SELECT count(*) FROM provider_updates) = cardinality($12::bytea[])
       AND (SELECT count(*) FROM agreement_updates) = cardinality($19::bytea[])
       AND (SELECT count(*) FROM agreement_inserts) = cardinality($24::bytea[])
       AND (SELECT count(*) FROM exchange_inserts) = cardinality($28::bytea[]))`,
    values: [
      byteaArray(consumers.map(({ row }) => row.address)),
      numericArray(consumers.map(({ row }) => row.signedTotal)),
      numericArray(consumers.map(({ row }) => row.credited)),
      byteaArray(consumers.map(({ row }) => row.bestHashlock)),
      numericArray(consumers.map(({ was }) => was.balance)),
      numericArray(consumers.map(({ was }) => was.settled)),
      numericArray(consumers.map(({ was }) => was.exitAmount)),
      numericArray(consumers.map(({ was }) => was.exitReserved)),
      numericArray(consumers.map(({ was }) => was.signedTotal)),
      numericArray(consumers.map(({ was }) => was.credited)),
      byteaArray(consumers.map(({ was }) => was.bestHashlock)),
      byteaArray(providers.map(({ row }) => row.address)),
      numericArray(providers.map(({ row }) => row.promised)),
      byteaArray(providers.map(({ row }) => row.latestHashlock)),
      byteaArray(providers.map(({ row }) => row.unrevealedHashlock)),
      numericArray(providers.map(({ was }) => was.promised)),
      byteaArray(providers.map(({ was }) => was.latestHashlock)),
      byteaArray(providers.map(({ was }) => was.unrevealedHashlock)),
      byteaArray(updated.map(({ row }) => row.provider)),
      byteaArray(updated.map(({ row }) => row.agreementId)),
      byteaArray(updated.map(({ was }) => was.consumer)),
      numericArray(updated.map(({ row }) => row.creditedTotal)),
      numericArray(updated.map(({ was }) => was.creditedTotal)),
      byteaArray(inserted.map((row) => row.provider)),
      byteaArray(inserted.map((row) => row.agreementId)),
      byteaArray(inserted.map((row) => row.consumer)),
      numericArray(inserted.map((row) => row.creditedTotal)),
      byteaArray(exchanges.map((r) => r.hashlock)),
      byteaArray(exchanges.map((r) => r.provider)),
      byteaArray(exchanges.map((r) => r.consumer)),
      byteaArray(exchanges.map((r) => r.agreementId)),
      numericArray(exchanges.map((r) => r.agreementTotal)),
      numericArray(exchanges.map((r) => r.consumerTotal)),
      byteaArray(exchanges.map((r) => r.consumerSignature)),
      numericArray(exchanges.map((r) => r.increment)),
      numericArray(exchanges.map((r) => r.hubTotal)),
      byteaArray(exchanges.map((r) => r.encryptedPreimage)),
      byteaArray(exchanges.map((r) => r.preimage)),
      byteaArray(reveals.map(([hashlock]) => hashlock)),
      byteaArray(reveals.map(([, preimage]) => preimage)),
    ],
  };
}
