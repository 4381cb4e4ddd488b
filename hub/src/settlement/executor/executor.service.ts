import {
  ContractRevertError,
  decodeContractError,
  type HubScope,
  hubAbi,
  type SignedConsumerPromise,
  type SignedHubPromise,
  settleConsumers,
  settleProviders,
  toConsumerClaim,
  toProviderClaim,
  waitForTransaction,
} from '@chit/sdk';
import { Logger } from '@nestjs/common';
import { type LocalAccount, parseEventLogs, type TransactionReceipt } from 'viem';
import { simulateContract } from 'viem/actions';
import type { ChainService } from '../../chain/chain.service';
import type { OutboxRepository } from '../../chain/outbox/outbox.repository';
import type { TransactionSender } from '../../chain/outbox/transaction-sender';
import type { Hex } from '../../db/bytes';
import { messageOf } from '../../errors/message-of';
import type { Claims } from '../claims';
import { PermanentFault, SettlementFault, ShuttingDown, TransactionLostError } from '../settlement.errors';
import { classifyRevert, hubFeeOf, waitForFreeFunds } from '../settlement.policy';
import type { SettlementRepository } from '../settlement.repository';
import {
  type JobContext,
  OPEN_STATUSES,
  type SettlementKind,
  type SettlementQueue,
  type SettlementRecord,
} from '../settlement.types';
import { Batcher, type BatchOutcome } from './batcher';
import type { ExecutorRepository } from './executor.repository';
import { failureOf, minedOutcomes, revertedOutcomes, revertOutcomes, skippedClaims } from './executor.rules';
import type { RelaySender } from './relay.sender';

export interface ExecutorOptions {
  batchSize: number;
  batchWindowMs: number;
  /** How long a replica holds the settlements of a batch it is sending. */
  leaseMs: number;
}

interface ConsumerItem {
  id: string;
  row: SettlementRecord;
  promise: SignedConsumerPromise;
  preimage: Hex;
}

interface ProviderItem {
  id: string;
  row: SettlementRecord;
  promise: SignedHubPromise;
  preimage: Hex;
  relayer: { fee: bigint; authorization: Hex } | undefined;
  context: JobContext;
}

/**
 * What each settlement job does: batch its claim with the others due into one transaction (relayed
 * Registry actions go alone), follow that transaction until it has its confirmations, and record the
 * outcome of every settlement it carried, decided by the executor's rules, in one transaction. The
 * settlements table is the truth; jobs only point at its rows.
 */
export class ExecutorService {
  private readonly consumerBatcher: Batcher<ConsumerItem, void>;
  private readonly providerBatcher: Batcher<ProviderItem, void>;
  /** Transactions being followed here, so that the jobs of one batch share one follower. */
  private readonly concluding = new Map<Hex, Promise<void>>();
  private readonly logger = new Logger('SettlementExecutor');

  constructor(
    private readonly scope: HubScope,
    private readonly chain: ChainService,
    private readonly claims: Claims,
    private readonly repository: SettlementRepository,
    private readonly executions: ExecutorRepository,
    private readonly outbox: OutboxRepository,
    private readonly sender: TransactionSender,
    private readonly relays: RelaySender,
    private readonly queue: SettlementQueue,
    private readonly options: ExecutorOptions,
  ) {
    const batching = { maxBatch: options.batchSize, windowMs: options.batchWindowMs };
    this.consumerBatcher = new Batcher((items) => this.runConsumerBatch(items), batching);
    this.providerBatcher = new Batcher((items) => this.runProviderBatch(items), batching);
  }

  /** Sends the consumer claims waiting for a batch now (a consumer is exiting). */
  flushConsumers(): void {
    this.consumerBatcher.flush();
  }

  /** Stops batching: waiting claims go back to their queue. */
  close(): void {
    this.consumerBatcher.close();
    this.providerBatcher.close();
  }

  /**
   * What a job does with its settlement: nothing when it is confirmed or failed; follow its
   * transaction when one carries it; otherwise send it (consumers and providers in batches).
   * Resolves with the settlement once it is confirmed or failed.
   *
   * @throws {PermanentFault} when it failed for good (it is marked failed); any other error when it
   * should be tried again (it is marked retrying by the caller).
   */
  async process(id: string, context: JobContext): Promise<SettlementRecord> {
    const row = await this.repository.get(id);
    if (!row) throw new PermanentFault(`no settlement ${id} in the books`, 'ERROR');
    if (row.status === 'confirmed' || row.status === 'failed') return row;
    await this.executions.countAttempt(id);
    let failure: unknown;
    try {
      if (row.txHash && (await this.inFlight(row))) {
        // A transaction carries it already (this job was delivered again, or the hub restarted): follow it.
        await this.conclude(row.txHash);
      } else if (row.kind === 'consumer') {
        const { promise, preimage } = await this.claims.consumerClaim(row);
        await this.consumerBatcher.submit({ id, row, promise, preimage }, context.urgent);
      } else if (row.kind === 'provider') {
        const claim = await this.claims.providerClaim(row);
        await this.providerBatcher.submit({ id, row, ...claim, context }, context.urgent);
      } else {
        await this.conclude(await this.relays.send(row));
      }
    } catch (error) {
      if (error instanceof ShuttingDown || error instanceof PermanentFault) throw error;
      failure = error;
    }
    const after = await this.repository.get(id);
    if (after?.status === 'confirmed') return after;
    if (after?.status === 'failed')
      throw new PermanentFault(after.error?.message ?? 'failed', after.error?.code ?? 'ERROR');
    if (failure !== undefined) throw failure;
    // Still open: its job tries again, with the failure its outcome recorded.
    throw after?.error
      ? new SettlementFault(after.error.message, after.error.code)
      : new Error(`settlement ${id} is still ${after?.status}`);
  }

  /**
   * Whether the transaction that carries `row` may still settle it: an attempt with its nonce is
   * pending, or one was mined and the outcome is not recorded yet (the hub stopped in between).
   */
  private async inFlight(row: SettlementRecord): Promise<boolean> {
    const carrier = row.txHash ? await this.outbox.transaction(row.txHash) : undefined;
    if (!carrier) return false;
    const attempts = await this.outbox.transactionsWithNonce(carrier.sender, carrier.nonce);
    return attempts.some(
      (attempt) => attempt.status === 'pending' || (attempt.status === 'mined' && row.status === 'submitted'),
    );
  }

  /** Marks a settlement retrying (its job will run again) or failed (its job has given up). */
  async recordFailure(id: string, error: unknown, final: boolean): Promise<void> {
    await this.executions.record([{ id, status: final ? 'failed' : 'retrying', error: failureOf(error) }]);
  }

  private async runConsumerBatch(items: ConsumerItem[]): Promise<Map<string, BatchOutcome<void>>> {
    return this.runBatch(items, 'consumer', async (carriers, all) => {
      const { hash } = await this.sendIsolating(
        'consumer',
        carriers,
        all,
        (batch, account) =>
          settleConsumers(this.sender.wallet, {
            hub: this.scope.hub,
            account,
            claims: batch.map(({ promise, preimage }) => ({ promise, preimage })),
          }),
        (item) => ({ functionName: 'settleConsumers', args: [[toConsumerClaim(item.promise, item.preimage)]] }),
      );
      await this.conclude(hash);
    });
  }

  private async runProviderBatch(items: ProviderItem[]): Promise<Map<string, BatchOutcome<void>>> {
    return this.runBatch(items, 'provider', async (carriers, all) => {
      // Paying out more than the free funds takes the rest from the stake and punishes the hub: let the
      // consumer settlements that back these promises land first, for a while.
      const [info, settled] = await Promise.all([
        this.chain.hubInfo(),
        this.claims.providersSettled(carriers.map((c) => c.promise.provider.toLowerCase() as Hex)),
      ]);
      let outflow = 0n;
      carriers.forEach((carrier, i) => {
        const amount = carrier.promise.total > settled[i]! ? carrier.promise.total - settled[i]! : 0n;
        outflow += amount - hubFeeOf(amount, info.fee);
      });
      const attempt = Math.max(...carriers.map((c) => c.context.attempt));
      const attempts = Math.max(...carriers.map((c) => c.context.attempts));
      if (waitForFreeFunds({ freeFunds: info.freeFunds, outflow, attempt, attempts })) {
        await this.queue.collectConsumersSoon();
        throw new SettlementFault(
          `the hub's free funds (${info.freeFunds}) do not cover ${outflow} yet: consumer settlements first`,
          'WAITING_FOR_FREE_FUNDS',
        );
      }
      const { hash } = await this.sendIsolating(
        'provider',
        carriers,
        all,
        (batch, account) =>
          settleProviders(this.sender.wallet, {
            hub: this.scope.hub,
            account,
            claims: batch.map(({ promise, preimage, relayer }) => ({ promise, preimage, relayer })),
          }),
        (item) => ({
          functionName: 'settleProviders',
          args: [[toProviderClaim(item.promise, item.preimage, item.relayer)]],
        }),
      );
      await this.conclude(hash);
    });
  }

  /**
   * The common part of a batch: lease its settlements (one leased by another replica waits for its
   * job's next attempt), let the highest claim of each channel carry the lower ones, run `send`, and
   * give each job its outcome.
   */
  private async runBatch<Item extends { id: string; row: SettlementRecord }>(
    items: Item[],
    kind: 'consumer' | 'provider',
    send: (carriers: Item[], all: Item[]) => Promise<void>,
  ): Promise<Map<string, BatchOutcome<void>>> {
    const outcomes = new Map<string, BatchOutcome<void>>();
    const leased = new Set(
      await this.executions.lease(
        items.map((item) => item.id),
        this.options.leaseMs,
      ),
    );
    const mine: Item[] = [];
    for (const item of items) {
      if (leased.has(item.id)) mine.push(item);
      else outcomes.set(item.id, { ok: false, error: new Error('another replica is sending this settlement') });
    }
    const carriers = new Map<Hex, Item>();
    for (const item of mine) {
      const best = carriers.get(item.row.subject);
      if (!best || item.row.amount > best.row.amount) carriers.set(item.row.subject, item);
    }
    try {
      if (carriers.size > 0) await send([...carriers.values()], mine);
      for (const item of mine) outcomes.set(item.id, { ok: true, value: undefined });
    } catch (error) {
      if (!(error instanceof ShuttingDown)) this.logger.warn(`${kind} batch of ${mine.length}: ${messageOf(error)}`);
      for (const item of mine) if (!outcomes.has(item.id)) outcomes.set(item.id, { ok: false, error });
    } finally {
      await this.executions.releaseLease(mine.map((item) => item.id));
    }
    return outcomes;
  }

  /**
   * Sends `carriers` in one transaction (recording all of `all` as carried by it). When the simulation
   * reverts for a batch of several, each claim is simulated alone: the ones that revert fail (or are
   * found settled) on their own, and the rest go out together.
   */
  private async sendIsolating<Item extends { id: string; row: SettlementRecord }>(
    kind: 'consumer' | 'provider',
    carriers: Item[],
    all: Item[],
    action: (batch: Item[], account: LocalAccount) => Promise<{ hash: Hex }>,
    single: (item: Item) => { functionName: 'settleConsumers' | 'settleProviders'; args: readonly unknown[] },
  ): Promise<{ hash: Hex }> {
    const carried = (batch: Item[]) => {
      const subjects = new Set(batch.map((item) => item.row.subject));
      return all.filter((item) => subjects.has(item.row.subject)).map((item) => item.id);
    };
    const send = (batch: Item[]) =>
      this.sender.send({ kind, claims: batch.length, settlementIds: carried(batch) }, (account) =>
        action(batch, account),
      );
    try {
      return await send(carriers);
    } catch (error) {
      if (!(error instanceof ContractRevertError)) throw error;
      const survivors: Item[] = [];
      for (const item of carriers) {
        const revert = carriers.length === 1 ? error : await this.simulateAlone(single(item));
        if (!revert) survivors.push(item);
        else await this.settleOnRevert(kind, carried([item]), revert);
      }
      if (survivors.length === 0 || survivors.length === carriers.length) throw error;
      return send(survivors);
    }
  }

  private async simulateAlone(call: {
    functionName: 'settleConsumers' | 'settleProviders';
    args: readonly unknown[];
  }): Promise<ContractRevertError | undefined> {
    try {
      await simulateContract(this.chain.client, {
        account: this.sender.address,
        address: this.scope.hub,
        abi: hubAbi,
        // biome-ignore lint/suspicious/noExplicitAny: one claim of the batch's own function
        ...(call as any),
      });
      return undefined;
    } catch (error) {
      const decoded = decodeContractError(error);
      return decoded instanceof ContractRevertError ? decoded : undefined;
    }
  }

  /** Records what a revert means for the settlements of one channel. */
  private async settleOnRevert(kind: SettlementKind, ids: string[], revert: ContractRevertError): Promise<void> {
    await this.executions.record(revertOutcomes(ids, revert));
    this.logger.warn(`${kind} ${ids.join(', ')}: ${revert.shortMessage} (${classifyRevert(revert.errorName)})`);
  }

  /**
   * Follows the transaction `hash` (or its replacement) to its confirmations and records the outcome of
   * every settlement it carries: confirmed with its events, settled by someone else, failed, or retrying.
   */
  private conclude(hash: Hex): Promise<void> {
    let running = this.concluding.get(hash);
    if (!running) {
      running = this.followAndRecord(hash).finally(() => this.concluding.delete(hash));
      this.concluding.set(hash, running);
    }
    return running;
  }

  private async followAndRecord(hash: Hex): Promise<void> {
    let receipt: TransactionReceipt;
    try {
      receipt = await this.sender.confirm(hash);
    } catch (error) {
      if (error instanceof TransactionLostError) {
        const open = (await this.executions.settlementsOfTransactions([hash])).filter(isOpen);
        const lost = failureOf(error);
        await this.executions.record(open.map((row) => ({ id: row.id, status: 'retrying', error: lost })));
      }
      throw error;
    }
    const mined = receipt.transactionHash.toLowerCase() as Hex;
    if ((await this.outbox.transaction(mined))?.status !== 'mined') {
      // A reorg took it away between its confirmations and now: its settlements stay open and are followed again.
      throw new SettlementFault(`transaction ${mined} is no longer on the chain (reorg)`, 'REORGED');
    }
    const rows = (await this.executions.settlementsOfTransactions([mined])).filter(isOpen);
    if (receipt.status === 'reverted') {
      const revert = await waitForTransaction(this.chain.client, { hash: mined }).then(
        () => undefined,
        (error: unknown) => error,
      );
      if (revert instanceof ContractRevertError) this.logger.warn(`${mined} reverted: ${revert.shortMessage}`);
      await this.executions.record(revertedOutcomes(rows, mined, revert));
      return;
    }
    const logs = parseEventLogs({ abi: hubAbi, logs: receipt.logs, strict: false });
    // Claims the contract skipped: settled by an earlier transaction, or nothing left in the channel.
    const skipped = skippedClaims(rows, logs, this.scope.hub);
    const settled = new Map(
      await Promise.all(skipped.map(async (row) => [row.id, await this.claims.settledOf(row)] as const)),
    );
    const outcomes = minedOutcomes(rows, { hash: mined, block: receipt.blockNumber, logs }, this.scope.hub, settled);
    await this.executions.record(outcomes);
  }
}

const isOpen = (row: SettlementRecord) => OPEN_STATUSES.includes(row.status);
