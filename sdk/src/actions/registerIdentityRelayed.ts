import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { registryAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { SignedRegisterIdentity } from './signRegisterIdentity.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link registerIdentityRelayed}.
 *
 * @example
 * const parameters: RegisterIdentityRelayedParameters = { registration };
 */
export interface RegisterIdentityRelayedParameters extends AccountParameter {
  /** The identity's signed registration ({@link signRegisterIdentity}). */
  registration: SignedRegisterIdentity;
}

/**
 * What {@link registerIdentityRelayed} returns.
 *
 * @example
 * const result: RegisterIdentityRelayedReturnType = await registerIdentityRelayed(relayerClient, { registration });
 */
export type RegisterIdentityRelayedReturnType = WriteReturnType;

/**
 * What {@link registerIdentityRelayed} throws: `RegistryInvalidSignature`, `RegistryIdentityAlreadyRegistered`,
 * `ERC20InsufficientAllowance` (the relayer fee) among the reverts.
 *
 * @example
 * try {
 *   await registerIdentityRelayed(relayerClient, { registration });
 * } catch (e) {
 *   const error = e as RegisterIdentityRelayedErrorType;
 *   if (error instanceof ContractRevertError && error.is('RegistryInvalidSignature')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type RegisterIdentityRelayedErrorType = ContractRevertError | ContractCallError;

/**
 * Submits an identity's signed registration as its relayer: the sending account, which must be the
 * registration's `relayer`, pays the gas and is paid the registration's relayer fee by the identity.
 *
 * @throws {ContractRevertError} `RegistryInvalidSignature` for a signature that is not the identity's,
 * was signed with a used nonce, or names another relayer than the sending account; `RegistryIdentityAlreadyRegistered`; `ERC20InsufficientAllowance`
 * when the identity has not approved the Registry for the relayer fee.
 * @example
 * const { hash } = await registerIdentityRelayed(relayerClient, { registration });
 * await waitForTransaction(relayerClient, { hash });
 */
export async function registerIdentityRelayed(
  client: ChitClient,
  parameters: RegisterIdentityRelayedParameters,
): Promise<RegisterIdentityRelayedReturnType> {
  const account = requireAccount(client, parameters.account);
  const { registry, identity, beneficiary, relayerFee, signature } = parameters.registration;
  const { request } = await guard(() =>
    simulateContract(client, {
      account,
      address: registry,
      abi: registryAbi,
      functionName: 'registerIdentityFor',
      args: [identity, beneficiary, relayerFee, signature],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)) };
}
