import type { Logger } from '@nestjs/common';

/**
 * Runs {@link Periodic.work} once started and then every `intervalMs`, never two runs at once (a run
 * still going when the next is due skips that turn). A failed run is logged as a warning, `failure`
 * saying what could not be done, and the next one tried on time. The timer never holds the process open.
 */
export abstract class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<unknown> | undefined;

  constructor(
    private readonly intervalMs: number,
    private readonly logger: Logger,
    private readonly failure: string,
  ) {}

  /** One run. */
  protected abstract work(): Promise<unknown>;

  start(): void {
    if (this.timer) return;
    const run = () => {
      this.running ??= this.work()
        .catch((error: Error) => this.logger.warn(`${this.failure}: ${error.message}`))
        .finally(() => {
          this.running = undefined;
        });
    };
    run();
    this.timer = setInterval(run, this.intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and waits for a run in progress. */
  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    await this.running;
  }
}
