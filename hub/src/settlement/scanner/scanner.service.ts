import { Logger } from '@nestjs/common';
import { BlockNotFoundError } from 'viem';
import { getBlock, getBlockNumber, getGasPrice } from 'viem/actions';
import type { ChainService } from '../../chain/chain.service';
import type { Hex } from '../../db/bytes';
import type { Claims } from '../claims';
import { gasCostInTokens, type TokenRate } from '../settlement.policy';
import type { SettlementQueue } from '../settlement.types';
import type { ScannerRepository } from './scanner.repository';
import { type ConsumerCandidate, dueConsumerSettlements, dueProviderSettlements, reorged } from './scanner.rules';

export interface ScannerOptions {
  /** Most settlements one scan creates. */
  scanLimit: number;
  providerThreshold: bigint;
  maxFeeShareBps: number;
  tokenRate: TokenRate;
  /** Blocks on top of the including one before a transaction counts as confirmed (CONFIRMATIONS). */
  confirmations: number;
}

/** Blocks below the confirmed depth in which the reconciler looks for confirmed transactions a reorg took away. */
const REORG_RECHECK_BLOCKS = 64n;
/** Transactions (and settlements) one look for reorged settlements checks at most. */
const REORG_RECHECK_LIMIT = 500;

/**
 * The scanner: creates the settlements that are due (consumers on a schedule and when they exit,
 * providers over the threshold), and follows what the chain follower saw: settlements confirmed by
 * anyone, deposits that let failed consumer claims collect again, reorgs that took confirmed
 * settlements away. It reads the books and the chain first, decides with the scanner's rules, records
 * the decision in one transaction and hands what it created to the queues.
 */
export class ScannerService {
  private readonly logger = new Logger('SettlementScanner');

  constructor(
    private readonly chain: ChainService,
    private readonly claims: Claims,
    private readonly repository: ScannerRepository,
    private readonly queue: SettlementQueue,
    private readonly options: ScannerOptions,
  ) {}

  /**
   * Creates a settlement for every consumer due: its highest promise is above what it settled, its R is
   * known (revealed, or opened from the box; else the highest promise whose R is), and it collects more
   * than its gas (always when it is exiting). Exiting consumers' settlements are urgent. Returns how
   * many it created.
   */
  async collectDueConsumers(only?: Hex, urgent = false): Promise<number> {
    const due = await this.repository.dueConsumers(this.options.scanLimit, only);
    if (due.length === 0) return 0;
    const gasCost = await this.gasCost('consumer');
    const preimages: { hashlock: Hex; preimage: Hex }[] = [];
    const candidates: ConsumerCandidate[] = [];
    for (const candidate of due) {
      // The highest promise, or, while its R is unknown, the highest one whose R is.
      const found = this.claims.openPreimage(candidate.exchange);
      if (found?.opened) preimages.push({ hashlock: candidate.exchange.hashlock, preimage: found.preimage });
      const claim = found
        ? candidate.exchange
        : await this.repository.bestRevealedExchange(candidate.consumer, candidate.settled);
      candidates.push({ ...candidate, claim });
    }
    const decided = dueConsumerSettlements(candidates, { gasCost, urgent });
    const created = await this.repository.record({ preimages, settlements: [...decided.urgent, ...decided.normal] });
    const urgentIds = new Set(decided.urgent.map((s) => s.id));
    await this.queue.enqueue(
      created.filter((s) => urgentIds.has(s.id)),
      { urgent: true },
    );
    await this.queue.enqueue(created.filter((s) => !urgentIds.has(s.id)));
    return created.length;
  }

  /** Creates the settlements the hub makes itself for providers over the threshold (policy). */
  async collectDueProviders(): Promise<number> {
    const threshold = this.options.providerThreshold;
    if (threshold === 0n) return 0;
    const due = await this.repository.dueProviders(threshold, this.options.scanLimit);
    if (due.length === 0) return 0;
    const gasCost = await this.gasCost('provider');
    const preimages: { hashlock: Hex; preimage: Hex }[] = [];
    const candidates = due.map((candidate) => {
      const found = this.claims.openPreimage(candidate.exchange);
      if (found?.opened) preimages.push({ hashlock: candidate.exchange.hashlock, preimage: found.preimage });
      return { ...candidate, revealed: found !== undefined };
    });
    const settlements = dueProviderSettlements(candidates, {
      threshold,
      gasCost,
      maxFeeShareBps: this.options.maxFeeShareBps,
    });
    const created = await this.repository.record({ preimages, settlements });
    await this.queue.enqueue(created);
    return created.length;
  }

  /** Someone's settlement was applied by the chain follower: the open settlements it covers are done. */
  async onSettled(kind: 'consumer' | 'provider', subject: Hex, total: bigint, txHash: Hex): Promise<void> {
    const ids = await this.repository.confirmSettledUpTo(kind, subject, total, txHash);
    if (ids.length > 0) this.logger.log(`confirmed by ${txHash} on-chain: ${ids.join(', ')}`);
  }

  /** A deposit: consumer settlements that failed on an empty channel can collect again. */
  async onDeposited(consumer: Hex): Promise<void> {
    const requeued = await this.repository.requeueFailedConsumer(consumer);
    await this.queue.enqueue(requeued);
  }

  /** The follower rewound to `block` after a reorg: what it took away of the confirmed settlements is sent again. */
  async onRewound(block: bigint): Promise<void> {
    await this.reopenReorged(block);
  }

  /**
   * Puts back in the pipeline the confirmed settlements a reorg took away, the same rows, so that
   * they are sent again and counted once: those whose transaction of the hub is no longer in the
   * block it was mined in (after `after`, the block the follower rewound to; without it, in the last
   * blocks a reorg the follower did not see could reach: the reconciler's look). After a rewind also
   * the consumer and provider settlements confirmed (by an event, or by another party) above what the
   * rewound books say is settled, that the chain has not settled either. Returns how many.
   */
  async reopenReorged(after?: bigint): Promise<number> {
    const since =
      after ??
      (await getBlockNumber(this.chain.client, { cacheTime: 0 })) -
        BigInt(this.options.confirmations) -
        REORG_RECHECK_BLOCKS;
    const blocks = new Map<bigint, Set<string> | null>();
    const mined = [];
    for (const tx of await this.repository.minedCarryingConfirmed(since, REORG_RECHECK_LIMIT)) {
      mined.push({ ...tx, included: await this.inBlock(tx.hash, tx.block, blocks) });
    }
    const confirmed = [];
    for (const row of after === undefined ? [] : await this.repository.confirmedAboveBooks(REORG_RECHECK_LIMIT)) {
      confirmed.push({ row, settled: await this.claims.settledOf(row) });
    }
    const reopened = await this.repository.reopen(reorged(mined, confirmed));
    if (reopened.length === 0) return 0;
    this.logger.warn(`reorg: ${reopened.map((row) => row.id).join(', ')} no longer settled on-chain, sent again`);
    await this.queue.enqueue(reopened, { urgent: true });
    return reopened.length;
  }

  /**
   * Whether the canonical block `block` includes the transaction `hash` (false when the chain is
   * shorter); undefined when the node did not answer. `blocks` caches the blocks' transactions.
   */
  private async inBlock(
    hash: Hex,
    block: bigint,
    blocks: Map<bigint, Set<string> | null>,
  ): Promise<boolean | undefined> {
    if (!blocks.has(block)) {
      try {
        const found = await getBlock(this.chain.client, { blockNumber: block });
        blocks.set(block, new Set(found.transactions.map((tx) => tx.toLowerCase())));
      } catch (error) {
        if (!(error instanceof BlockNotFoundError)) return undefined;
        blocks.set(block, null);
      }
    }
    return blocks.get(block)?.has(hash.toLowerCase()) ?? false;
  }

  /** What one claim of `kind` costs in gas now, in token units. */
  private async gasCost(kind: 'consumer' | 'provider'): Promise<bigint> {
    return gasCostInTokens(
      await this.claims.gasPerPromise(kind),
      await getGasPrice(this.chain.client),
      this.options.tokenRate,
    );
  }
}
