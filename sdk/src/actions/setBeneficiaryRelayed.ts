import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { registryAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { SignedSetBeneficiary } from './signSetBeneficiary.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link setBeneficiaryRelayed}.
 *
 * @example
 * const parameters: SetBeneficiaryRelayedParameters = { change };
 */
export interface SetBeneficiaryRelayedParameters extends AccountParameter {
  /** The identity's signed change ({@link signSetBeneficiary}). */
  change: SignedSetBeneficiary;
}

/**
 * What {@link setBeneficiaryRelayed} returns.
 *
 * @example
 * const result: SetBeneficiaryRelayedReturnType = await setBeneficiaryRelayed(relayerClient, { change });
 */
export type SetBeneficiaryRelayedReturnType = WriteReturnType;

/**
 * What {@link setBeneficiaryRelayed} throws: `RegistryInvalidSignature`, `RegistryIdentityNotRegistered` among the
 * reverts.
 *
 * @example
 * try {
 *   await setBeneficiaryRelayed(relayerClient, { change });
 * } catch (e) {
 *   const error = e as SetBeneficiaryRelayedErrorType;
 *   if (error instanceof ContractRevertError && error.is('RegistryInvalidSignature')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type SetBeneficiaryRelayedErrorType = ContractRevertError | ContractCallError;

/**
 * Submits an identity's signed beneficiary change as a relayer; the sending account pays the gas.
 *
 * @throws {ContractRevertError} `RegistryInvalidSignature` for a signature that is not the identity's
 * or was already used (its nonce is spent); `RegistryIdentityNotRegistered`.
 * @example
 * const { hash } = await setBeneficiaryRelayed(relayerClient, { change });
 * await waitForTransaction(relayerClient, { hash });
 */
export async function setBeneficiaryRelayed(
  client: ChitClient,
  parameters: SetBeneficiaryRelayedParameters,
): Promise<SetBeneficiaryRelayedReturnType> {
  const account = requireAccount(client, parameters.account);
  const { registry, identity, beneficiary, signature } = parameters.change;
  const { request } = await guard(() =>
    simulateContract(client, {
      account,
      address: registry,
      abi: registryAbi,
      functionName: 'setBeneficiaryFor',
      args: [identity, beneficiary, signature],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)) };
}
