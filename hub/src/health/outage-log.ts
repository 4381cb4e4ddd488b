/** Where an {@link OutageLog} writes: Nest's Logger fits. */
export interface OutageLogger {
  warn(message: string): void;
  log(message: string): void;
}

/**
 * The log of one dependency's outages (Redis, the chain RPC): a line when it goes down, a line when it
 * is back, and while it stays down at most one reminder per `remindMs`, however many errors its
 * clients report (ioredis alone reports every reconnection attempt).
 *
 * @example
 * const outage = new OutageLog(new Logger('Redis'), 'Redis');
 * redis.on('error', (error) => outage.failed(error.message));
 * redis.on('ready', () => outage.recovered());
 */
export class OutageLog {
  private downSince: number | undefined;
  private lastLine = 0;
  private unlogged = 0;

  constructor(
    private readonly logger: OutageLogger,
    private readonly what: string,
    private readonly remindMs = 60_000,
    private readonly now: () => number = Date.now,
  ) {}

  /** Whether the last report was a failure. */
  get down(): boolean {
    return this.downSince !== undefined;
  }

  /** Reports an error; `reason` should be one short line. */
  failed(reason: string): void {
    const now = this.now();
    if (this.downSince === undefined) {
      this.downSince = now;
      this.lastLine = now;
      this.unlogged = 0;
      this.logger.warn(`${this.what} is unreachable: ${reason}`);
      return;
    }
    if (now - this.lastLine < this.remindMs) {
      this.unlogged++;
      return;
    }
    this.logger.warn(
      `${this.what} is still unreachable after ${seconds(now - this.downSince)} (${this.unlogged + 1} errors since the last line): ${reason}`,
    );
    this.lastLine = now;
    this.unlogged = 0;
  }

  /** Reports a success: logs the end of an outage, if one was logged. */
  recovered(): void {
    if (this.downSince === undefined) return;
    this.logger.log(`${this.what} is reachable again after ${seconds(this.now() - this.downSince)}`);
    this.downSince = undefined;
  }
}

const seconds = (ms: number) => `${Math.round(ms / 1_000)} s`;
