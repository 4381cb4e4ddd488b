import { getHubInfo, type HubInfo } from '@chit/sdk';
import { type Address, createPublicClient, http, type PublicClient, webSocket } from 'viem';

/** The hub's view of the chain: one viem client, the chain id checked at start, hub reads. */
export class ChainService {
  readonly client: PublicClient;
  private infoCache: { at: number; info: HubInfo } | undefined;

  constructor(
    readonly rpcUrl: string,
    readonly hub: Address,
  ) {
    const transport = rpcUrl.startsWith('ws') ? webSocket(rpcUrl) : http(rpcUrl, { retryCount: 2, timeout: 10_000 });
    this.client = createPublicClient({ transport }) as PublicClient;
  }

  /** The chain id, checked against `expected` when given. */
  async chainId(expected?: number): Promise<number> {
    const chainId = await this.client.getChainId();
    if (expected !== undefined && chainId !== expected) {
      throw new Error(`RPC_URL serves chain ${chainId}, but CHAIN_ID is ${expected}`);
    }
    return chainId;
  }

  /** The hub's on-chain state, read at most once a second. */
  async hubInfo(): Promise<HubInfo> {
    if (this.infoCache && Date.now() - this.infoCache.at < 1_000) return this.infoCache.info;
    const info = await getHubInfo(this.client, { hub: this.hub });
    this.infoCache = { at: Date.now(), info };
    return info;
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
