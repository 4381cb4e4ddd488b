import type { Pool, PoolClient } from 'pg';

const SERIALIZATION_FAILURE = '40001';
const DEADLOCK = '40P01';

export interface TransactionOptions {
  /** Runs of `work` again after a serialization failure or a deadlock (0: none). */
  retry?: number;
  /** `BEGIN`'s modes, e.g. `ISOLATION LEVEL REPEATABLE READ READ ONLY`. */
  mode?: string;
}

/** A transaction held open across calls: for work that must commit before it goes on (a write-ahead record). */
export interface OpenTransaction {
  client: PoolClient;
  commit(): Promise<void>;
  /** Rolls back unless committed, and returns the connection. */
  release(): Promise<void>;
}

/** Opens a transaction on a connection of `pool`; the caller commits and releases it. */
export async function openTransaction(pool: Pool, mode?: string): Promise<OpenTransaction> {
  const client = await pool.connect();
  try {
    await client.query(mode ? `BEGIN ${mode}` : 'BEGIN');
  } catch (error) {
    client.release();
    throw error;
  }
  let done = false;
  return {
    client,
    commit: async () => {
      await client.query('COMMIT');
      done = true;
    },
    release: async () => {
      if (!done) await client.query('ROLLBACK').catch(() => {});
      done = true;
      client.release();
    },
  };
}

/**
 * Runs `work` in one transaction and commits; rolls back on an error. With `retry`, a serialization
 * failure or deadlock runs the whole of `work` again, on a new transaction, up to `retry` times.
 */
export async function withTransaction<T>(
  pool: Pool,
  work: (client: PoolClient) => Promise<T>,
  options: TransactionOptions = {},
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const transaction = await openTransaction(pool, options.mode);
    try {
      const result = await work(transaction.client);
      await transaction.commit();
      return result;
    } catch (error) {
      if (retryable(error) && attempt < (options.retry ?? 0)) continue;
      throw error;
    } finally {
      await transaction.release();
    }
  }
}

function retryable(error: unknown): boolean {
  const code = (error as { code?: string } | undefined)?.code;
  return code === SERIALIZATION_FAILURE || code === DEADLOCK;
}
