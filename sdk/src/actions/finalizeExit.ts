import type { Address } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { hubAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link finalizeExit}.
 *
 * @example
 * const parameters: FinalizeExitParameters = { hub };
 */
export interface FinalizeExitParameters extends AccountParameter {
  /** The hub holding the channel. */
  hub: Address;
}

/**
 * What {@link finalizeExit} returns.
 *
 * @example
 * const result: FinalizeExitReturnType = await finalizeExit(consumerClient, { hub });
 */
export interface FinalizeExitReturnType extends WriteReturnType {
  /** Tokens paid to the consumer, as simulated just before sending: the amount asked, or what is left
   * if the hub settled promises during the delay. The `ExitFinalized` event is authoritative. */
  amount: bigint;
}

/**
 * What {@link finalizeExit} throws: `HubNoExitPending`, `HubExitNotReady` among the reverts.
 *
 * @example
 * try {
 *   await finalizeExit(consumerClient, { hub });
 * } catch (e) {
 *   const error = e as FinalizeExitErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubExitNotReady')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type FinalizeExitErrorType = ContractRevertError | ContractCallError;

/**
 * Completes the consumer's exit once the exit delay has passed and pays it out.
 *
 * @throws {ContractRevertError} `HubExitNotReady` before the exit's `readyAt`; `HubNoExitPending`
 * without a request.
 * @example
 * const { hash, amount } = await finalizeExit(walletClient, { hub });
 * await waitForTransaction(walletClient, { hash });
 * console.log(`got ${formatEther(amount)} back`);
 */
export async function finalizeExit(
  client: ChitClient,
  parameters: FinalizeExitParameters,
): Promise<FinalizeExitReturnType> {
  const account = requireAccount(client, parameters.account);
  const { request, result } = await guard(() =>
    simulateContract(client, { account, address: parameters.hub, abi: hubAbi, functionName: 'finalizeExit' }),
  );
  return { hash: await guard(() => writeContract(client, request)), amount: result };
}
