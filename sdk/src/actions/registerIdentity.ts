import type { Address } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { registryAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000';

/**
 * Parameters of {@link registerIdentity}.
 *
 * @example
 * const parameters: RegisterIdentityParameters = { registry, beneficiary };
 */
export interface RegisterIdentityParameters extends AccountParameter {
  /** The Registry. */
  registry: Address;
  /** Where the identity's earnings go; the identity itself when omitted. */
  beneficiary?: Address | undefined;
}

/**
 * What {@link registerIdentity} returns.
 *
 * @example
 * const result: RegisterIdentityReturnType = await registerIdentity(providerClient, { registry, beneficiary });
 */
export type RegisterIdentityReturnType = WriteReturnType;

/**
 * What {@link registerIdentity} throws: `RegistryIdentityAlreadyRegistered` among the reverts.
 *
 * @example
 * try {
 *   await registerIdentity(providerClient, { registry, beneficiary });
 * } catch (e) {
 *   const error = e as RegisterIdentityErrorType;
 *   if (error instanceof ContractRevertError && error.is('RegistryIdentityAlreadyRegistered')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type RegisterIdentityErrorType = ContractRevertError | ContractCallError;

/**
 * Registers the sending account as an identity (a provider node) in the Registry, paying out to
 * `beneficiary`. The account pays the gas; see {@link signRegisterIdentity} and
 * {@link registerIdentityRelayed} for an identity without gas money.
 *
 * @throws {ContractRevertError} `RegistryIdentityAlreadyRegistered` when it already is.
 * @example
 * const { hash } = await registerIdentity(walletClient, { registry, beneficiary: payoutAddress });
 * await waitForTransaction(walletClient, { hash });
 */
export async function registerIdentity(
  client: ChitClient,
  parameters: RegisterIdentityParameters,
): Promise<RegisterIdentityReturnType> {
  const account = requireAccount(client, parameters.account);
  const { request } = await guard(() =>
    simulateContract(client, {
      account,
      address: parameters.registry,
      abi: registryAbi,
      functionName: 'registerIdentity',
      args: [parameters.beneficiary ?? ZERO_ADDRESS],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)) };
}
