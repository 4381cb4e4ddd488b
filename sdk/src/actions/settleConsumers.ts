import type { Address, Hex } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import { ChitError } from '../errors/base.js';
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
 * Parameters of {@link settleConsumers}.
 *
 * @example
 * const parameters: SettleConsumersParameters = { hub, claims: [{ promise, preimage }] };
 */
export interface SettleConsumersParameters extends AccountParameter {
  /** The hub that settles them; every promise must be for it. */
  hub: Address;
  /** The promises with the R of each hashlock. */
  claims: readonly { promise: SignedConsumerPromise; preimage: Hex }[];
}

/**
 * What {@link settleConsumers} returns.
 *
 * @example
 * const result: SettleConsumersReturnType = await settleConsumers(walletClient, {
 *   hub,
 *   claims: [{ promise, preimage }],
 * });
 */
export interface SettleConsumersReturnType extends WriteReturnType {
  /** Tokens moved to the hub's free funds in total, as simulated just before sending. */
  amount: bigint;
}

/**
 * What {@link settleConsumers} throws: `HubInvalidSignature` among the reverts (stale claims and empty channels are
 * skipped, not reverted); `HUB_MISMATCH` and {@link InvalidSignatureError} before sending.
 *
 * @example
 * try {
 *   await settleConsumers(walletClient, { hub, claims: [{ promise, preimage }] });
 * } catch (e) {
 *   const error = e as SettleConsumersErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubInvalidSignature')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type SettleConsumersErrorType = ContractRevertError | ContractCallError | InvalidSignatureError | ChitError;

/**
 * Settles many consumer promises at one hub in one transaction. Claims with nothing left to settle
 * (stale, or an empty channel) are skipped by the contract, so a front-run cannot make the batch
 * revert; one bad signature or preimage reverts it all.
 *
 * @throws {ChitError} `HUB_MISMATCH` / `CHAIN_MISMATCH` for a promise of another hub or chain, and
 * `NOTHING_TO_SETTLE` for an empty list (nothing is sent).
 * @throws {ContractRevertError} `HubInvalidSignature`.
 * @example
 * const { hash, amount } = await settleConsumers(walletClient, {
 *   hub,
 *   claims: pending.map(({ promise, preimage }) => ({ promise, preimage })),
 * });
 */
export async function settleConsumers(
  client: ChitClient,
  parameters: SettleConsumersParameters,
): Promise<SettleConsumersReturnType> {
  const account = requireAccount(client, parameters.account);
  const { hub } = parameters;
  if (parameters.claims.length === 0) throw new ChitError('NOTHING_TO_SETTLE', 'There are no claims to settle');
  const claims = parameters.claims.map(({ promise, preimage }) => {
    requireScope(client, hub, promise, 'consumer promise');
    return toConsumerClaim(promise, preimage);
  });
  const { request, result } = await guard(() =>
    simulateContract(client, { account, address: hub, abi: hubAbi, functionName: 'settleConsumers', args: [claims] }),
  );
  return { hash: await guard(() => writeContract(client, request)), amount: result };
}
