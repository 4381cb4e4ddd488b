import type { Pool } from 'pg';
import { fromBytea, type Hex, toBytea } from '../db/bytes';
import type { Checkpoint } from './chain.repository';

/** A Chit deployment: the chain, the Hub contract, and the block the Registry registered it in. */
export interface Deployment {
  chainId: number;
  /** Lower case. */
  hub: Hex;
  block: bigint;
  blockHash: Hex;
}

/** A chain follower's cursor and its oldest checkpoint, from books kept before deployments were recorded. */
export interface FollowedChain {
  cursorId: string;
  newest: Checkpoint;
  oldest: Checkpoint;
}

/**
 * The deployment the books belong to (the one-row `deployment` table). The reads run before the
 * migrations, on a database of any age: a table that does not exist yet reads as empty.
 */
export class DeploymentRepository {
  constructor(private readonly pool: Pool) {}

  /** The deployment recorded in the database, if any. */
  async recorded(): Promise<Deployment | undefined> {
    if (!(await this.exists('deployment'))) return undefined;
    const { rows } = await this.pool.query('SELECT chain_id, hub, block, block_hash FROM deployment');
    return rows[0] ? toDeployment(rows[0]) : undefined;
  }

  /** Each chain follower's cursor, with its oldest checkpoint: what identifies books with no deployment row. */
  async followedChains(): Promise<FollowedChain[]> {
    if (!(await this.exists('chain_cursor')) || !(await this.exists('chain_checkpoints'))) return [];
    const { rows } = await this.pool.query(
      `SELECT c.id, c.block, c.block_hash, o.block AS oldest_block, o.block_hash AS oldest_hash
         FROM chain_cursor c
         LEFT JOIN LATERAL (
           SELECT block, block_hash FROM chain_checkpoints WHERE cursor_id = c.id ORDER BY block LIMIT 1
         ) o ON true
        ORDER BY c.id`,
    );
    return rows.map((row) => {
      const newest = { block: BigInt(row.block), hash: fromBytea(row.block_hash) };
      const oldest =
        row.oldest_block === null ? newest : { block: BigInt(row.oldest_block), hash: fromBytea(row.oldest_hash) };
      return { cursorId: row.id as string, newest, oldest };
    });
  }

  /** Records `deployment` unless one is recorded already; returns the one recorded. */
  async record(deployment: Deployment): Promise<Deployment> {
    await this.pool.query(
      `INSERT INTO deployment (chain_id, hub, block, block_hash) VALUES ($1, $2, $3, $4)
       ON CONFLICT (singleton) DO NOTHING`,
      [deployment.chainId, toBytea(deployment.hub), deployment.block.toString(), toBytea(deployment.blockHash)],
    );
    const recorded = await this.recorded();
    if (!recorded) throw new Error('the deployment row is missing right after it was written');
    return recorded;
  }

  private async exists(table: string): Promise<boolean> {
    const { rows } = await this.pool.query('SELECT to_regclass($1) IS NOT NULL AS found', [table]);
    return rows[0].found as boolean;
  }
}

// biome-ignore lint/suspicious/noExplicitAny: a pg row
const toDeployment = (row: any): Deployment => ({
  chainId: Number(row.chain_id),
  hub: fromBytea(row.hub),
  block: BigInt(row.block),
  blockHash: fromBytea(row.block_hash),
});
