import type { PublicClient } from 'viem';
import { getTransactionCount } from 'viem/actions';
import type { Hex } from '../../db/bytes';
import type { OutboxRepository } from './outbox.repository';
import type { NewTransaction } from './outbox.types';

/** A nonce handed out by {@link NonceManager.withNextNonce}, held until its transaction is recorded. */
export interface NonceSlot {
  nonce: bigint;
  /**
   * Records the signed transaction (write-ahead, before it is broadcast) and marks the settlements it
   * carries submitted; commits, which hands the nonce lock to the next sender.
   */
  record(tx: NewTransaction, settlementIds: readonly string[]): Promise<void>;
}

/**
 * The nonces of one signing key, safe across replicas: allocation runs under a Postgres advisory lock
 * (transaction-scoped, so a replica that dies mid-allocation releases it with its connection), behind
 * an in-process queue so that one replica holds at most one database connection waiting for it.
 *
 * Every allocation resyncs from the chain: the nonce is the lowest one from the node's pending count
 * on that no transaction recorded as pending holds. So a transaction the node refused (marked
 * dropped) gives its nonce back, a gap left by one is filled, one recorded but not yet broadcast
 * (a replica died in between) keeps its nonce, and transactions sent with the key from elsewhere are
 * stepped over.
 */
export class NonceManager {
  private tail: Promise<unknown> = Promise.resolve();

  constructor(
    readonly address: Hex,
    private readonly client: PublicClient,
    private readonly repository: OutboxRepository,
  ) {}

  /** Runs `use` with the key's next nonce; the nonce is held until `use` records a transaction or returns. */
  withNextNonce<T>(use: (slot: NonceSlot) => Promise<T>): Promise<T> {
    const run = async () => {
      const lock = await this.repository.lockSender(this.address);
      try {
        const pending = BigInt(
          await getTransactionCount(this.client, { address: this.address as `0x${string}`, blockTag: 'pending' }),
        );
        const taken = await lock.pendingNonces(pending);
        let nonce = pending;
        while (taken.has(nonce)) nonce++;
        return await use({ nonce, record: (tx, ids) => lock.recordAndCommit(tx, ids) });
      } finally {
        await lock.release();
      }
    };
    const result = this.tail.then(run, run);
    this.tail = result.catch(() => {});
    return result;
  }
}
