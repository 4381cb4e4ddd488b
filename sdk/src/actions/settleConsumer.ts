import type { Hex } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ChitError } from '../errors/base.js';
import type { ContractCallError, ContractRevertError } from '../errors/contract.js';
import type { InvalidSignatureError } from '../errors/protocol.js';
import { hubAbi } from '../generated/abis.js';
import { toConsumerClaim } from '../protocol/claims.js';
import type { SignedConsumerPromise } from '../protocol/types.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import { requireScope } from './internal/requireScope.js';
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link settleConsumer}.
 *
 * @example
 * const parameters: SettleConsumerParameters = { promise, preimage };
 */
export interface SettleConsumerParameters extends AccountParameter {
  /** The consumer's signed promise; it names the hub that settles it. */
  promise: SignedConsumerPromise;
  /** The R of the promise's hashlock. */
  preimage: Hex;
}

/**
 * What {@link settleConsumer} returns.
 *
 * @example
 * const result: SettleConsumerReturnType = await settleConsumer(walletClient, { promise, preimage });
 */
export interface SettleConsumerReturnType extends WriteReturnType {
  /** Tokens moved from the consumer's balance to the hub's free funds, as simulated just before
   * sending; the `ConsumerSettled` event is authoritative. */
  amount: bigint;
}

/**
 * What {@link settleConsumer} throws: `HubConsumerPromiseStale`, `HubConsumerBalanceEmpty`, `HubInvalidSignature`
 * among the reverts; {@link InvalidSignatureError} for a preimage that does not open the hashlock.
 *
 * @example
 * try {
 *   await settleConsumer(walletClient, { promise, preimage });
 * } catch (e) {
 *   const error = e as SettleConsumerErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubConsumerPromiseStale')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type SettleConsumerErrorType = ContractRevertError | ContractCallError | InvalidSignatureError | ChitError;

/**
 * Settles one consumer promise at its hub: `total - settled` (or what the channel holds) moves from
 * the consumer's balance to the hub's free funds, and R is revealed on-chain. Anyone may send it.
 *
 * @throws {InvalidSignatureError} when `preimage` does not open the promise's hashlock (nothing is sent).
 * @throws {ContractRevertError} `HubConsumerPromiseStale` when it or a later promise was settled;
 * `HubConsumerBalanceEmpty`; `HubInvalidSignature`.
 * @example
 * const { hash, amount } = await settleConsumer(walletClient, { promise, preimage });
 * await waitForTransaction(walletClient, { hash });
 */
export async function settleConsumer(
  client: ChitClient,
  parameters: SettleConsumerParameters,
): Promise<SettleConsumerReturnType> {
  const account = requireAccount(client, parameters.account);
  const { promise } = parameters;
  requireScope(client, promise.hub, promise, 'consumer promise');
  const claim = toConsumerClaim(promise, parameters.preimage);
  const { request, result } = await guard(() =>
    simulateContract(client, {
      account,
      address: promise.hub,
      abi: hubAbi,
      functionName: 'settleConsumer',
      args: [claim],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)), amount: result };
}
