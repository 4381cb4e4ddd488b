import type { Address } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { hubAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link cancelExit}.
 *
 * @example
 * const parameters: CancelExitParameters = { hub };
 */
export interface CancelExitParameters extends AccountParameter {
  /** The hub holding the channel. */
  hub: Address;
}

/**
 * What {@link cancelExit} returns.
 *
 * @example
 * const result: CancelExitReturnType = await cancelExit(consumerClient, { hub });
 */
export type CancelExitReturnType = WriteReturnType;

/**
 * What {@link cancelExit} throws: `HubNoExitPending` when there is nothing to cancel.
 *
 * @example
 * try {
 *   await cancelExit(consumerClient, { hub });
 * } catch (e) {
 *   const error = e as CancelExitErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubNoExitPending')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type CancelExitErrorType = ContractRevertError | ContractCallError;

/**
 * Withdraws the consumer's pending exit request: the whole balance can be promised again.
 *
 * @throws {ContractRevertError} `HubNoExitPending` when no exit is pending.
 * @example
 * const { hash } = await cancelExit(walletClient, { hub });
 * await waitForTransaction(walletClient, { hash });
 */
export async function cancelExit(client: ChitClient, parameters: CancelExitParameters): Promise<CancelExitReturnType> {
  const account = requireAccount(client, parameters.account);
  const { request } = await guard(() =>
    simulateContract(client, { account, address: parameters.hub, abi: hubAbi, functionName: 'cancelExit' }),
  );
  return { hash: await guard(() => writeContract(client, request)) };
}
