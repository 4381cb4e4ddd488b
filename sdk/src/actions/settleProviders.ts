import type { Address, Hex } from 'viem';
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
import type { AccountParameter, ChitClient, WriteReturnType } from './types.js';

/**
 * Parameters of {@link settleProviders}.
 *
 * @example
 * const parameters: SettleProvidersParameters = { hub, claims: [{ promise, preimage }] };
 */
export interface SettleProvidersParameters extends AccountParameter {
  /** The hub that pays; every promise must be for it. */
  hub: Address;
  /** The hub promises, each with its R and, when the sender is a relayer, the fee the provider authorized. */
  claims: readonly {
    promise: SignedHubPromise;
    preimage: Hex;
    relayer?: { fee: bigint; authorization: Hex } | undefined;
  }[];
}

/**
 * What {@link settleProviders} returns.
 *
 * @example
 * const result: SettleProvidersReturnType = await settleProviders(relayerClient, {
 *   hub,
 *   claims: [{ promise, preimage }],
 * });
 */
export interface SettleProvidersReturnType extends WriteReturnType {
  /** Tokens paid to beneficiaries in total, as simulated just before sending. */
  payout: bigint;
}

/**
 * What {@link settleProviders} throws: `HubInvalidSignature`, `HubRelayerFeeTooHigh`, `HubInsufficientFunds` among
 * the reverts (stale claims are skipped); `HUB_MISMATCH` and {@link InvalidSignatureError} before sending.
 *
 * @example
 * try {
 *   await settleProviders(relayerClient, { hub, claims: [{ promise, preimage }] });
 * } catch (e) {
 *   const error = e as SettleProvidersErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubInsufficientFunds')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type SettleProvidersErrorType = ContractRevertError | ContractCallError | InvalidSignatureError | ChitError;

/**
 * Settles many hub promises of one hub in one transaction, paying each provider's beneficiary and the
 * sender the relayer fees. Stale claims are skipped by the contract; an invalid signature or
 * preimage reverts the batch.
 *
 * @throws {ChitError} `HUB_MISMATCH` / `CHAIN_MISMATCH` for a promise of another hub or chain, and
 * `NOTHING_TO_SETTLE` for an empty list (nothing is sent).
 * @throws {ContractRevertError} `HubInvalidSignature`; `HubRelayerFeeTooHigh`; `HubInsufficientFunds`.
 * @example
 * const { hash, payout } = await settleProviders(relayerClient, {
 *   hub,
 *   claims: queued.map(({ promise, preimage, fee, authorization }) => ({
 *     promise,
 *     preimage,
 *     relayer: { fee, authorization },
 *   })),
 * });
 */
export async function settleProviders(
  client: ChitClient,
  parameters: SettleProvidersParameters,
): Promise<SettleProvidersReturnType> {
  const account = requireAccount(client, parameters.account);
  const { hub } = parameters;
  if (parameters.claims.length === 0) throw new ChitError('NOTHING_TO_SETTLE', 'There are no claims to settle');
  const claims = parameters.claims.map(({ promise, preimage, relayer }) => {
    requireScope(client, hub, promise, 'hub promise');
    return toProviderClaim(promise, preimage, relayer);
  });
  const { request, result } = await guard(() =>
    simulateContract(client, { account, address: hub, abi: hubAbi, functionName: 'settleProviders', args: [claims] }),
  );
  return { hash: await guard(() => writeContract(client, request)), payout: result };
}
