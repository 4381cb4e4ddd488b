import type { Hex } from 'viem';
import { simulateContract, writeContract } from 'viem/actions';
import type { ChitError } from '../errors/base.js';
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
 * Parameters of {@link settleProvider}.
 *
 * @example
 * const parameters: SettleProviderParameters = { promise, preimage };
 */
export interface SettleProviderParameters extends AccountParameter {
  /** The hub's signed promise to the provider; it names the hub that pays. */
  promise: SignedHubPromise;
  /** The R of the promise's hashlock. */
  preimage: Hex;
  /** When a relayer sends it: the fee the sender takes from the payout and the provider's
   * `signSettlementAuthorization` of it, naming the sending account as the relayer (the hub refuses it
   * from any other sender). Omit when the provider settles for itself. */
  relayer?: { fee: bigint; authorization: Hex } | undefined;
}

/**
 * What {@link settleProvider} returns.
 *
 * @example
 * const result: SettleProviderReturnType = await settleProvider(providerClient, { promise, preimage });
 */
export interface SettleProviderReturnType extends WriteReturnType {
  /** Tokens paid to the provider's beneficiary (after the hub fee and the relayer fee), as simulated
   * just before sending; the `ProviderSettled` event is authoritative. */
  payout: bigint;
}

/**
 * What {@link settleProvider} throws: `HubProviderPromiseStale`, `HubInvalidSignature`, `HubRelayerFeeTooHigh`,
 * `HubInsufficientFunds` among the reverts.
 *
 * @example
 * try {
 *   await settleProvider(providerClient, { promise, preimage });
 * } catch (e) {
 *   const error = e as SettleProviderErrorType;
 *   if (error instanceof ContractRevertError && error.is('HubProviderPromiseStale')) {
 *     console.error(error.shortMessage);
 *   }
 * }
 */
export type SettleProviderErrorType = ContractRevertError | ContractCallError | InvalidSignatureError | ChitError;

/**
 * Settles one hub promise: the hub pays `total - settled`, less its fee and any relayer fee, to the
 * provider's beneficiary (from its free funds, then from its stake, which punishes it). Anyone may
 * send it; with `relayer`, the sender is paid the fee the provider authorized to it, and only to it.
 *
 * @throws {InvalidSignatureError} when `preimage` does not open the promise's hashlock (nothing is sent).
 * @throws {ContractRevertError} `HubProviderPromiseStale` when it or a later promise was settled;
 * `HubInvalidSignature` (also when the authorization names another relayer than the sender);
 * `HubRelayerFeeTooHigh`; `HubInsufficientFunds` when even the stake cannot pay.
 * @example
 * // the provider itself
 * const { hash, payout } = await settleProvider(providerClient, { promise, preimage });
 * // a relayer, paid 0.01 tokens with the provider's consent
 * const authorization = await signSettlementAuthorization(providerAccount, promise, 10n ** 16n, relayerAccount.address);
 * await settleProvider(relayerClient, { promise, preimage, relayer: { fee: 10n ** 16n, authorization } });
 */
export async function settleProvider(
  client: ChitClient,
  parameters: SettleProviderParameters,
): Promise<SettleProviderReturnType> {
  const account = requireAccount(client, parameters.account);
  const { promise } = parameters;
  requireScope(client, promise.hub, promise, 'hub promise');
  const claim = toProviderClaim(promise, parameters.preimage, parameters.relayer);
  const { request, result } = await guard(() =>
    simulateContract(client, {
      account,
      address: promise.hub,
      abi: hubAbi,
      functionName: 'settleProvider',
      args: [claim],
    }),
  );
  return { hash: await guard(() => writeContract(client, request)), payout: result };
}
