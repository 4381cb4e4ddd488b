import type { Pool } from 'pg';
import { fromBytea, fromByteaOrNull, type Hex, toBytea } from '../db/bytes';
import { withTransaction } from '../db/transaction';
import type { ExchangeRecord } from '../exchange/exchange.rules';
import type {
  NewSettlement,
  SettlementFacts,
  SettlementKind,
  SettlementObserver,
  SettlementRecord,
  SettlementWork,
} from '../settlement/settlement.types';
import { toExchangeRecord } from './exchange.repository';

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

/**
 * The settlement pipeline's SQL: settlements, the due consumers and providers, and the reorgs that
 * take confirmed settlements away.
 */
export class SettlementRepository {
  constructor(
    private readonly pool: Pool,
    private readonly confirmed?: SettlementObserver,
  ) {}

  /** Observes first confirmations only: one confirmed again after a reorg was observed the first time. */
  private observeConfirmed(rows: { kind: SettlementKind; seconds: string | number; again?: boolean }[]): void {
    for (const row of rows) if (!row.again) this.confirmed?.(row.kind, Number(row.seconds));
  }

  // ------------------------------------------------------------ settlements

  async get(id: string): Promise<SettlementRecord | undefined> {
    const { rows } = await this.pool.query('SELECT * FROM settlements WHERE id = $1', [id]);
    return rows[0] ? toSettlement(rows[0]) : undefined;
  }

  async getMany(ids: readonly string[]): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query('SELECT * FROM settlements WHERE id = ANY($1::text[])', [ids]);
    return rows.map(toSettlement);
  }

  /** Inserts the settlements not recorded yet (queued); returns the ones it inserted. */
  async insert(settlements: readonly NewSettlement[]): Promise<SettlementRecord[]> {
    if (settlements.length === 0) return [];
    const { rows } = await this.pool.query(
      `INSERT INTO settlements (id, kind, subject, amount, status, payload)
       SELECT v.id, v.kind, v.subject, v.amount, 'queued', v.payload
         FROM unnest($1::text[], $2::text[], $3::bytea[], $4::numeric[], $5::jsonb[])
           AS v(id, kind, subject, amount, payload)
       ON CONFLICT (id) DO NOTHING
       RETURNING *`,
      [
        settlements.map((s) => s.id),
        settlements.map((s) => s.kind),
        settlements.map((s) => toBytea(s.subject)),
        settlements.map((s) => s.amount.toString()),
        settlements.map((s) => JSON.stringify(s.payload)),
      ],
    );
    return rows.map(toSettlement);
  }

  /** Puts a failed settlement back in the queue with `payload`; undefined when it is not failed. */
  async requeueFailed(id: string, payload?: SettlementWork['payload']): Promise<SettlementRecord | undefined> {
    const { rows } = await this.pool.query(
      `UPDATE settlements
          SET status = 'queued', error = NULL, tx_hash = NULL, lease_until = NULL,
              payload = COALESCE($2::jsonb, payload), updated_at = now()
        WHERE id = $1 AND status = 'failed'
        RETURNING *`,
      [id, payload ? JSON.stringify(payload) : null],
    );
    return rows[0] ? toSettlement(rows[0]) : undefined;
  }

  /** The failed consumer settlements of `consumer`, put back in the queue (its channel got funds again). */
  async requeueFailedConsumer(consumer: Hex): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query(
      `UPDATE settlements
          SET status = 'queued', error = NULL, tx_hash = NULL, lease_until = NULL, updated_at = now()
        WHERE kind = 'consumer' AND subject = $1 AND status = 'failed'
        RETURNING *`,
      [toBytea(consumer)],
    );
    return rows.map(toSettlement);
  }

  /** Every open settlement (queued, submitted, retrying), oldest first. */
  async open(limit: number): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query(
      `SELECT * FROM settlements WHERE status IN ('queued', 'submitted', 'retrying') ORDER BY created_at LIMIT $1`,
      [limit],
    );
    return rows.map(toSettlement);
  }

  /** Counts a job's attempt at a settlement. */
  async countAttempt(id: string): Promise<void> {
    await this.pool.query('UPDATE settlements SET attempts = attempts + 1 WHERE id = $1', [id]);
  }

  /**
   * Leases the open, unsubmitted settlements of `ids` to this replica for `ms` (a batch in the making);
   * returns the ids it leased. One leased elsewhere, or already submitted, is left out.
   */
  async lease(ids: readonly string[], ms: number): Promise<string[]> {
    const { rows } = await this.pool.query(
      `UPDATE settlements SET lease_until = now() + make_interval(secs => $2::double precision / 1000)
        WHERE id = ANY($1::text[]) AND status IN ('queued', 'retrying')
          AND (lease_until IS NULL OR lease_until < now())
        RETURNING id`,
      [ids, ms],
    );
    return rows.map((row) => row.id as string);
  }

  async releaseLease(ids: readonly string[]): Promise<void> {
    if (ids.length === 0) return;
    await this.pool.query('UPDATE settlements SET lease_until = NULL WHERE id = ANY($1::text[])', [ids]);
  }

  /**
   * Marks an open settlement retrying with `error`; one whose transaction is still pending stays
   * submitted (with the error noted): its next attempt follows that transaction. A lease another
   * replica holds on it is left alone.
   */
  async markRetrying(id: string, error: string): Promise<void> {
    await this.pool.query(
      `UPDATE settlements s
          SET error = $2, updated_at = now(),
              status = CASE WHEN s.status = 'submitted' AND EXISTS (
                         SELECT 1 FROM transactions c
                           JOIN transactions t ON t.sender = c.sender AND t.nonce = c.nonce
                          WHERE c.hash = s.tx_hash AND t.status = 'pending')
                       THEN 'submitted' ELSE 'retrying' END
        WHERE s.id = $1 AND s.status IN ('queued', 'submitted', 'retrying')`,
      [id, error],
    );
  }

  /** Marks an open settlement failed with `error`; false when it was already confirmed or failed. */
  async markFailed(id: string, error: string): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE settlements SET status = 'failed', error = $2, lease_until = NULL, updated_at = now()
        WHERE id = $1 AND status IN ('queued', 'submitted', 'retrying')`,
      [id, error],
    );
    return result.rowCount === 1;
  }

  /**
   * Marks an open settlement confirmed, with the transaction that settled it (null when another
   * party's transaction did and its hash is not known) and facts merged into its payload. With a
   * transaction, only while it is recorded mined: one a reorg took away meanwhile (see
   * {@link reopenReorged}) leaves the settlement open.
   */
  async markConfirmed(id: string, txHash: Hex | null, facts: SettlementFacts = {}): Promise<boolean> {
    const result = await this.pool.query(
      `UPDATE settlements
          SET status = 'confirmed', tx_hash = COALESCE($2, tx_hash), error = NULL, lease_until = NULL,
              payload = payload || $3::jsonb, updated_at = now()
        WHERE id = $1 AND status IN ('queued', 'submitted', 'retrying')
          AND ($2::bytea IS NULL OR EXISTS (SELECT 1 FROM transactions t WHERE t.hash = $2 AND t.status = 'mined'))
        RETURNING kind, extract(epoch FROM now() - created_at) AS seconds, payload ? 'reorgedOut' AS again`,
      [id, txHash ? toBytea(txHash) : null, JSON.stringify(facts)],
    );
    this.observeConfirmed(result.rows);
    return result.rowCount === 1;
  }

  /**
   * A settlement event seen by the chain follower: every settlement of `subject` for a total up to
   * `total` is settled, by this transaction or by an earlier one (even one the hub gave up on, if its
   * transaction was mined after all). Returns the ids it confirmed.
   */
  async confirmSettledUpTo(kind: 'consumer' | 'provider', subject: Hex, total: bigint, txHash: Hex): Promise<string[]> {
    const { rows } = await this.pool.query(
      `UPDATE settlements
          SET status = 'confirmed', error = NULL, lease_until = NULL, updated_at = now(),
              tx_hash = CASE WHEN amount = $3 OR tx_hash IS NULL THEN $4 ELSE tx_hash END
        WHERE kind = $1 AND subject = $2 AND amount <= $3 AND status <> 'confirmed'
        RETURNING id, kind, extract(epoch FROM now() - created_at) AS seconds, payload ? 'reorgedOut' AS again`,
      [kind, toBytea(subject), total.toString(), toBytea(txHash)],
    );
    this.observeConfirmed(rows);
    return rows.map((row) => row.id as string);
  }

  // ------------------------------------------------------------ reorgs

  /**
   * The hub's transactions recorded mined in a block after `block` that carry confirmed settlements,
   * newest first: the ones a reorg back to `block` may have taken away. Only those recorded in the
   * last day (the index of mined transactions): no reorg reaches further back.
   */
  async minedCarryingConfirmed(block: bigint, limit: number): Promise<{ hash: Hex; block: bigint }[]> {
    const { rows } = await this.pool.query(
      `SELECT t.hash, t.block FROM transactions t
        WHERE t.status = 'mined' AND t.kind IN ('consumer', 'provider', 'identity', 'beneficiary')
          AND t.created_at > now() - interval '1 day' AND t.block > $1
          AND EXISTS (SELECT 1 FROM settlements s WHERE s.tx_hash = t.hash AND s.status = 'confirmed')
        ORDER BY t.block DESC LIMIT $2`,
      [block.toString(), limit],
    );
    return rows.map((row) => ({ hash: fromBytea(row.hash), block: BigInt(row.block) }));
  }

  /**
   * `hash`, recorded mined in `block`, is no longer on the chain: it is pending again (its tracker
   * broadcasts it again, replaces it, or finds its nonce taken and gives it up) and the settlements it
   * confirmed are submitted with it, noting why. The same rows, so a claim is never counted twice.
   * Returns them; none when the transaction is no longer recorded mined in `block`.
   */
  async reopenReorged(hash: Hex, block: bigint, reason: string): Promise<SettlementRecord[]> {
    return withTransaction(this.pool, async (client) => {
      const reverted = await client.query(
        `UPDATE transactions SET status = 'pending', block = NULL, updated_at = now()
          WHERE hash = $1 AND status = 'mined' AND block = $2`,
        [toBytea(hash), block.toString()],
      );
      if (reverted.rowCount !== 1) return [];
      const { rows } = await client.query(
        `UPDATE settlements
            SET status = 'submitted', error = $2, lease_until = NULL, updated_at = now(),
                payload = payload || jsonb_build_object('reorgedOut', $3::text)
          WHERE tx_hash = $1 AND status = 'confirmed'
          RETURNING *`,
        [toBytea(hash), reason, hash],
      );
      return rows.map(toSettlement);
    });
  }

  /**
   * Confirmed consumer and provider settlements above what the books (the follower's view of the
   * chain, rewound after a reorg) say is settled, and not carried by a transaction of the hub recorded
   * mined (those are checked by their block): confirmed by an event or by another party's transaction.
   * It reads every confirmed settlement: for after a rewind, not for a schedule.
   */
  async confirmedAboveBooks(limit: number): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query(
      `SELECT s.* FROM settlements s
         LEFT JOIN consumers c ON s.kind = 'consumer' AND c.address = s.subject
         LEFT JOIN providers p ON s.kind = 'provider' AND p.address = s.subject
        WHERE s.status = 'confirmed' AND s.kind IN ('consumer', 'provider')
          AND s.amount > COALESCE(c.settled, p.settled, 0)
          AND NOT EXISTS (SELECT 1 FROM transactions t WHERE t.hash = s.tx_hash AND t.status = 'mined')
        ORDER BY s.updated_at DESC LIMIT $1`,
      [limit],
    );
    return rows.map(toSettlement);
  }

  /**
   * A confirmed settlement the chain does not have settled (a reorg took its settlement away): it is
   * submitted again when a pending transaction of the hub carries it (its job follows that one), else
   * retrying (its job sends it again). Undefined when it is not confirmed.
   */
  async reopenUnsettled(id: string, reason: string): Promise<SettlementRecord | undefined> {
    const { rows } = await this.pool.query(
      `UPDATE settlements s
          SET error = $2, lease_until = NULL, updated_at = now(),
              payload = payload || jsonb_build_object('reorgedOut', '0x' || encode(s.tx_hash, 'hex')),
              status = CASE WHEN EXISTS (SELECT 1 FROM transactions t WHERE t.hash = s.tx_hash AND t.status = 'pending')
                       THEN 'submitted' ELSE 'retrying' END
        WHERE s.id = $1 AND s.status = 'confirmed'
        RETURNING *`,
      [id, reason],
    );
    return rows[0] ? toSettlement(rows[0]) : undefined;
  }

  /** The settlements a transaction (or any transaction with its nonce) carries. */
  async settlementsOfTransactions(hashes: readonly Hex[]): Promise<SettlementRecord[]> {
    const { rows } = await this.pool.query('SELECT * FROM settlements WHERE tx_hash = ANY($1::bytea[])', [
      hashes.map(toBytea),
    ]);
    return rows.map(toSettlement);
  }

  // ------------------------------------------------------------ due work

  /**
   * Consumers whose highest signed total is above what they settled, whose channel holds something,
   * and for which no settlement of that total (or more) exists yet. Exiting consumers first.
   */
  async dueConsumers(limit: number, only?: Hex): Promise<DueConsumer[]> {
    const { rows } = await this.pool.query(
      `SELECT c.address AS c_address, c.balance AS c_balance, c.settled AS c_settled,
              c.exit_ready_at AS c_exit_ready_at, e.*
         FROM consumers c
         JOIN exchanges e ON e.hashlock = c.best_hashlock
        WHERE c.signed_total > c.settled AND c.balance > 0
          AND ($2::bytea IS NULL OR c.address = $2)
          AND NOT EXISTS (
            SELECT 1 FROM settlements s
             WHERE s.kind = 'consumer' AND s.subject = c.address AND s.amount >= c.signed_total)
        ORDER BY c.exit_ready_at NULLS LAST, c.signed_total - c.settled DESC
        LIMIT $1`,
      [limit, only ? toBytea(only) : null],
    );
    return rows.map((row) => ({
      consumer: fromBytea(row.c_address),
      balance: BigInt(row.c_balance),
      settled: BigInt(row.c_settled),
      exitReadyAt: row.c_exit_ready_at,
      exchange: toExchangeRecord(row),
    }));
  }

  /** The consumer's highest promise above `settled` whose R is known, if any. */
  async bestRevealedExchange(consumer: Hex, settled: bigint): Promise<ExchangeRecord | undefined> {
    const { rows } = await this.pool.query(
      `SELECT * FROM exchanges WHERE consumer = $1 AND consumer_total > $2 AND preimage IS NOT NULL
        ORDER BY consumer_total DESC LIMIT 1`,
      [toBytea(consumer), settled.toString()],
    );
    return rows[0] ? toExchangeRecord(rows[0]) : undefined;
  }

  /** Providers with at least `threshold` unsettled and no settlement of their latest total yet. */
  async dueProviders(threshold: bigint, limit: number): Promise<DueProvider[]> {
    const { rows } = await this.pool.query(
      `SELECT p.address AS p_address, p.promised AS p_promised, p.settled AS p_settled, e.*
         FROM providers p
         JOIN exchanges e ON e.hashlock = p.latest_hashlock
        WHERE p.promised - p.settled >= $1 AND p.promised > p.settled
          AND NOT EXISTS (
            SELECT 1 FROM settlements s
             WHERE s.kind = 'provider' AND s.subject = p.address AND s.amount >= p.promised)
        ORDER BY p.promised - p.settled DESC
        LIMIT $2`,
      [threshold.toString(), limit],
    );
    return rows.map((row) => ({
      provider: fromBytea(row.p_address),
      promised: BigInt(row.p_promised),
      settled: BigInt(row.p_settled),
      exchange: toExchangeRecord(row),
    }));
  }

  /** The provider's exchanges, latest (highest hub total) first. */
  async providerExchanges(provider: Hex, limit: number): Promise<ExchangeRecord[]> {
    const { rows } = await this.pool.query(
      'SELECT * FROM exchanges WHERE provider = $1 ORDER BY hub_total DESC LIMIT $2',
      [toBytea(provider), limit],
    );
    return rows.map(toExchangeRecord);
  }

  async exchange(hashlock: Hex): Promise<ExchangeRecord | undefined> {
    const { rows } = await this.pool.query('SELECT * FROM exchanges WHERE hashlock = $1', [toBytea(hashlock)]);
    return rows[0] ? toExchangeRecord(rows[0]) : undefined;
  }

  /** Records R the hub opened from an exchange's box. */
  async recordPreimage(hashlock: Hex, preimage: Hex): Promise<void> {
    await this.pool.query('UPDATE exchanges SET preimage = $2 WHERE hashlock = $1 AND preimage IS NULL', [
      toBytea(hashlock),
      toBytea(preimage),
    ]);
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a pg row
function toSettlement(row: any): SettlementRecord {
  // The kind and its payload were written together from a NewSettlement.
  return {
    id: row.id,
    kind: row.kind,
    subject: fromBytea(row.subject),
    amount: BigInt(row.amount),
    status: row.status,
    txHash: fromByteaOrNull(row.tx_hash),
    error: row.error,
    payload: row.payload ?? {},
    attempts: row.attempts,
    createdAt: row.created_at,
    updatedAt: row.updated_at,
  };
}
