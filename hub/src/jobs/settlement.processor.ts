import { Logger } from '@nestjs/common';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { messageOf } from '../errors/message-of';
import { PermanentFault, ShuttingDown } from '../settlement/settlement.errors';
import type { JobContext, SettlementRecord } from '../settlement/settlement.types';
import { JobName, type MaintenanceJobData, type SettlementJobData } from './job.enums';

const logger = new Logger('SettlementJobs');

/** What a settlement job runs: the executor's. */
export interface SettlementJobs {
  /** Resolves with the settlement once it is confirmed or failed; throws to be tried again. */
  process(id: string, context: JobContext): Promise<SettlementRecord>;
  /** Marks a settlement retrying (its job will run again) or failed (its job has given up). */
  recordFailure(id: string, error: unknown, final: boolean): Promise<void>;
}

/** What the maintenance jobs run: the scanner's scans and the instant exits' sweep. */
export interface MaintenanceJobs {
  collectDueConsumers(): Promise<number>;
  collectDueProviders(): Promise<number>;
  sweepInstantExits(): Promise<void>;
}

/**
 * The processor of the settlement queues: runs the job's settlement and translates the outcome for
 * BullMQ. A permanent fault fails the settlement and the job at once (UnrecoverableError: the job
 * stays in the failed set, the dead letter); another error marks it retrying, or failed on the last
 * attempt, and BullMQ retries it with exponential backoff. A job interrupted by shutdown goes back to
 * the queue without using up an attempt.
 */
export function settlementProcessor(jobs: SettlementJobs) {
  return async (job: Job<SettlementJobData>, token?: string) => {
    const { id, urgent = false } = job.data;
    const attempts = job.opts.attempts ?? 1;
    try {
      const settled = await jobs.process(id, { urgent, attempt: job.attemptsMade, attempts });
      return { status: settled.status, txHash: settled.txHash };
    } catch (error) {
      if (error instanceof ShuttingDown) {
        await job.moveToDelayed(Date.now() + 100, token);
        throw new DelayedError();
      }
      if (error instanceof PermanentFault) {
        await jobs.recordFailure(id, error, true);
        throw new UnrecoverableError(error.message);
      }
      const final = job.attemptsMade + 1 >= attempts;
      await jobs.recordFailure(id, error, final);
      logger.warn(`${id} (attempt ${job.attemptsMade + 1} of ${attempts}): ${messageOf(error)}`);
      throw error;
    }
  };
}

/** The processor of the maintenance queue: scans and sweeps. */
export function maintenanceProcessor(jobs: MaintenanceJobs) {
  return async (job: Job<MaintenanceJobData>) => {
    switch (job.name) {
      case JobName.CollectDueConsumers:
        return { created: await jobs.collectDueConsumers() };
      case JobName.CollectDueProviders:
        return { created: await jobs.collectDueProviders() };
      case JobName.SweepInstantExits:
        await jobs.sweepInstantExits();
        return {};
      default:
        throw new UnrecoverableError(`unknown job ${job.name}`);
    }
  };
}
