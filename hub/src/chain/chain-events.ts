import { EventEmitter } from 'node:events';
import type { Hex } from '../db/bytes';

/**
 * What the chain follower has applied to the books (after the configured confirmations), for the
 * parts of the hub that react to it (the settlement pipeline). Emitted after the database commit.
 */
export interface ChainEventMap {
  /** A consumer's channel balance changed by a deposit. */
  deposited: [{ consumer: Hex; amount: bigint; balance: bigint; block: bigint }];
  /** A consumer asked to exit: its promises must be settled before `readyAt` (unix seconds). */
  exitRequested: [{ consumer: Hex; amount: bigint; readyAt: bigint; block: bigint }];
  /** A consumer left: its exit was finalized, or it exited at once. */
  exited: [{ consumer: Hex; amount: bigint; block: bigint }];
  /** A consumer promise was settled on-chain (by this hub or anyone). */
  consumerSettled: [{ consumer: Hex; total: bigint; amount: bigint; preimage: Hex; txHash: Hex; block: bigint }];
  /** A hub promise was settled on-chain (by the provider, a relayer or this hub); R is now public. */
  providerSettled: [{ provider: Hex; total: bigint; amount: bigint; preimage: Hex; txHash: Hex; block: bigint }];
  /** The follower rewound to `block` after a reorg; everything after it will be applied again. */
  rewound: [{ block: bigint }];
}

/** A typed event emitter for {@link ChainEventMap}. */
export class ChainEvents extends EventEmitter<ChainEventMap> {}
