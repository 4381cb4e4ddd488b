import { Logger } from '@nestjs/common';
import type { HistoryService } from './history.service';

/** How often the hub's money is sampled for its history (one row a minute, whichever replica writes it). */
export const MONEY_SAMPLE_MS = 60_000;

/**
 * Samples the hub's stake, free funds and liabilities into its history once a minute, in the
 * processes that run the chain follower. A failed sample (RPC or database down) is logged and the next
 * one tried on time: the history has a hole, the books lose nothing.
 */
export class MoneySampler {
  private readonly logger = new Logger('History');
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;

  constructor(
    private readonly history: HistoryService,
    private readonly intervalMs = MONEY_SAMPLE_MS,
  ) {}

  start(): void {
    if (this.timer) return;
    const sample = () => {
      this.running ??= this.history
        .sampleMoney()
        .catch((error: Error) => this.logger.warn(`could not sample the hub's money: ${error.message}`))
        .finally(() => {
          this.running = undefined;
        });
    };
    sample();
    this.timer = setInterval(sample, this.intervalMs);
    this.timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
