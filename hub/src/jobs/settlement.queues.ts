import { Logger } from '@nestjs/common';
import { type JobsOptions, type JobType, Queue, Worker } from 'bullmq';
import type Redis from 'ioredis';
import { messageOf } from '../errors/message-of';
import type { OutageLog } from '../health/outage-log';
import type { SettlementRepository } from '../repositories/settlement.repository';
import type { InstantExitService } from '../settlement/instant-exit/instant-exit.service';
import type { SettlementService } from '../settlement/settlement.service';
import type { SettlementQueue, SettlementRecord } from '../settlement/settlement.types';
import { JobName, QueueName, routeOf, type SettlementJobData } from './job.enums';
import { maintenanceProcessor, settlementProcessor } from './settlement.processor';

export interface SettlementQueuesOptions {
  prefix: string;
  attempts: number;
  backoffMs: number;
  /** BullMQ lock duration: how long a silent worker keeps its jobs before they count as stalled. */
  lockMs: number;
  /** Concurrency of the consumer and provider workers: the claims one batch can gather. */
  batchSize: number;
  scanIntervalMs: number;
  reconcileIntervalMs: number;
  /** Whether the hub settles providers over a threshold on its own. */
  providerPolicy: boolean;
  /** Where the queues' and workers' Redis errors go; else each is logged. */
  redisOutage?: OutageLog;
}

/** How long a request path waits for Redis before leaving a settlement to the reconciler. */
const ENQUEUE_WAIT_MS = 2_000;
/** Open settlements re-enqueued per reconciliation at most. */
const RECONCILE_LIMIT = 5_000;
/** Job states in which a settlement's job will still run: nothing to enqueue. */
const LIVE_STATES = new Set(['waiting', 'active', 'delayed', 'prioritized', 'waiting-children']);

/**
 * The hub's BullMQ queues and workers for settlements. Postgres is the source of truth: every job is
 * keyed by its settlement's id (jobId), so enqueueing is idempotent, and `reconcile` (at start, after
 * Redis comes back, and every few seconds) enqueues every open settlement whose job is missing, which
 * is how a lost Redis or a hub killed mid-pipeline loses nothing; the settlement rows and the
 * transactions recorded before broadcast make sure nothing is sent twice. On the same schedule,
 * `recheckReorgs` reopens the confirmed settlements a reorg took away.
 */
export class SettlementQueues implements SettlementQueue {
  private readonly queues = new Map<QueueName, Queue>();
  private readonly workers: Worker[] = [];
  private readonly logger = new Logger('SettlementQueues');
  private timer: NodeJS.Timeout | undefined;
  private readyCount = 0;
  private started = false;
  private reconciling: Promise<void> | undefined;
  private rechecking: Promise<void> | undefined;
  private service: SettlementService | undefined;
  private readonly onReady = () => {
    // ioredis says ready at the first connection and after every reconnection.
    if (++this.readyCount > 1 && this.started) {
      this.logger.log('Redis is back: re-creating schedules and re-enqueueing open settlements');
      void this.recover();
    }
  };

  constructor(
    private readonly redis: Redis,
    private readonly repository: SettlementRepository,
    private readonly options: SettlementQueuesOptions,
  ) {
    const defaultJobOptions: JobsOptions = {
      attempts: options.attempts,
      backoff: { type: 'exponential', delay: options.backoffMs },
      removeOnComplete: true,
      removeOnFail: { age: 7 * 24 * 3600, count: 100_000 },
    };
    for (const name of Object.values(QueueName)) {
      const queue = new Queue(name, { connection: redis, prefix: options.prefix, defaultJobOptions });
      queue.on('error', (error) => this.redisFailed(`queue ${name}: ${error.message}`));
      this.queues.set(name, queue);
    }
    if (redis.status === 'ready') this.readyCount = 1;
    redis.on('ready', this.onReady);
  }

  private redisFailed(message: string): void {
    if (this.options.redisOutage) this.options.redisOutage.failed(message);
    else this.logger.warn(message);
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

  /** Starts the workers, the schedules and the reconciler. */
  async start(service: SettlementService, instantExits: InstantExitService): Promise<void> {
    const { prefix, lockMs } = this.options;
    const common = {
      connection: this.redis,
      prefix,
      lockDuration: lockMs,
      stalledInterval: lockMs,
      maxStalledCount: 1_000,
    };
    const process = settlementProcessor(service);
    this.workers.push(
      new Worker(QueueName.ConsumerSettlement, process, { ...common, concurrency: this.options.batchSize }),
      new Worker(QueueName.ProviderSettlement, process, { ...common, concurrency: this.options.batchSize }),
      new Worker(QueueName.Relay, process, { ...common, concurrency: 4 }),
      new Worker(QueueName.Maintenance, maintenanceProcessor(service, instantExits), { ...common, concurrency: 1 }),
    );
    for (const worker of this.workers) {
      worker.on('error', (error) => this.redisFailed(`worker ${worker.name}: ${error.message}`));
    }
    this.started = true;
    this.service = service;
    await this.recover();
    this.timer = setInterval(() => {
      void this.reconcile();
      void this.recheckReorgs();
    }, this.options.reconcileIntervalMs);
    this.timer.unref();
  }

  /** Enqueues every open settlement whose job is missing (lost with Redis, or never added). */
  reconcile(): Promise<void> {
    this.reconciling ??= (async () => {
      try {
        const open = await this.repository.open(RECONCILE_LIMIT);
        await this.add(open, false);
      } catch (error) {
        this.logger.warn(`reconciling open settlements: ${messageOf(error)}`);
      } finally {
        this.reconciling = undefined;
      }
    })();
    return this.reconciling;
  }

  /**
   * Sends again the confirmed settlements whose transaction a reorg took away that the follower's
   * `rewound` did not reach (it had not applied their block, or the process that rewound stopped
   * before telling). Runs beside {@link reconcile}, not in it: it asks the chain, which may be slow or away.
   */
  recheckReorgs(): Promise<void> {
    const service = this.service;
    if (!service) return Promise.resolve();
    this.rechecking ??= service
      .reopenReorged()
      .then(
        () => {},
        (error: unknown) => this.logger.warn(`looking for reorged settlements: ${messageOf(error)}`),
      )
      .finally(() => {
        this.rechecking = undefined;
      });
    return this.rechecking;
  }

  /** Stops the workers (their jobs in progress go back to the queue) and closes the queues. */
  async close(): Promise<void> {
    this.started = false;
    this.redis.off('ready', this.onReady);
    if (this.timer) clearInterval(this.timer);
    await this.rechecking;
    await Promise.all(this.workers.map((worker) => worker.close().catch(() => {})));
    await Promise.all([...this.queues.values()].map((queue) => queue.close().catch(() => {})));
  }

  private async recover(): Promise<void> {
    try {
      await this.schedule();
    } catch (error) {
      this.logger.warn(`scheduling scans: ${messageOf(error)}`);
    }
    await this.reconcile();
  }

  /** The periodic scans (job schedulers live in Redis: re-created after Redis comes back empty). */
  private async schedule(): Promise<void> {
    const maintenance = this.queue(QueueName.Maintenance);
    const every = this.options.scanIntervalMs;
    const opts = { removeOnComplete: true, removeOnFail: true, attempts: 1 };
    await maintenance.upsertJobScheduler(
      JobName.CollectDueConsumers,
      { every },
      {
        name: JobName.CollectDueConsumers,
        data: {},
        opts,
      },
    );
    await maintenance.upsertJobScheduler(
      JobName.SweepInstantExits,
      { every },
      {
        name: JobName.SweepInstantExits,
        data: {},
        opts,
      },
    );
    if (this.options.providerPolicy) {
      await maintenance.upsertJobScheduler(
        JobName.CollectDueProviders,
        { every },
        {
          name: JobName.CollectDueProviders,
          data: {},
          opts,
        },
      );
    }
  }

  private async add(settlements: readonly SettlementRecord[], urgent: boolean): Promise<void> {
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
}
