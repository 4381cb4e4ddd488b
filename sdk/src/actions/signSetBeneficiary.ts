import type { Address, Hex } from 'viem';
import { getChainId, readContract, signTypedData } from 'viem/actions';
import type { ChitError } from '../errors/base.js';
import type { ContractCallError } from '../errors/contract.js';
import { registryAbi } from '../generated/abis.js';
import { registryDomain, setBeneficiaryTypes } from '../protocol/eip712.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient } from './types.js';

/**
 * Parameters of {@link signSetBeneficiary}.
 *
 * @example
 * const parameters: SignSetBeneficiaryParameters = { registry, beneficiary };
 */
export interface SignSetBeneficiaryParameters extends AccountParameter {
  /** The Registry. */
  registry: Address;
  /** The identity's new payout address. */
  beneficiary: Address;
  /** The identity's Registry nonce; read from the Registry when omitted. */
  nonce?: bigint | undefined;
}

/**
 * A beneficiary change signed by its identity, ready for any relayer (or a hub settlement) to submit.
 *
 * @example
 * const change: SignedSetBeneficiary = await signSetBeneficiary(providerClient, { registry, beneficiary });
 * await setBeneficiaryRelayed(relayerClient, { change });
 */
export interface SignedSetBeneficiary {
  registry: Address;
  chainId: number;
  identity: Address;
  beneficiary: Address;
  nonce: bigint;
  signature: Hex;
}

/**
 * What {@link signSetBeneficiary} returns.
 *
 * @example
 * const result: SignSetBeneficiaryReturnType = await signSetBeneficiary(providerClient, { registry, beneficiary });
 */
export type SignSetBeneficiaryReturnType = SignedSetBeneficiary;

/**
 * What {@link signSetBeneficiary} throws.
 *
 * @example
 * try {
 *   await signSetBeneficiary(providerClient, { registry, beneficiary });
 * } catch (e) {
 *   console.error((e as SignSetBeneficiaryErrorType).shortMessage);
 * }
 */
export type SignSetBeneficiaryErrorType = ChitError | ContractCallError;

/**
 * Signs the identity's EIP-712 `SetBeneficiary` for the Registry. Submit it with
 * {@link setBeneficiaryRelayed}, or with a settlement in {@link settleProviderWithBeneficiary}. Each
 * signature is valid once, for the identity's nonce at signing. Sends nothing.
 *
 * @example
 * const change = await signSetBeneficiary(providerClient, { registry, beneficiary: coldWallet });
 * await setBeneficiaryRelayed(relayerClient, { change });
 */
export async function signSetBeneficiary(
  client: ChitClient,
  parameters: SignSetBeneficiaryParameters,
): Promise<SignSetBeneficiaryReturnType> {
  const account = requireAccount(client, parameters.account);
  const { registry } = parameters;
  const [chainId, nonce] = await guard(() =>
    Promise.all([
      client.chain?.id ?? getChainId(client),
      parameters.nonce ??
        readContract(client, { address: registry, abi: registryAbi, functionName: 'nonces', args: [account.address] }),
    ]),
  );
  const message = { identity: account.address, beneficiary: parameters.beneficiary, nonce };
  const signature = await guard(() =>
    signTypedData(client, {
      account,
      domain: registryDomain({ registry, chainId }),
      types: setBeneficiaryTypes,
      primaryType: 'SetBeneficiary',
      message,
    }),
  );
  return { registry, chainId, ...message, signature };
}
