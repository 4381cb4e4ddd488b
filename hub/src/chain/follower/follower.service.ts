import { Logger } from '@nestjs/common';
import { type Address, BlockNotFoundError, type PublicClient } from 'viem';
import type { Hex } from '../../db/bytes';
import type { ChainRepository, Checkpoint } from '../../repositories/chain.repository';
import type { ChainEventMap, ChainEvents } from '../chain-events';
import { ChainStateReader } from './chain-state.reader';
import { type Emission, FOLLOWED_EVENTS, type FollowedLog, planRange } from './follower.logs';

export interface FollowerOptions {
  hub: Address;
  registry: Address;
  /** Names the cursor: one per chain and hub, so a database never resumes another hub's cursor. */
  cursorId: string;
  /** Blocks on top of a block before it is applied (0: apply the head). */
  confirmations: number;
  /** The first block to read when there is no cursor yet. */
  startBlock: bigint;
  /** Pause between polls of the running loop. */
  pollMs: number;
  /** Most blocks per getLogs call (RPC providers cap the range). */
  maxRange?: bigint;
  /** Blocks of checkpoints kept to undo a reorg; a deeper reorg stops the follower with an error. */
  history?: bigint;
}

/** What one {@link ChainFollower.syncOnce} did. */
export interface SyncResult {
  /** The cursor's block afterwards. */
  block: bigint;
  /** Ranges applied. */
  ranges: number;
  /** The block of each rewind, in order. */
  rewoundTo: bigint[];
}

/** Whether a follower keeps up, for `/ready`: `reason` says why not. */
export interface FollowerHealth {
  ok: boolean;
  reason?: string;
}

/**
 * A reorg went below every checkpoint the follower kept: it cannot undo it, and tries again at every
 * poll without progress until an operator steps in.
 */
export class FollowerHistoryError extends Error {
  constructor(block: bigint) {
    super(`reorg deeper than the follower's history: no applied block at or below ${block} is canonical`);
    this.name = 'FollowerHistoryError';
  }
}

/** Consecutive attempts that make no progress (the chain moving under the reads) before giving up. */
const MAX_STALLS = 5;

/**
 * Follows the Hub's and the Registry's events after `confirmations` blocks and keeps the books'
 * chain-side columns in step, surviving reorgs and restarts.
 *
 * Each block range is applied in one Postgres transaction with the cursor (chain_cursor), so a crash
 * never applies a range twice or skips one; the cursor is compared-and-set, so replicas sharing the
 * database apply each range once between them. The ChainEvents of a range are emitted after its
 * commit, by the process that committed it (at most once: a crash between commit and emit loses them,
 * so listeners must also reconcile from the books when they start).
 *
 * Books are written from the contracts' views read at the range's last block (consumerChannel,
 * exitRequest, providerSettled, isRegistered/beneficiaryOf), not derived from event amounts: the
 * values are absolute, so applying them is idempotent, correct even if the books started after some
 * history (FOLLOWER_START_BLOCK) or were edited, and undoing a reorg is the same operation at an
 * earlier block. Events decide only which accounts to read and what to emit.
 *
 * Reorgs: every applied range leaves a checkpoint (its last block, that block's hash, the accounts it
 * touched). Before each step the cursor's hash is checked against the chain; when it is no longer
 * canonical the follower walks back to the newest checkpoint that is, re-reads at that block every
 * account touched after it, writes that state, drops the later checkpoints, moves the cursor back and
 * emits `rewound`; the blocks after it are then applied again. R learnt from a settlement that was
 * reorged away is kept: it was public the moment it was broadcast.
 */
export class ChainFollower {
  private readonly reader: ChainStateReader;
  private readonly maxRange: bigint;
  private readonly history: bigint;
  private running: Promise<SyncResult> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private loop: Promise<void> | undefined;
  private stopped = true;
  /** When a sync last reached the confirmed head (or the follower started). */
  private caughtUpAt = Date.now();
  /** Whether the last sync failed. */
  private failing = false;
  /** Set while the follower cannot go on by itself (a reorg deeper than its history). */
  private fault: string | undefined;

  constructor(
    private readonly client: PublicClient,
    private readonly repository: ChainRepository,
    private readonly events: ChainEvents,
    private readonly options: FollowerOptions,
    private readonly logger = new Logger('ChainFollower'),
  ) {
    this.reader = new ChainStateReader(client, { hub: options.hub, registry: options.registry });
    this.maxRange = options.maxRange ?? 1_000n;
    this.history = options.history ?? 1_024n;
  }

  /** Starts polling every `pollMs`; errors are logged and retried at the next poll. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.caughtUpAt = Date.now();
    let reported: string | undefined;
    const tick = async () => {
      try {
        await this.syncOnce();
        reported = undefined;
      } catch (error) {
        const message = (error as Error).message;
        if (!(error instanceof FollowerHistoryError)) {
          this.logger.warn(`sync failed, retrying in ${this.options.pollMs} ms: ${message}`);
        } else if (message !== reported) {
          // Said once: it repeats at every poll until an operator steps in.
          this.logger.error(`${message}; the books no longer follow the chain, and /ready answers 503`);
          reported = message;
        }
      }
      if (!this.stopped) this.timer = setTimeout(() => (this.loop = tick()), this.options.pollMs);
    };
    this.loop = tick();
  }

  /** Stops polling and waits for a sync in progress to finish. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.loop;
    await this.running?.catch(() => {});
  }

  /**
   * Applies everything up to the confirmed head, rewinding first if the chain reorganised. Calls are
   * serialised: one made while another runs starts when that one ends.
   */
  syncOnce(): Promise<SyncResult> {
    const previous = this.running?.catch(() => undefined) ?? Promise.resolve();
    const run = previous
      .then(() => this.sync())
      .then(
        (result) => {
          this.caughtUpAt = Date.now();
          this.failing = false;
          this.fault = undefined;
          return result;
        },
        (error: unknown) => {
          this.failing = true;
          if (error instanceof FollowerHistoryError) this.fault = error.message;
          throw error;
        },
      );
    this.running = run;
    return run;
  }

  /**
   * Whether the follower keeps up: no reorg deeper than its history, and a sync reached the confirmed
   * head within the last `stallMs` (a follower catching up, failing, or stuck on a lock does not).
   */
  health(stallMs: number): FollowerHealth {
    if (this.fault) return { ok: false, reason: this.fault };
    const behind = Date.now() - this.caughtUpAt;
    if (behind <= stallMs) return { ok: true };
    const why = this.failing ? 'its syncs fail (see the log)' : 'a sync is still running';
    return { ok: false, reason: `no sync reached the confirmed head for ${Math.round(behind / 1000)} s: ${why}` };
  }

  /**
   * Blocks between the chain's head and the last block applied to the books (by any replica); it
   * includes the `confirmations` the follower stays behind.
   */
  async lag(): Promise<bigint> {
    const [head, cursor] = await Promise.all([
      this.client.getBlockNumber({ cacheTime: 0 }),
      this.repository.cursor(this.options.cursorId),
    ]);
    const applied = cursor?.block ?? (this.options.startBlock > 0n ? this.options.startBlock - 1n : 0n);
    return head > applied ? head - applied : 0n;
  }

  private async sync(): Promise<SyncResult> {
    const id = this.options.cursorId;
    let cursor = await this.begin();
    const result: SyncResult = { block: cursor.block, ranges: 0, rewoundTo: [] };
    for (let stalls = 0; ; ) {
      if (stalls >= MAX_STALLS) throw new Error(`the chain kept moving under ${MAX_STALLS} attempts to read it`);
      if (!(await this.isCanonical(cursor))) {
        const to = await this.rewind(cursor);
        if (to) {
          result.rewoundTo.push(to.block);
          cursor = to;
        } else {
          stalls++;
          cursor = (await this.repository.cursor(id)) ?? cursor;
        }
        continue;
      }
      const head = await this.client.getBlockNumber({ cacheTime: 0 });
      const safe = head - BigInt(this.options.confirmations);
      if (cursor.block >= safe) break;
      const to = cursor.block + this.maxRange < safe ? cursor.block + this.maxRange : safe;
      const next = await this.applyRange(cursor, to);
      if (next) {
        cursor = next;
        result.ranges++;
        stalls = 0;
      } else {
        stalls++;
        cursor = (await this.repository.cursor(id)) ?? cursor;
      }
    }
    result.block = cursor.block;
    return result;
  }

  /** The stored cursor, or a new one just before `startBlock`. */
  private async begin(): Promise<Checkpoint> {
    const stored = await this.repository.cursor(this.options.cursorId);
    if (stored) return stored;
    const block = this.options.startBlock > 0n ? this.options.startBlock - 1n : 0n;
    const header = await this.header(block);
    if (!header) throw new Error(`block ${block} (FOLLOWER_START_BLOCK - 1) is not on the chain yet`);
    return this.repository.begin(this.options.cursorId, header);
  }

  /**
   * Applies the blocks after `cursor` up to `to`; undefined when the chain moved during the reads or
   * another follower moved the cursor (nothing is written then).
   */
  private async applyRange(cursor: Checkpoint, to: bigint): Promise<Checkpoint | undefined> {
    const end = await this.header(to);
    if (!end) return undefined;
    const logs = (await this.client.getLogs({
      address: [this.options.hub, this.options.registry],
      events: FOLLOWED_EVENTS,
      fromBlock: cursor.block + 1n,
      toBlock: to,
      strict: true,
    })) as unknown as FollowedLog[];
    if (logs.some((log) => log.blockNumber === to && log.blockHash.toLowerCase() !== end.hash)) return undefined;
    const plan = planRange(logs, this.options);
    const state = await this.reader.at(to, plan);
    // If both ends are still canonical, `to` descends from the cursor and the reads above saw that
    // chain (a block hash commits to all its ancestors); if not, start over from the cursor check.
    if (!(await this.isCanonical(end)) || !(await this.isCanonical(cursor))) return undefined;
    const applied = await this.repository.apply(
      this.options.cursorId,
      cursor,
      { checkpoint: end, state, preimages: plan.preimages },
      to - this.history,
    );
    if (!applied) return undefined;
    this.emit(plan.emissions);
    return end;
  }

  /**
   * Undoes the ranges after the newest checkpoint that is still canonical; undefined when the chain
   * moved during the reads or another follower moved the cursor.
   */
  private async rewind(cursor: Checkpoint): Promise<Checkpoint | undefined> {
    const id = this.options.cursorId;
    let common: Checkpoint | undefined;
    for (const checkpoint of await this.repository.checkpoints(id)) {
      if (await this.isCanonical(checkpoint)) {
        common = checkpoint;
        break;
      }
    }
    if (!common) throw new FollowerHistoryError(cursor.block);
    const touched = await this.repository.touchedAfter(id, common.block);
    const state = await this.reader.at(common.block, touched);
    if (!(await this.isCanonical(common))) return undefined;
    if (!(await this.repository.rewind(id, cursor, common, state, touched.createdConsumers))) return undefined;
    this.logger.warn(`reorg: rewound from block ${cursor.block} to ${common.block}`);
    this.emit([{ name: 'rewound', args: [{ block: common.block }] }]);
    return common;
  }

  private async isCanonical(checkpoint: Checkpoint): Promise<boolean> {
    return (await this.header(checkpoint.block))?.hash === checkpoint.hash;
  }

  /** Block `block` of the current chain, or undefined when the chain is shorter. */
  private async header(block: bigint): Promise<Checkpoint | undefined> {
    try {
      const found = await this.client.getBlock({ blockNumber: block });
      return { block, hash: found.hash.toLowerCase() as Hex };
    } catch (error) {
      if (error instanceof BlockNotFoundError) return undefined;
      throw error;
    }
  }

  /** Emits after a commit; a listener that throws is logged and does not stop the others' events. */
  private emit(emissions: Emission[]): void {
    for (const emission of emissions) {
      try {
        // The union pairs each name with its arguments; TypeScript cannot follow that through a spread.
        (this.events.emit as (name: keyof ChainEventMap, ...args: unknown[]) => boolean)(
          emission.name,
          ...emission.args,
        );
      } catch (error) {
        this.logger.error(`a ${emission.name} listener threw: ${(error as Error).message}`);
      }
    }
  }
}
