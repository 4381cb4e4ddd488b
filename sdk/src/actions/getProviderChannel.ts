import type { Address } from 'viem';
import { multicall, readContract } from 'viem/actions';
import type { ContractCallError } from '../errors/contract.js';
import { hubAbi, registryAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import type { ChitClient } from './types.js';

/**
 * Parameters of {@link getProviderChannel}.
 *
 * @example
 * const parameters: GetProviderChannelParameters = { hub, provider };
 */
export interface GetProviderChannelParameters {
  /** The hub. */
  hub: Address;
  /** The provider identity. */
  provider: Address;
  /** The hub's Registry; read from the hub when omitted. */
  registry?: Address | undefined;
}

/**
 * A provider's channel at a hub, and where its earnings go.
 *
 * @example
 * const { settled, beneficiary }: ProviderChannel = await getProviderChannel(publicClient, { hub, provider });
 */
export interface ProviderChannel {
  /** The highest hub promise total settled so far (before fees). */
  settled: bigint;
  /** Where the Registry pays the provider's earnings: its beneficiary, or the provider itself. */
  beneficiary: Address;
  /** Whether the provider is registered in the Registry. */
  registered: boolean;
}

/**
 * What {@link getProviderChannel} returns.
 *
 * @example
 * const result: GetProviderChannelReturnType = await getProviderChannel(publicClient, { hub, provider });
 */
export type GetProviderChannelReturnType = ProviderChannel;

/**
 * What {@link getProviderChannel} throws.
 *
 * @example
 * try {
 *   await getProviderChannel(publicClient, { hub, provider });
 * } catch (e) {
 *   console.error((e as GetProviderChannelErrorType).shortMessage);
 * }
 */
export type GetProviderChannelErrorType = ContractCallError;

/**
 * Reads what a hub has settled to a provider, and the provider's beneficiary from the Registry.
 *
 * @example
 * const { settled, beneficiary } = await getProviderChannel(publicClient, { hub, provider });
 */
export async function getProviderChannel(
  client: ChitClient,
  parameters: GetProviderChannelParameters,
): Promise<GetProviderChannelReturnType> {
  const { hub, provider } = parameters;
  const registry =
    parameters.registry ??
    (await guard(() => readContract(client, { address: hub, abi: hubAbi, functionName: 'registry' })));
  const [settled, beneficiary, registered] = await guard(() =>
    multicall(client, {
      allowFailure: false,
      deployless: !client.chain?.contracts?.multicall3,
      contracts: [
        { address: hub, abi: hubAbi, functionName: 'providerSettled', args: [provider] },
        { address: registry, abi: registryAbi, functionName: 'beneficiaryOf', args: [provider] },
        { address: registry, abi: registryAbi, functionName: 'isRegistered', args: [provider] },
      ],
    }),
  );
  return { settled, beneficiary, registered };
}
