import type { Address, Hex } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { hubAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link instantExit}.
 *
 * @example
 * const parameters: InstantExitParameters = { hub, amount, deadline, signature };
 */
export interface InstantExitParameters extends AccountParameter {
  /** The hub holding the channel. */
  hub: Address;
  /** Tokens to take out now. */
  amount: bigint;
  /** Last timestamp (seconds) at which the hub's signature is valid. */
  deadline: bigint;
  /** The hub operator's EIP-712 `InstantExit` signature for this consumer, amount, nonce and deadline,
   * as the hub's service returns it. */
  signature: Hex;
}

/**
 * What {@link instantExit} returns.
 *
 * @example
 * const result: InstantExitReturnType = await instantExit(consumerClient, { hub, amount, deadline, signature });
 */
export type InstantExitReturnType = WriteReturnType;

/**
 * What {@link instantExit} throws: `HubSignatureExpired`, `HubInvalidSignature`, `HubInsufficientBalance` among the
 * reverts.
 *
 * @example
 * try {
 *   await instantExit(consumerClient, { hub, amount, deadline, signature });
 * } catch (e) {
 *   const error = e as InstantExitErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubSignatureExpired')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type InstantExitErrorType = ContractRevertError | ContractCallError;

/**
 * Takes `amount` out of the consumer's channel at once, co-signed by the hub. Ask the hub's service
 * for the signature (it signs the consumer's current exit nonce); this action only submits it.
 *
 * @throws {ContractRevertError} `HubSignatureExpired` after `deadline`; `HubInvalidSignature` when
 * the signature is not the operator's for these values; `HubInsufficientBalance`.
 * @example
 * const issuedAt = BigInt(Math.floor(Date.now() / 1000));
 * const request = await signInstantExitRequest(walletClient, { hub, chainId, consumer, amount, issuedAt });
 * const { signature, deadline } = await hubClient.instantExit(request); // the hub's co-signature
 * const { hash } = await instantExit(walletClient, { hub, amount, deadline, signature });
 * await waitForTransaction(walletClient, { hash });
 */
export async function instantExit(
  client: ChitClient,
  parameters: InstantExitParameters,
): Promise<InstantExitReturnType> {
  const account = requireAccount(client, parameters.account);
  const { request } = await guard(() =>
    simulateContract(client, {
      account,
      address: parameters.hub,
      abi: hubAbi,
      functionName: 'instantExit',
      args: [parameters.amount, parameters.deadline, parameters.signature],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)) };
}
