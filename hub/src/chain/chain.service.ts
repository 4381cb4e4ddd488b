import { getHubInfo, type HubInfo } from '@chit/sdk';
import { Logger } from '@nestjs/common';
import { type Address, createPublicClient, http, type PublicClient, webSocket } from 'viem';
import { OutageLog } from '../health/outage-log';
import { briefRpcError } from './rpc-errors';

/** The hub's view of the chain: one viem client, the chain id checked at start, hub reads. */
export class ChainService {
  readonly client: PublicClient;
  /** The log of RPC outages, fed by the status watch and by the requests the RPC failed. */
  readonly outage = new OutageLog(new Logger('Chain'), 'the chain RPC');
  private infoCache: { at: number; info: HubInfo } | undefined;

  constructor(
    readonly rpcUrl: string,
    readonly hub: Address,
    /** How long a read of the hub's state is served again without asking the RPC. */
    private readonly infoMaxAgeMs = 1_000,
  ) {
    const transport = rpcUrl.startsWith('ws') ? webSocket(rpcUrl) : http(rpcUrl, { retryCount: 2, timeout: 10_000 });
    this.client = createPublicClient({ transport }) as PublicClient;
  }

  /** Logs `error` of the RPC as an outage, in one short line without the RPC URL. */
  unreachable(error: unknown): void {
    this.outage.failed(briefRpcError(error, this.rpcUrl));
  }

  /** The chain id, checked against `expected` when given. */
  async chainId(expected?: number): Promise<number> {
    const chainId = await this.client.getChainId();
    if (expected !== undefined && chainId !== expected) {
      throw new Error(`RPC_URL serves chain ${chainId}, but CHAIN_ID is ${expected}`);
    }
    return chainId;
  }

  /** The hub's on-chain state, read at most once per `infoMaxAgeMs` (a second by default). */
  async hubInfo(): Promise<HubInfo> {
    if (this.infoCache && Date.now() - this.infoCache.at < this.infoMaxAgeMs) return this.infoCache.info;
    const info = await getHubInfo(this.client, { hub: this.hub });
    this.infoCache = { at: Date.now(), info };
    return info;
  }

  /** The hub's on-chain state last read, however old; undefined before the first read. */
  get lastHubInfo(): HubInfo | undefined {
    return this.infoCache?.info;
  }

  /**
   * Whether the RPC answers within `timeoutMs`: a node that accepts connections but never answers
   * (hung, overloaded) is not ready, and a readiness probe must not wait out the client's retries.
   */
  async ready(timeoutMs = 3_000): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<false>((resolve) => {
      timer = setTimeout(() => resolve(false), timeoutMs);
    });
    try {
      return await Promise.race([this.client.getBlockNumber({ cacheTime: 0 }).then(() => true), late]);
    } catch {
      return false;
    } finally {
      clearTimeout(timer);
    }
  }
}
