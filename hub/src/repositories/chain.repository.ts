import type { Pool, PoolClient } from 'pg';
import { fromBytea, type Hex, toBytea } from '../db/bytes';
import { withTransaction } from '../db/transaction';

/** A range or rewind runs again after a serialization failure or deadlock (five tries in all). */
const RETRY = { retry: 4 };

/** A block the follower applied, by number and hash. */
export interface Checkpoint {
  block: bigint;
  hash: Hex;
}

/** A consumer channel as the Hub contract holds it at some block; `exitReadyAt` is 0 without an exit. */
export interface ConsumerChannelState {
  address: Hex;
  balance: bigint;
  settled: bigint;
  exitAmount: bigint;
  exitReadyAt: bigint;
}

/** What the Hub contract has settled for a provider at some block. */
export interface ProviderChannelState {
  address: Hex;
  settled: bigint;
}

/** A Registry identity at some block: its payout address, or null when it is not registered. */
export interface IdentityState {
  address: Hex;
  beneficiary: Hex | null;
}

/** The on-chain state of every account a block range touched, read at one block. */
export interface ChainState {
  consumers: ConsumerChannelState[];
  providers: ProviderChannelState[];
  identities: IdentityState[];
}

/** Accounts touched by the ranges after some checkpoint. */
export interface TouchedAccounts {
  consumers: Hex[];
  providers: Hex[];
  identities: Hex[];
  /** Consumer rows those ranges created. */
  createdConsumers: Hex[];
}

/** One block range to apply: the state of its accounts at its last block, and the R it revealed. */
export interface RangeWrites {
  checkpoint: Checkpoint;
  state: ChainState;
  preimages: { hashlock: Hex; preimage: Hex }[];
}

/**
 * The chain follower's SQL: its cursor and journal (chain_cursor, chain_checkpoints) and the columns of
 * the books it owns (consumers' balance, settled and exit; providers' settled; identities). Each
 * range or rewind commits in one transaction with the cursor, after checking that the cursor is where
 * the caller left it, so that two followers on one database never apply the same range twice.
 */
export class ChainRepository {
  constructor(private readonly pool: Pool) {}

  /** Where the follower `id` stands, if it ever started. */
  async cursor(id: string): Promise<Checkpoint | undefined> {
    const { rows } = await this.pool.query('SELECT block, block_hash FROM chain_cursor WHERE id = $1', [id]);
    return rows[0] ? toCheckpoint(rows[0]) : undefined;
  }

  /** Sets the cursor of `id` to `checkpoint` unless it exists; returns the cursor as stored. */
  async begin(id: string, checkpoint: Checkpoint): Promise<Checkpoint> {
    return withTransaction(
      this.pool,
      async (client) => {
        const inserted = await client.query(
          `INSERT INTO chain_cursor (id, block, block_hash) VALUES ($1, $2, $3) ON CONFLICT (id) DO NOTHING`,
          [id, checkpoint.block.toString(), toBytea(checkpoint.hash)],
        );
        if (inserted.rowCount === 1) {
          await client.query('INSERT INTO chain_checkpoints (cursor_id, block, block_hash) VALUES ($1, $2, $3)', [
            id,
            checkpoint.block.toString(),
            toBytea(checkpoint.hash),
          ]);
          return checkpoint;
        }
        const { rows } = await client.query('SELECT block, block_hash FROM chain_cursor WHERE id = $1', [id]);
        return toCheckpoint(rows[0]);
      },
      RETRY,
    );
  }

  /** The checkpoints of `id`, newest first. */
  async checkpoints(id: string): Promise<Checkpoint[]> {
    const { rows } = await this.pool.query(
      'SELECT block, block_hash FROM chain_checkpoints WHERE cursor_id = $1 ORDER BY block DESC',
      [id],
    );
    return rows.map(toCheckpoint);
  }

  /** The accounts touched by the ranges of `id` after `block`. */
  async touchedAfter(id: string, block: bigint): Promise<TouchedAccounts> {
    const { rows } = await this.pool.query(
      `SELECT consumers, providers, identities, created_consumers
         FROM chain_checkpoints WHERE cursor_id = $1 AND block > $2`,
      [id, block.toString()],
    );
    const union = (column: string) => [...new Set(rows.flatMap((row) => (row[column] as Buffer[]).map(fromBytea)))];
    return {
      consumers: union('consumers'),
      providers: union('providers'),
      identities: union('identities'),
      createdConsumers: union('created_consumers'),
    };
  }

  /**
   * Applies one range if the cursor of `id` is still `expected`: writes the state, records the R
   * revealed, journals the range, moves the cursor and prunes checkpoints below `pruneBelow`. False
   * (and nothing written) when the cursor had moved.
   */
  async apply(id: string, expected: Checkpoint, range: RangeWrites, pruneBelow: bigint): Promise<boolean> {
    return withTransaction(
      this.pool,
      async (client) => {
        if (!(await lockCursor(client, id, expected))) return false;
        const created = await writeState(client, range.state);
        if (range.preimages.length > 0) {
          const hashlocks = range.preimages.map((p) => toBytea(p.hashlock));
          await client.query(
            `UPDATE exchanges e SET preimage = v.preimage
             FROM unnest($1::bytea[], $2::bytea[]) AS v(hashlock, preimage)
            WHERE e.hashlock = v.hashlock AND e.preimage IS NULL`,
            [hashlocks, range.preimages.map((p) => toBytea(p.preimage))],
          );
          // R is known now, whoever revealed it: the provider need not reveal it again.
          await client.query(
            `UPDATE providers p SET unrevealed_hashlock = NULL, updated_at = now()
             FROM exchanges e
            WHERE e.hashlock = ANY($1::bytea[]) AND p.address = e.provider AND p.unrevealed_hashlock = e.hashlock`,
            [hashlocks],
          );
        }
        const { checkpoint, state } = range;
        await client.query(
          `INSERT INTO chain_checkpoints (cursor_id, block, block_hash, consumers, providers, identities, created_consumers)
         VALUES ($1, $2, $3, $4, $5, $6, $7)`,
          [
            id,
            checkpoint.block.toString(),
            toBytea(checkpoint.hash),
            state.consumers.map((c) => toBytea(c.address)),
            state.providers.map((p) => toBytea(p.address)),
            state.identities.map((i) => toBytea(i.address)),
            created.map(toBytea),
          ],
        );
        await moveCursor(client, id, checkpoint);
        await client.query('DELETE FROM chain_checkpoints WHERE cursor_id = $1 AND block < $2 AND block < $3', [
          id,
          pruneBelow.toString(),
          checkpoint.block.toString(),
        ]);
        return true;
      },
      RETRY,
    );
  }

  /**
   * Undoes every range of `id` after `to` if the cursor is still `expected`: writes `state` (the state
   * at `to` of every account those ranges touched), removes the consumer rows they created that hold
   * nothing, on-chain or off, drops their checkpoints and moves the cursor back to `to`. False (and
   * nothing written) when the cursor had moved.
   */
  async rewind(
    id: string,
    expected: Checkpoint,
    to: Checkpoint,
    state: ChainState,
    createdConsumers: Hex[],
  ): Promise<boolean> {
    return withTransaction(
      this.pool,
      async (client) => {
        if (!(await lockCursor(client, id, expected))) return false;
        await writeState(client, state);
        if (createdConsumers.length > 0) {
          await client.query(
            `DELETE FROM consumers
            WHERE address = ANY($1::bytea[]) AND balance = 0 AND settled = 0 AND exit_amount = 0
              AND signed_total = 0 AND credited = 0 AND best_hashlock IS NULL`,
            [createdConsumers.map(toBytea)],
          );
        }
        await client.query('DELETE FROM chain_checkpoints WHERE cursor_id = $1 AND block > $2', [
          id,
          to.block.toString(),
        ]);
        await moveCursor(client, id, to);
        return true;
      },
      RETRY,
    );
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a pg row
const toCheckpoint = (row: any): Checkpoint => ({ block: BigInt(row.block), hash: fromBytea(row.block_hash) });

/** Locks the cursor row; false (the caller rolls back) when it is no longer `expected`. */
async function lockCursor(client: PoolClient, id: string, expected: Checkpoint): Promise<boolean> {
  const { rows } = await client.query('SELECT block, block_hash FROM chain_cursor WHERE id = $1 FOR UPDATE', [id]);
  if (!rows[0]) return false;
  const current = toCheckpoint(rows[0]);
  return current.block === expected.block && current.hash === expected.hash;
}

async function moveCursor(client: PoolClient, id: string, to: Checkpoint): Promise<void> {
  await client.query('UPDATE chain_cursor SET block = $2, block_hash = $3, updated_at = now() WHERE id = $1', [
    id,
    to.block.toString(),
    toBytea(to.hash),
  ]);
}

/**
 * Writes the follower's columns of the books from `state`; returns the consumers whose rows it created.
 * Consumers before providers, each sorted by address: the order the exchange locks rows in.
 */
async function writeState(client: PoolClient, state: ChainState): Promise<Hex[]> {
  let created: Hex[] = [];
  if (state.consumers.length > 0) {
    const rows = [...state.consumers].sort((a, b) => a.address.localeCompare(b.address));
    const result = await client.query(
      `INSERT INTO consumers AS c (address, balance, settled, exit_amount, exit_ready_at)
       SELECT v.address, v.balance, v.settled, v.exit_amount,
              CASE WHEN v.ready_at = 0 THEN NULL ELSE to_timestamp(v.ready_at) END
         FROM unnest($1::bytea[], $2::numeric[], $3::numeric[], $4::numeric[], $5::numeric[])
           AS v(address, balance, settled, exit_amount, ready_at)
        ORDER BY v.address
       ON CONFLICT (address) DO UPDATE
         SET balance = EXCLUDED.balance, settled = EXCLUDED.settled, exit_amount = EXCLUDED.exit_amount,
             exit_ready_at = EXCLUDED.exit_ready_at, updated_at = now()
       RETURNING c.address, (c.xmax = 0) AS created`,
      [
        rows.map((r) => toBytea(r.address)),
        rows.map((r) => r.balance.toString()),
        rows.map((r) => r.settled.toString()),
        rows.map((r) => (r.exitReadyAt === 0n ? '0' : r.exitAmount.toString())),
        rows.map((r) => r.exitReadyAt.toString()),
      ],
    );
    created = result.rows.filter((row) => row.created).map((row) => fromBytea(row.address));
  }
  if (state.providers.length > 0) {
    const rows = [...state.providers].sort((a, b) => a.address.localeCompare(b.address));
    await client.query(
      `INSERT INTO providers (address, settled)
       SELECT * FROM unnest($1::bytea[], $2::numeric[]) AS v(address, settled) ORDER BY v.address
       ON CONFLICT (address) DO UPDATE SET settled = EXCLUDED.settled, updated_at = now()`,
      [rows.map((r) => toBytea(r.address)), rows.map((r) => r.settled.toString())],
    );
  }
  const registered = state.identities.filter((i) => i.beneficiary !== null);
  const unregistered = state.identities.filter((i) => i.beneficiary === null);
  if (registered.length > 0) {
    await client.query(
      `INSERT INTO identities (address, beneficiary)
       SELECT * FROM unnest($1::bytea[], $2::bytea[])
       ON CONFLICT (address) DO UPDATE SET beneficiary = EXCLUDED.beneficiary, updated_at = now()`,
      [registered.map((i) => toBytea(i.address)), registered.map((i) => toBytea(i.beneficiary as Hex))],
    );
  }
  if (unregistered.length > 0) {
    await client.query('DELETE FROM identities WHERE address = ANY($1::bytea[])', [
      unregistered.map((i) => toBytea(i.address)),
    ]);
  }
  return created;
}
