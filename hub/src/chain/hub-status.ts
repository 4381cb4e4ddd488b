import type { HubStatus } from '@chit/sdk';
import { Logger } from '@nestjs/common';
import type { ChainService } from './chain.service';
import { briefRpcError, rpcUnreachable } from './rpc-errors';

/**
 * The hub's on-chain status, polled in the background so that no request waits on the RPC (and
 * exchanges go on while it is unreachable, with the last status known).
 */
export class HubStatusWatch {
  private readonly logger = new Logger('HubStatusWatch');
  private current: HubStatus | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly chain: ChainService,
    private readonly pollMs: number,
  ) {}

  /** The last status read; undefined before the first read. */
  get status(): HubStatus | undefined {
    return this.current;
  }

  /** Reads the status now, then every `pollMs`. */
  async start(): Promise<void> {
    await this.refresh();
    const tick = () => {
      this.timer = setTimeout(() => void this.refresh().finally(() => this.timer && tick()), this.pollMs);
    };
    tick();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  private async refresh(): Promise<void> {
    try {
      const { status } = await this.chain.hubInfo();
      if (status !== this.current && this.current !== undefined) this.logger.warn(`the hub is now ${status}`);
      this.current = status;
      this.chain.outage.recovered();
    } catch (error) {
      if (rpcUnreachable(error)) this.chain.unreachable(error);
      else this.logger.debug(`status unread: ${briefRpcError(error, this.chain.rpcUrl)}`);
    }
  }
}
