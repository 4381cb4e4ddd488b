import type { Address } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { hubAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link requestExit}.
 *
 * @example
 * const parameters: RequestExitParameters = { hub, amount: parseEther('5') };
 */
export interface RequestExitParameters extends AccountParameter {
  /** The hub holding the channel. */
  hub: Address;
  /** Tokens to take out once the exit delay has passed. */
  amount: bigint;
}

/**
 * What {@link requestExit} returns.
 *
 * @example
 * const result: RequestExitReturnType = await requestExit(consumerClient, { hub, amount: parseEther('5') });
 */
export type RequestExitReturnType = WriteReturnType;

/**
 * What {@link requestExit} throws: `HubZeroAmount`, `HubInsufficientBalance` among the reverts.
 *
 * @example
 * try {
 *   await requestExit(consumerClient, { hub, amount: parseEther('5') });
 * } catch (e) {
 *   const error = e as RequestExitErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubInsufficientBalance')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type RequestExitErrorType = ContractRevertError | ContractCallError;

/**
 * Asks to take `amount` out of the consumer's channel after the exit delay (replacing any pending
 * request). The hub may still settle the consumer's promises meanwhile; {@link finalizeExit} pays
 * what is left, up to `amount`.
 *
 * @throws {ContractRevertError} `HubInsufficientBalance` when the channel holds less than `amount`;
 * `HubZeroAmount` for zero.
 * @example
 * const { hash } = await requestExit(walletClient, { hub, amount: parseEther('5') });
 * await waitForTransaction(walletClient, { hash });
 * const { exit } = await getConsumerChannel(walletClient, { hub, consumer: walletClient.account.address });
 * console.log('ready at', new Date(Number(exit!.readyAt) * 1000));
 */
export async function requestExit(
  client: ChitClient,
  parameters: RequestExitParameters,
): Promise<RequestExitReturnType> {
  const account = requireAccount(client, parameters.account);
  const { request } = await guard(() =>
    simulateContract(client, {
      account,
      address: parameters.hub,
      abi: hubAbi,
      functionName: 'requestExit',
      args: [parameters.amount],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)) };
}
