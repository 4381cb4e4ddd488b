import { Logger } from '@nestjs/common';
import { DelayedError, type Job, UnrecoverableError } from 'bullmq';
import { messageOf } from '../errors/message-of';
import type { InstantExitService } from '../settlement/instant-exit/instant-exit.service';
import { PermanentFault, ShuttingDown } from '../settlement/settlement.errors';
import type { SettlementService } from '../settlement/settlement.service';
import { JobName, type MaintenanceJobData, type SettlementJobData } from './job.enums';

const logger = new Logger('SettlementJobs');

/**
 * The processor of the settlement queues: runs the job's settlement and translates the outcome for
 * BullMQ. A permanent fault fails the settlement and the job at once (UnrecoverableError: the job
 * stays in the failed set, the dead letter); another error marks it retrying, or failed on the last
 * attempt, and BullMQ retries it with exponential backoff. A job interrupted by shutdown goes back to
 * the queue without using up an attempt.
 */
export function settlementProcessor(service: SettlementService) {
  return async (job: Job<SettlementJobData>, token?: string) => {
    const { id, urgent = false } = job.data;
    const attempts = job.opts.attempts ?? 1;
    try {
      const settled = await service.process(id, { urgent, attempt: job.attemptsMade, attempts });
      return { status: settled.status, txHash: settled.txHash };
    } catch (error) {
      if (error instanceof ShuttingDown) {
        await job.moveToDelayed(Date.now() + 100, token);
        throw new DelayedError();
      }
      if (error instanceof PermanentFault) {
        await service.recordFailure(id, error, true);
        throw new UnrecoverableError(error.message);
      }
      const final = job.attemptsMade + 1 >= attempts;
      await service.recordFailure(id, error, final);
      logger.warn(`${id} (attempt ${job.attemptsMade + 1} of ${attempts}): ${messageOf(error)}`);
      throw error;
    }
  };
}

/** The processor of the maintenance queue: scans and sweeps. */
export function maintenanceProcessor(service: SettlementService, instantExits: InstantExitService) {
  return async (job: Job<MaintenanceJobData>) => {
    switch (job.name) {
      case JobName.CollectDueConsumers:
        return { created: await service.collectDueConsumers() };
      case JobName.CollectDueProviders:
        return { created: await service.collectDueProviders() };
      case JobName.SweepInstantExits:
        await instantExits.sweep();
        return {};
      default:
        throw new UnrecoverableError(`unknown job ${job.name}`);
    }
  };
}
