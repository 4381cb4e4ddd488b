import { Logger } from '@nestjs/common';
import { Periodic } from '../jobs/periodic';
import type { HistoryService } from './history.service';

/** How often the hub's money is sampled for its history (one row a minute, whichever replica writes it). */
export const MONEY_SAMPLE_MS = 60_000;

/**
 * Samples the hub's stake, free funds and liabilities into its history once a minute, in the
 * processes that run the chain follower. A failed sample (RPC or database down) is logged and the next
 * one tried on time: the history has a hole, the books lose nothing.
 */
export class MoneySampler extends Periodic {
  constructor(
    private readonly history: HistoryService,
    intervalMs = MONEY_SAMPLE_MS,
  ) {
    super(intervalMs, new Logger('History'), "could not sample the hub's money");
  }

  protected work(): Promise<void> {
    return this.history.sampleMoney();
  }
}
