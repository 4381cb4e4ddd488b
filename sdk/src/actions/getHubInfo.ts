import type { Address } from 'viem';
import { multicall } from 'viem/actions';
import type { ContractCallError } from '../errors/contract.js';
import { hubAbi } from '../generated/abis.js';
import { type HubStatus, toHubStatus } from './hubStatus.js';
import { guard } from './internal/guard.js';
import type { ChitClient } from './types.js';

/**
 * Parameters of {@link getHubInfo}.
 *
 * @example
 * const parameters: GetHubInfoParameters = { hub };
 */
export interface GetHubInfoParameters {
  /** The hub. */
  hub: Address;
}

/**
 * A hub's state as every client sees it on-chain.
 *
 * @example
 * const { status, fee, stake }: HubInfo = await getHubInfo(publicClient, { hub });
 */
export interface HubInfo {
  hub: Address;
  /** Runs the hub and signs its promises. */
  operator: Address;
  /** The token the hub holds. */
  token: Address;
  /** The Registry that created the hub. */
  registry: Address;
  status: HubStatus;
  /** Whether the hub refuses new consumers (those with a channel carry on). */
  consumersPaused: boolean;
  /** The fee in basis points in force now. */
  fee: number;
  /** A scheduled fee change not yet in force, or null. */
  pendingFee: { fee: number; effectiveAt: bigint } | null;
  /** The operator's stake, which backs the hub's promises. */
  stake: bigint;
  /** What provider claims took from the stake and the operator has yet to put back (non-zero while punished). */
  stakeOwed: bigint;
  /** The hub's own money, which pays providers first. */
  freeFunds: bigint;
  /** When a closing hub can be closed (unix seconds), or null. */
  closesAt: bigint | null;
}

/**
 * What {@link getHubInfo} returns.
 *
 * @example
 * const result: GetHubInfoReturnType = await getHubInfo(publicClient, { hub });
 */
export type GetHubInfoReturnType = HubInfo;

/**
 * What {@link getHubInfo} throws.
 *
 * @example
 * try {
 *   await getHubInfo(publicClient, { hub });
 * } catch (e) {
 *   console.error((e as GetHubInfoErrorType).shortMessage);
 * }
 */
export type GetHubInfoErrorType = ContractCallError;

/**
 * Reads a hub's operator, fee (now and scheduled), stake, free funds and status in one call, at one
 * block.
 *
 * @example
 * const info = await getHubInfo(publicClient, { hub });
 * if (info.status === 'punished') console.warn('the hub paid a claim from its stake');
 * if (info.pendingFee) console.log(`fee becomes ${info.pendingFee.fee} bp at ${info.pendingFee.effectiveAt}`);
 */
export async function getHubInfo(client: ChitClient, parameters: GetHubInfoParameters): Promise<GetHubInfoReturnType> {
  const { hub } = parameters;
  const contract = { address: hub, abi: hubAbi } as const;
  const [config, fee, status, stake, stakeOwed, freeFunds, closesAt, token, registry] = await guard(() =>
    multicall(client, {
      allowFailure: false,
      deployless: !client.chain?.contracts?.multicall3,
      contracts: [
        { ...contract, functionName: 'config' },
        { ...contract, functionName: 'currentFee' },
        { ...contract, functionName: 'status' },
        { ...contract, functionName: 'stake' },
        { ...contract, functionName: 'stakeOwed' },
        { ...contract, functionName: 'freeFunds' },
        { ...contract, functionName: 'closesAt' },
        { ...contract, functionName: 'token' },
        { ...contract, functionName: 'registry' },
      ],
    }),
  );
  // `currentFee` still equal to the stored fee while a different fee is scheduled: not in force yet.
  const pending = config.pendingFeeAt !== 0 && config.pendingFee !== config.fee && fee === config.fee;
  return {
    hub,
    operator: config.operator,
    token,
    registry,
    status: toHubStatus(status),
    consumersPaused: config.consumersPaused,
    fee,
    pendingFee: pending ? { fee: config.pendingFee, effectiveAt: BigInt(config.pendingFeeAt) } : null,
    stake,
    stakeOwed,
    freeFunds,
    closesAt: closesAt === 0n ? null : closesAt,
  };
}
