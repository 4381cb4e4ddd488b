import type { Address } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { registryAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link setBeneficiary}.
 *
 * @example
 * const parameters: SetBeneficiaryParameters = { registry, beneficiary };
 */
export interface SetBeneficiaryParameters extends AccountParameter {
  /** The Registry. */
  registry: Address;
  /** The identity's new payout address. */
  beneficiary: Address;
}

/**
 * What {@link setBeneficiary} returns.
 *
 * @example
 * const result: SetBeneficiaryReturnType = await setBeneficiary(providerClient, { registry, beneficiary });
 */
export type SetBeneficiaryReturnType = WriteReturnType;

/**
 * What {@link setBeneficiary} throws: `RegistryIdentityNotRegistered`, `RegistryZeroAddress` among the reverts.
 *
 * @example
 * try {
 *   await setBeneficiary(providerClient, { registry, beneficiary });
 * } catch (e) {
 *   const error = e as SetBeneficiaryErrorType;
 *   if (error instanceof ContractRevertError && error.is('RegistryIdentityNotRegistered')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type SetBeneficiaryErrorType = ContractRevertError | ContractCallError;

/**
 * Sets where the sending identity's earnings are paid from now on. The identity pays the gas; see
 * {@link signSetBeneficiary} and {@link setBeneficiaryRelayed} otherwise.
 *
 * @throws {ContractRevertError} `RegistryIdentityNotRegistered` for an unregistered identity;
 * `RegistryZeroAddress` for the zero address.
 * @example
 * const { hash } = await setBeneficiary(walletClient, { registry, beneficiary: coldWallet });
 * await waitForTransaction(walletClient, { hash });
 */
export async function setBeneficiary(
  client: ChitClient,
  parameters: SetBeneficiaryParameters,
): Promise<SetBeneficiaryReturnType> {
  const account = requireAccount(client, parameters.account);
  const { request } = await guard(() =>
    simulateContract(client, {
      account,
      address: parameters.registry,
      abi: registryAbi,
      functionName: 'setBeneficiary',
      args: [parameters.beneficiary],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)) };
}
