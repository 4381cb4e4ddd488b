import { Logger } from '@nestjs/common';
import { Worker } from 'bullmq';
import type Redis from 'ioredis';
import { messageOf } from '../errors/message-of';
import type { SettlementRecord } from '../settlement/settlement.types';
import { JobName, QueueName } from './job.enums';
import {
  type MaintenanceJobs,
  maintenanceProcessor,
  type SettlementJobs,
  settlementProcessor,
} from './settlement.processor';
import type { SettlementQueues } from './settlement.queues';

export interface SettlementWorkersOptions {
  prefix: string;
  /** BullMQ lock duration: how long a silent worker keeps its jobs before they count as stalled. */
  lockMs: number;
  /** Concurrency of the consumer and provider workers: the claims one batch can gather. */
  batchSize: number;
  scanIntervalMs: number;
  reconcileIntervalMs: number;
  /** Whether the hub settles providers over a threshold on its own. */
  providerPolicy: boolean;
  /** Where the workers' Redis errors go. */
  redisFailed: (message: string) => void;
}

/** What the workers run, given at construction. */
export interface WorkerJobs {
  settlements: SettlementJobs;
  maintenance: MaintenanceJobs;
  /** The open settlements, oldest first: what the reconciler makes sure has a job. */
  openSettlements(limit: number): Promise<SettlementRecord[]>;
  /** Reopens the confirmed settlements a reorg took away; returns how many. */
  reopenReorged(): Promise<number>;
}

/** Open settlements re-enqueued per reconciliation at most. */
const RECONCILE_LIMIT = 5_000;

/**
 * The hub's BullMQ workers for settlements, the consumer side. Postgres is the source of truth:
 * `reconcile` (at start, after Redis comes back, and every few seconds) enqueues every open settlement
 * whose job is missing, which is how a lost Redis or a hub killed mid-pipeline loses nothing; the
 * settlement rows and the transactions recorded before broadcast make sure nothing is sent twice. On
 * the same schedule, `recheckReorgs` reopens the confirmed settlements a reorg took away.
 */
export class SettlementWorkers {
  private readonly workers: Worker[] = [];
  private readonly logger = new Logger('SettlementQueues');
  private timer: NodeJS.Timeout | undefined;
  private readyCount = 0;
  private started = false;
  private reconciling: Promise<void> | undefined;
  private rechecking: Promise<void> | undefined;
  private readonly onReady = () => {
    // ioredis says ready at the first connection and after every reconnection.
    if (++this.readyCount > 1 && this.started) {
      this.logger.log('Redis is back: re-creating schedules and re-enqueueing open settlements');
      void this.recover();
    }
  };

  constructor(
    private readonly redis: Redis,
    private readonly queues: SettlementQueues,
    private readonly jobs: WorkerJobs,
    private readonly options: SettlementWorkersOptions,
  ) {
    if (redis.status === 'ready') this.readyCount = 1;
    redis.on('ready', this.onReady);
  }

  /** Starts the workers, the schedules and the reconciler. */
  async start(): Promise<void> {
    const { prefix, lockMs } = this.options;
    const common = {
      connection: this.redis,
      prefix,
      lockDuration: lockMs,
      stalledInterval: lockMs,
      maxStalledCount: 1_000,
    };
    const process = settlementProcessor(this.jobs.settlements);
    this.workers.push(
      new Worker(QueueName.ConsumerSettlement, process, { ...common, concurrency: this.options.batchSize }),
      new Worker(QueueName.ProviderSettlement, process, { ...common, concurrency: this.options.batchSize }),
      new Worker(QueueName.Relay, process, { ...common, concurrency: 4 }),
      new Worker(QueueName.Maintenance, maintenanceProcessor(this.jobs.maintenance), { ...common, concurrency: 1 }),
    );
    for (const worker of this.workers) {
      worker.on('error', (error) => this.options.redisFailed(`worker ${worker.name}: ${error.message}`));
    }
    this.started = true;
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
        const open = await this.jobs.openSettlements(RECONCILE_LIMIT);
        await this.queues.add(open, false);
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
    if (!this.started) return Promise.resolve();
    this.rechecking ??= this.jobs
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

  /** Stops the workers (their jobs in progress go back to the queue). */
  async close(): Promise<void> {
    this.started = false;
    this.redis.off('ready', this.onReady);
    if (this.timer) clearInterval(this.timer);
    await this.rechecking;
    await Promise.all(this.workers.map((worker) => worker.close().catch(() => {})));
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
    const maintenance = this.queues.queue(QueueName.Maintenance);
    const every = this.options.scanIntervalMs;
    const opts = { removeOnComplete: true, removeOnFail: true, attempts: 1 };
    const names = [JobName.CollectDueConsumers, JobName.SweepInstantExits];
    if (this.options.providerPolicy) names.push(JobName.CollectDueProviders);
    for (const name of names) await maintenance.upsertJobScheduler(name, { every }, { name, data: {}, opts });
  }
}
