import { type Hex, isAddressEqual } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import { ChitError } from '../errors/base.js';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import type { InvalidSignatureError } from '../errors/protocol.js';
import { hubAbi } from '../generated/abis.js';
import { toProviderClaim } from '../protocol/claims.js';
import type { SignedHubPromise } from '../protocol/types.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import { requireScope } from './internal/requireScope.js';
import type { SignedSetBeneficiary } from './signSetBeneficiary.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link settleProviderWithBeneficiary}.
 *
 * @example
 * const parameters: SettleProviderWithBeneficiaryParameters = { promise, preimage, beneficiary: change };
 */
export interface SettleProviderWithBeneficiaryParameters extends AccountParameter {
  /** The hub's signed promise to the provider; it names the hub that pays. */
  promise: SignedHubPromise;
  /** The R of the promise's hashlock. */
  preimage: Hex;
  /** The provider's signed change of beneficiary ({@link signSetBeneficiary}) for the hub's Registry. */
  beneficiary: SignedSetBeneficiary;
  /** When a relayer sends it: its fee and the provider's authorization of it. */
  relayer?: { fee: bigint; authorization: Hex } | undefined;
}

/**
 * What {@link settleProviderWithBeneficiary} returns.
 *
 * @example
 * const result: SettleProviderWithBeneficiaryReturnType = await settleProviderWithBeneficiary(relayerClient, {
 *   promise,
 *   preimage,
 *   beneficiary: change,
 * });
 */
export interface SettleProviderWithBeneficiaryReturnType extends WriteReturnType {
  /** Tokens paid to the new beneficiary, as simulated just before sending. */
  payout: bigint;
}

/**
 * What {@link settleProviderWithBeneficiary} throws: `RegistryInvalidSignature`, `RegistryIdentityNotRegistered`,
 * and the reverts of {@link settleProvider}.
 *
 * @example
 * try {
 *   await settleProviderWithBeneficiary(relayerClient, { promise, preimage, beneficiary: change });
 * } catch (e) {
 *   const error = e as SettleProviderWithBeneficiaryErrorType;
 *   if (error instanceof ContractRevertError && error.is('RegistryInvalidSignature')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type SettleProviderWithBeneficiaryErrorType =
  | ContractRevertError
  | ContractCallError
  | InvalidSignatureError
  | ChitError;

/**
 * Changes the provider's beneficiary in the Registry and settles its hub promise to that new
 * beneficiary, in one transaction: a provider that lost the key of its payout address can redirect
 * and collect at once.
 *
 * @throws {ChitError} `IDENTITY_MISMATCH` when the beneficiary change is not the promise's provider's.
 * @throws {ContractRevertError} `RegistryInvalidSignature` for a change that is not the provider's or
 * was already used; `RegistryIdentityNotRegistered`; and those of {@link settleProvider}.
 * @example
 * const beneficiary = await signSetBeneficiary(providerClient, { registry, beneficiary: newWallet });
 * const { hash } = await settleProviderWithBeneficiary(providerClient, { promise, preimage, beneficiary });
 */
export async function settleProviderWithBeneficiary(
  client: ChitClient,
  parameters: SettleProviderWithBeneficiaryParameters,
): Promise<SettleProviderWithBeneficiaryReturnType> {
  const account = requireAccount(client, parameters.account);
  const { promise, beneficiary } = parameters;
  requireScope(client, promise.hub, promise, 'hub promise');
  if (!isAddressEqual(beneficiary.identity, promise.provider)) {
    throw new ChitError(
      'IDENTITY_MISMATCH',
      `The beneficiary change is signed by ${beneficiary.identity}, not by the provider ${promise.provider}`,
    );
  }
  const claim = toProviderClaim(promise, parameters.preimage, parameters.relayer);
  const { request, result } = await guard(() =>
    simulateContract(client, {
      account,
      address: promise.hub,
      abi: hubAbi,
      functionName: 'settleProviderWithBeneficiary',
      args: [claim, beneficiary.beneficiary, beneficiary.signature],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)), payout: result };
}
