import type { Pool } from 'pg';
import { fromBytea, type Hex, toBytea } from '../../db/bytes';
import { withTransaction } from '../../db/transaction';
import type { InstantExitRecord, InstantExitState } from './instant-exit.rules';

/** The instant exits' SQL: reservations (instant_exits) and what they hold back (consumers.exit_reserved). */
export class InstantExitRepository {
  constructor(private readonly pool: Pool) {}

  /**
   * Locks the consumer's row (the exchange locks it too, so the two are serialised), lets `decide`
   * rule on its books and its reservation for `nonce`, and writes the reservation `decide` returns:
   * `reserved` replaces the one for this nonce in consumers.exit_reserved.
   */
  async reserve<T>(
    consumer: Hex,
    nonce: bigint,
    decide: (
      state: InstantExitState | undefined,
    ) => Promise<{ write?: Omit<InstantExitRecord, 'updatedAt'>; result: T }>,
  ): Promise<T> {
    return withTransaction(this.pool, async (client) => {
      const { rows } = await client.query(
        `SELECT address, balance, settled, signed_total, credited, exit_amount, exit_reserved FROM consumers
          WHERE address = $1 FOR UPDATE`,
        [toBytea(consumer)],
      );
      const row = rows[0];
      let state: InstantExitState | undefined;
      if (row) {
        const existing = await client.query('SELECT * FROM instant_exits WHERE consumer = $1 AND nonce = $2', [
          toBytea(consumer),
          nonce.toString(),
        ]);
        state = {
          consumer,
          balance: BigInt(row.balance),
          settled: BigInt(row.settled),
          signedTotal: BigInt(row.signed_total),
          credited: BigInt(row.credited),
          exitAmount: BigInt(row.exit_amount),
          exitReserved: BigInt(row.exit_reserved),
          existing: existing.rows[0] ? toInstantExit(existing.rows[0]) : undefined,
        };
      }
      const { write, result } = await decide(state);
      if (write && state) {
        const before = state.existing?.status === 'reserved' ? state.existing.reserved : 0n;
        await client.query(
          `INSERT INTO instant_exits (consumer, nonce, amount, reserved, deadline, signature, status)
           VALUES ($1, $2, $3, $4, $5, $6, 'reserved')
           ON CONFLICT (consumer, nonce) DO UPDATE
             SET amount = EXCLUDED.amount, reserved = EXCLUDED.reserved, deadline = EXCLUDED.deadline,
                 signature = EXCLUDED.signature, status = 'reserved', updated_at = now()`,
          [
            toBytea(consumer),
            nonce.toString(),
            write.amount.toString(),
            write.reserved.toString(),
            write.deadline.toString(),
            toBytea(write.signature),
          ],
        );
        await client.query(
          'UPDATE consumers SET exit_reserved = exit_reserved + $2, updated_at = now() WHERE address = $1',
          [toBytea(consumer), (write.reserved - before).toString()],
        );
      }
      return result;
    });
  }

  /** Reservations still counted against their consumer (reserved or used, not released). */
  async open(consumer?: Hex): Promise<InstantExitRecord[]> {
    const { rows } = await this.pool.query(
      `SELECT * FROM instant_exits WHERE status IN ('reserved', 'used') AND ($1::bytea IS NULL OR consumer = $1)
        ORDER BY deadline`,
      [consumer ? toBytea(consumer) : null],
    );
    return rows.map(toInstantExit);
  }

  /**
   * Applies the outcomes of a sweep or an exit in one transaction: reservations marked used, and
   * reservations released (their amount no longer counts against their consumer). The consumer rows
   * first, in address order: the order the exchange locks in.
   */
  async record(outcomes: readonly { consumer: Hex; nonce: bigint; action: 'use' | 'release' }[]): Promise<void> {
    if (outcomes.length === 0) return;
    await withTransaction(this.pool, async (client) => {
      const released = outcomes.filter((o) => o.action === 'release');
      const consumers = [...new Set(released.map((o) => o.consumer))].sort();
      for (const consumer of consumers) {
        await client.query('SELECT 1 FROM consumers WHERE address = $1 FOR UPDATE', [toBytea(consumer)]);
      }
      for (const { consumer, nonce, action } of outcomes) {
        if (action === 'use') {
          await client.query(
            `UPDATE instant_exits SET status = 'used', updated_at = now()
              WHERE consumer = $1 AND nonce = $2 AND status = 'reserved'`,
            [toBytea(consumer), nonce.toString()],
          );
          continue;
        }
        const { rows } = await client.query(
          `UPDATE instant_exits SET status = 'released', updated_at = now()
            WHERE consumer = $1 AND nonce = $2 AND status IN ('reserved', 'used')
            RETURNING reserved`,
          [toBytea(consumer), nonce.toString()],
        );
        if (!rows[0]) continue;
        await client.query(
          `UPDATE consumers SET exit_reserved = GREATEST(exit_reserved - $2, 0), updated_at = now() WHERE address = $1`,
          [toBytea(consumer), rows[0].reserved],
        );
      }
    });
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a pg row
function toInstantExit(row: any): InstantExitRecord {
  return {
    consumer: fromBytea(row.consumer),
    nonce: BigInt(row.nonce),
    amount: BigInt(row.amount),
    reserved: BigInt(row.reserved),
    deadline: BigInt(row.deadline),
    signature: fromBytea(row.signature),
    status: row.status,
    updatedAt: row.updated_at,
  };
}
