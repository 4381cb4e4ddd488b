import type { Address } from 'viem';
import { multicall } from 'viem/actions';
import type { ContractCallError } from '../errors/contract.js';
import { hubAbi, registryAbi } from '../generated/abis.js';
import { type HubStatus, toHubStatus } from './hubStatus.js';
import { guard } from './internal/guard.js';
import type { ChitClient } from './types.js';

/**
 * Parameters of {@link listHubs}.
 *
 * @example
 * const parameters: ListHubsParameters = { registry, offset: 0, limit: 20 };
 */
export interface ListHubsParameters {
  /** The Registry. */
  registry: Address;
  /** Index of the first hub, in registration order; 0 when omitted. */
  offset?: number | undefined;
  /** Most hubs to return; 50 when omitted. */
  limit?: number | undefined;
}

/**
 * A registered hub as a client choosing one sees it.
 *
 * @example
 * const { hubs } = await listHubs(publicClient, { registry });
 * const cheapest: HubListing | undefined = hubs.filter((h) => h.status === 'active').sort((a, b) => a.fee - b.fee)[0];
 */
export interface HubListing {
  hub: Address;
  operator: Address;
  /** Where its service answers. */
  url: string;
  /** The fee in basis points in force now. */
  fee: number;
  stake: bigint;
  status: HubStatus;
}

/**
 * What {@link listHubs} returns.
 *
 * @example
 * const result: ListHubsReturnType = await listHubs(publicClient, { registry, offset: 0, limit: 20 });
 */
export interface ListHubsReturnType {
  hubs: HubListing[];
  /** The number of hubs in the Registry. */
  total: number;
  /** The offset of the next page, or null after the last one. */
  nextOffset: number | null;
}

/**
 * What {@link listHubs} throws.
 *
 * @example
 * try {
 *   await listHubs(publicClient, { registry, offset: 0, limit: 20 });
 * } catch (e) {
 *   console.error((e as ListHubsErrorType).shortMessage);
 * }
 */
export type ListHubsErrorType = ContractCallError;

/**
 * Lists a page of the Registry's hubs, each with its URL, current fee, stake and status read from the
 * hub. Two calls whatever the page size (multicall, deployless where the chain has no Multicall3).
 *
 * @example
 * let offset: number | null = 0;
 * while (offset !== null) {
 *   const page = await listHubs(publicClient, { registry, offset });
 *   for (const hub of page.hubs.filter((h) => h.status === 'active')) console.log(hub.url, hub.fee);
 *   offset = page.nextOffset;
 * }
 */
export async function listHubs(client: ChitClient, parameters: ListHubsParameters): Promise<ListHubsReturnType> {
  const { registry } = parameters;
  const offset = parameters.offset ?? 0;
  const limit = parameters.limit ?? 50;
  const deployless = !client.chain?.contracts?.multicall3;
  const [count, records] = await guard(() =>
    multicall(client, {
      allowFailure: false,
      deployless,
      contracts: [
        { address: registry, abi: registryAbi, functionName: 'hubCount' },
        { address: registry, abi: registryAbi, functionName: 'listHubs', args: [BigInt(offset), BigInt(limit)] },
      ],
    }),
  );
  const total = Number(count);
  const next = offset + records.length;
  const nextOffset = records.length > 0 && next < total ? next : null;
  if (records.length === 0) return { hubs: [], total, nextOffset };

  const reads = await guard(() =>
    multicall(client, {
      allowFailure: false,
      deployless,
      batchSize: 0,
      contracts: records.flatMap(({ hub }) => [
        { address: hub, abi: hubAbi, functionName: 'currentFee' } as const,
        { address: hub, abi: hubAbi, functionName: 'stake' } as const,
        { address: hub, abi: hubAbi, functionName: 'status' } as const,
      ]),
    }),
  );
  const hubs = records.map(({ hub, operator, url }, i) => ({
    hub,
    operator,
    url,
    fee: Number(reads[3 * i]),
    stake: reads[3 * i + 1] as bigint,
    status: toHubStatus(reads[3 * i + 2] as number),
  }));
  return { hubs, total, nextOffset };
}
