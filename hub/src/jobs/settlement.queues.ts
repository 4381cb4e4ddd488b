import { Logger } from '@nestjs/common';
import { type JobsOptions, type JobType, Queue } from 'bullmq';
import type Redis from 'ioredis';
import { messageOf } from '../errors/message-of';
import type { SettlementQueue, SettlementRecord } from '../settlement/settlement.types';
import { JobName, QueueName, routeOf, type SettlementJobData } from './job.enums';

export interface SettlementQueuesOptions {
  prefix: string;
  attempts: number;
  backoffMs: number;
  /** Where the queues' Redis errors go. */
  redisFailed: (message: string) => void;
}

/** How long a request path waits for Redis before leaving a settlement to the reconciler. */
const ENQUEUE_WAIT_MS = 2_000;
/** Job states in which a settlement's job will still run: nothing to enqueue. */
const LIVE_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/**
 * The hub's BullMQ queues for settlements, the producer side: the port the settlement services hand
 * settlements to. Every job is keyed by its settlement's id (jobId), so enqueueing is idempotent; what
 * does not make it into Redis is enqueued by the reconciler ({@link SettlementWorkers}).
 */
export class SettlementQueues implements SettlementQueue {
  private readonly queues = new Map<QueueName, Queue>();
  private readonly logger = new Logger('SettlementQueues');

  constructor(
    private readonly redis: Redis,
    options: SettlementQueuesOptions,
  ) {
    const defaultJobOptions: JobsOptions = {
      attempts: options.attempts,
      backoff: { type: 'exponential', delay: options.backoffMs },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 24 * 3600, count: 100_000 },
    };
    for (const name of Object.values(QueueName)) {
      const queue = new Queue(name, { connection: redis, prefix: options.prefix, defaultJobOptions });
      queue.on('error', (error) => options.redisFailed(`queue ${name}: ${error.message}`));
      this.queues.set(name, queue);
    }
  }

  queue(name: QueueName): Queue {
    return this.queues.get(name)!;
  }

  /**
   * The jobs of each queue in each of `states` (BullMQ `getJobCounts`), for the metrics; undefined
   * while Redis is not connected (a command would wait for it in ioredis's queue).
   */
  async jobCounts(states: readonly JobType[]): Promise<Map<QueueName, Record<string, number>> | undefined> {
    if (this.redis.status !== 'ready') return undefined;
    const counts = await Promise.all(
      [...this.queues].map(async ([name, queue]) => [name, await queue.getJobCounts(...states)] as const),
    );
    return new Map(counts);
  }

  /**
   * Adds a job for each settlement unless one will run already; a settlement whose last job failed or
   * completed (it was put back in the queue) gets a new one. Waits for Redis at most a moment: the
   * settlements are recorded, and the reconciler enqueues what did not make it.
   */
  async enqueue(settlements: readonly SettlementRecord[], options: { urgent?: boolean } = {}): Promise<void> {
    if (settlements.length === 0) return;
    const adding = this.add(settlements, options.urgent ?? false);
    const timeout = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ENQUEUE_WAIT_MS).unref());
    const result = await Promise.race([adding.then(() => 'done' as const), timeout]).catch((error: unknown) => {
      this.logger.warn(`enqueueing ${settlements.length} settlements failed, the reconciler will: ${messageOf(error)}`);
      return 'failed' as const;
    });
    if (result === 'timeout') {
      adding.catch(() => {});
      this.logger.warn(`Redis is slow or away: ${settlements.length} settlements wait for the reconciler`);
    }
  }

  async collectConsumersSoon(): Promise<void> {
    await this.queue(QueueName.Maintenance).add(
      JobName.CollectDueConsumers,
      {},
      { jobId: 'collect-due-consumers-now', removeOnComplete: true, removeOnFail: true, attempts: 1 },
    );
  }

  /** Adds the jobs missing for `settlements`, waiting for Redis as long as it takes (the reconciler's way). */
  async add(settlements: readonly SettlementRecord[], urgent: boolean): Promise<void> {
    await Promise.all(
      settlements.map(async (settlement) => {
        const { queue: name, job } = routeOf(settlement.kind);
        const queue = this.queue(name);
        const state = await queue.getJobState(settlement.id);
        if (LIVE_STATES.has(state)) return;
        if (state === 'failed' || state === 'completed') await (await queue.getJob(settlement.id))?.remove();
        const data: SettlementJobData = { id: settlement.id, ...(urgent && { urgent }) };
        // No BullMQ priority: jobs without one already come first; `urgent` makes the batch go at once.
        await queue.add(job, data, { jobId: settlement.id });
      }),
    );
  }

  async close(): Promise<void> {
    await Promise.all([...this.queues.values()].map((queue) => queue.close().catch(() => {})));
  }
}
