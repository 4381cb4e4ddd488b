import { registryAbi } from '@chit/sdk';
import { type Address, BlockNotFoundError, getAbiItem, getAddress, type PublicClient } from 'viem';
import type { Hex } from '../db/bytes';
import type { Deployment, DeploymentRepository, FollowedChain } from '../repositories/deployment.repository';

/** Blocks per getLogs call when the RPC refuses to search the whole chain at once. */
const SEARCH_WINDOW = 10_000n;

const HUB_REGISTERED = getAbiItem({ abi: registryAbi, name: 'HubRegistered' });

/** This hub as it starts: what its books must belong to. */
export interface DeploymentScope {
  chainId: number;
  hub: Address;
  registry: Address;
  /** The chain follower's cursor id, which names the books of followers from before deployments were recorded. */
  cursorId: string;
  /** FOLLOWER_START_BLOCK: where the search for the hub's registration starts. */
  startBlock: bigint;
  /** The database's name, for the message. */
  database: string;
}

/** The database holds the books of another deployment; the hub does not start on it. */
export class DeploymentMismatchError extends Error {
  constructor(
    readonly database: string,
    theirs: string,
    readonly ours: Deployment,
  ) {
    super(
      [
        `refusing to start: DATABASE_URL's database "${database}" holds the books of another deployment.`,
        `  that database's: ${theirs}`,
        `  this hub's:      ${describe(ours)}`,
        'A database holds the books of one deployment (its replicas share it). Point DATABASE_URL at a database of ' +
          'this deployment, a new empty one for a new deployment, or drop this one if the books of the other ' +
          'deployment are no longer needed (they are its only record of the promises it signed).',
      ].join('\n'),
    );
    this.name = 'DeploymentMismatchError';
  }
}

/**
 * The books belong to one deployment: a chain, a Hub contract, and the block the Registry registered
 * the hub in, by number and hash. A fresh local chain reuses the chain id and the deterministic
 * addresses, but not that block's hash (its timestamp and parent differ), nor its genesis.
 *
 * {@link check} reads only, before the migrations: a database of another deployment is left exactly as
 * it was. {@link record} writes the deployment once the schema has its table; the first hub to start
 * on an empty database records it, and its replicas find it and go on.
 */
export class DeploymentService {
  constructor(
    private readonly client: PublicClient,
    private readonly repository: DeploymentRepository,
    private readonly scope: DeploymentScope,
  ) {}

  /**
   * Throws {@link DeploymentMismatchError} when the database holds another deployment's books. Returns
   * this deployment when it still has to be recorded (a new database, or books kept before
   * deployments were recorded, whose follower checkpoints are on this chain), else undefined.
   */
  async check(): Promise<Deployment | undefined> {
    const { chainId, cursorId, database } = this.scope;
    const hub = this.scope.hub.toLowerCase() as Hex;
    const recorded = await this.repository.recorded();
    if (recorded) {
      if (
        recorded.chainId === chainId &&
        recorded.hub === hub &&
        (await this.hashOf(recorded.block)) === recorded.blockHash
      ) {
        return undefined;
      }
      throw new DeploymentMismatchError(database, describe(recorded), await this.identify());
    }
    const ours = await this.identify();
    // Books from before this check: the follower's cursor names the chain and hub, its checkpoints the blocks.
    for (const followed of await this.repository.followedChains()) {
      const onChain = await this.onChain(followed);
      if (followed.cursorId === cursorId && onChain) continue;
      throw new DeploymentMismatchError(database, describeFollowed(followed, onChain), ours);
    }
    return ours;
  }

  /** Records `deployment` unless one is recorded; throws when the one recorded (a race) is another. */
  async record(deployment: Deployment): Promise<void> {
    const recorded = await this.repository.record(deployment);
    if (!sameDeployment(recorded, deployment)) {
      throw new DeploymentMismatchError(this.scope.database, describe(recorded), deployment);
    }
  }

  /** This hub's deployment: the block of its HubRegistered event. */
  async identify(): Promise<Deployment> {
    const { chainId, hub, registry, startBlock } = this.scope;
    const head = await this.client.getBlockNumber({ cacheTime: 0 });
    // From FOLLOWER_START_BLOCK (set to the registration block on a long chain), else before it.
    const found =
      (await this.registration(startBlock, head)) ??
      (startBlock > 0n ? await this.registration(0n, startBlock - 1n) : undefined);
    if (!found) {
      throw new Error(`the Registry ${registry} on chain ${chainId} has no HubRegistered event for the hub ${hub}`);
    }
    return { chainId, hub: hub.toLowerCase() as Hex, ...found };
  }

  /** The hub's HubRegistered log in [from, to]: one call, or windows when the RPC caps the range. */
  private async registration(from: bigint, to: bigint): Promise<{ block: bigint; blockHash: Hex } | undefined> {
    const search = async (fromBlock: bigint, toBlock: bigint) => {
      const logs = await this.client.getLogs({
        address: this.scope.registry,
        event: HUB_REGISTERED,
        args: { hub: this.scope.hub },
        fromBlock,
        toBlock,
      });
      const log = logs[0];
      return log ? { block: log.blockNumber, blockHash: log.blockHash.toLowerCase() as Hex } : undefined;
    };
    try {
      return await search(from, to);
    } catch {
      // Many RPC providers cap the blocks of one getLogs call.
    }
    for (let start = from; start <= to; start += SEARCH_WINDOW) {
      const end = start + SEARCH_WINDOW - 1n < to ? start + SEARCH_WINDOW - 1n : to;
      const found = await search(start, end);
      if (found) return found;
    }
    return undefined;
  }

  /** Whether the follower's newest or oldest checkpoint is a block of this chain (a reorg moves only the newest). */
  private async onChain(followed: FollowedChain): Promise<boolean> {
    for (const checkpoint of [followed.newest, followed.oldest]) {
      if ((await this.hashOf(checkpoint.block)) === checkpoint.hash) return true;
    }
    return false;
  }

  /** The hash of block `block` of this chain, or undefined when the chain is shorter. */
  private async hashOf(block: bigint): Promise<Hex | undefined> {
    try {
      return (await this.client.getBlock({ blockNumber: block })).hash.toLowerCase() as Hex;
    } catch (error) {
      if (error instanceof BlockNotFoundError) return undefined;
      throw error;
    }
  }
}

/** The database a Postgres URL names, for messages (never the URL: it may hold a password). */
export function databaseName(url: string): string {
  const parsed = new URL(url);
  return decodeURIComponent(parsed.pathname.slice(1)) || decodeURIComponent(parsed.username) || 'postgres';
}

export const sameDeployment = (a: Deployment, b: Deployment): boolean =>
  a.chainId === b.chainId && a.hub === b.hub && a.block === b.block && a.blockHash === b.blockHash;

/** "hub 0x… on chain 31337, registered in block 5 (0x…)" */
export function describe(deployment: Deployment): string {
  return `hub ${getAddress(deployment.hub)} on chain ${deployment.chainId}, registered in block ${deployment.block} (${deployment.blockHash})`;
}

/** Books from before deployments were recorded, named by their follower's cursor (`<chainId>:<hub>`). */
function describeFollowed({ cursorId, newest }: FollowedChain, onThisChain: boolean): string {
  const [chainId, hub] = cursorId.split(':');
  const whose = hub && /^0x[0-9a-f]{40}$/.test(hub) ? `hub ${getAddress(hub)} on chain ${chainId}` : `"${cursorId}"`;
  const where = onThisChain ? '' : ', a block this chain does not have';
  return `${whose}, recorded before deployments were, followed up to block ${newest.block} (${newest.hash})${where}`;
}
