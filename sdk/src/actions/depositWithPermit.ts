import { parseSignature } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import { hubAbi } from '../generated/abis.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { SignedDepositPermit } from './signDepositPermit.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link depositWithPermit}.
 *
 * @example
 * const parameters: DepositWithPermitParameters = { permit };
 */
export interface DepositWithPermitParameters extends AccountParameter {
  /** The consumer's signed permit ({@link signDepositPermit}). */
  permit: SignedDepositPermit;
}

/**
 * What {@link depositWithPermit} returns.
 *
 * @example
 * const result: DepositWithPermitReturnType = await depositWithPermit(relayerClient, { permit });
 */
export type DepositWithPermitReturnType = WriteReturnType;

/**
 * What {@link depositWithPermit} throws: `HubPermitFailed` (a bad or expired permit), `ERC20InsufficientBalance`,
 * `HubNotAcceptingDeposits` among the reverts.
 *
 * @example
 * try {
 *   await depositWithPermit(relayerClient, { permit });
 * } catch (e) {
 *   const error = e as DepositWithPermitErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubPermitFailed')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type DepositWithPermitErrorType = ContractRevertError | ContractCallError;

/**
 * Deposits with the consumer's permit in one transaction: the permit's amount moves from the consumer
 * into its own channel. Any account may send it (the consumer itself, or a relayer for a consumer
 * that holds no gas token); the sender pays the gas.
 *
 * @throws {ContractRevertError} `HubPermitFailed` when the permit is not valid (wrong signer, used
 * nonce, past deadline) and the hub has no allowance to fall back on; `ERC20InsufficientBalance`.
 * @example
 * const permit = await signDepositPermit(consumerClient, { hub, amount: parseEther('10') });
 * const { hash } = await depositWithPermit(relayerClient, { permit });
 * await waitForTransaction(relayerClient, { hash });
 */
export async function depositWithPermit(
  client: ChitClient,
  parameters: DepositWithPermitParameters,
): Promise<DepositWithPermitReturnType> {
  const account = requireAccount(client, parameters.account);
  const { hub, consumer, amount, deadline, signature } = parameters.permit;
  const { r, s, v, yParity } = parseSignature(signature);
  const { request } = await guard(() =>
    simulateContract(client, {
      account,
      address: hub,
      abi: hubAbi,
      functionName: 'depositWithPermit',
      args: [consumer, amount, deadline, v === undefined ? 27 + yParity : Number(v), r, s],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)) };
}
