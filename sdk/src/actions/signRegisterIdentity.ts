import type { Address, Hex } from 'viem';
import { getChainId, readContract, signTypedData } from 'viem/actions';
import type { ChitError } from '../errors/base.js';
import type { ContractCallError } from '../errors/contract.js';
import { registryAbi } from '../generated/abis.js';
import { registerIdentityTypes, registryDomain } from '../protocol/eip712.js';
import { guard } from './internal/guard.js';
import { requireAccount } from './internal/requireAccount.js';
import type { AccountParameter, ChitClient } from './types.js';

const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000';

/**
 * Parameters of {@link signRegisterIdentity}.
 *
 * @example
 * const parameters: SignRegisterIdentityParameters = { registry, beneficiary, relayer };
 */
export interface SignRegisterIdentityParameters extends AccountParameter {
  /** The Registry. */
  registry: Address;
  /** Where the identity's earnings go; the identity itself when omitted. */
  beneficiary?: Address | undefined;
  /** Tokens the relayer takes from the identity (which must have approved the Registry for them); zero
   * when omitted. */
  relayerFee?: bigint | undefined;
  /** The only account that may submit the registration and take the fee: the Registry refuses it from
   * anyone else (`RegistryInvalidSignature`), so no one can copy it from the mempool and go first. For a
   * hub's relayer, its relay quote's `relayer`. */
  relayer: Address;
  /** The identity's Registry nonce; read from the Registry when omitted. */
  nonce?: bigint | undefined;
}

/**
 * A registration signed by its identity, ready for its relayer to submit.
 *
 * @example
 * const registration: SignedRegisterIdentity = await signRegisterIdentity(providerClient, { registry, relayer });
 * await registerIdentityRelayed(relayerClient, { registration });
 */
export interface SignedRegisterIdentity {
  registry: Address;
  chainId: number;
  identity: Address;
  /** The zero address when the identity is paid itself. */
  beneficiary: Address;
  relayerFee: bigint;
  /** The account that must submit it. */
  relayer: Address;
  nonce: bigint;
  signature: Hex;
}

/**
 * What {@link signRegisterIdentity} returns.
 *
 * @example
 * const result: SignRegisterIdentityReturnType = await signRegisterIdentity(providerClient, { registry, beneficiary, relayer });
 */
export type SignRegisterIdentityReturnType = SignedRegisterIdentity;

/**
 * What {@link signRegisterIdentity} throws.
 *
 * @example
 * try {
 *   await signRegisterIdentity(providerClient, { registry, beneficiary, relayer });
 * } catch (e) {
 *   console.error((e as SignRegisterIdentityErrorType).shortMessage);
 * }
 */
export type SignRegisterIdentityErrorType = ChitError | ContractCallError;

/**
 * Signs the identity's EIP-712 `RegisterIdentity` for the Registry, so that `relayer` can register it
 * with {@link registerIdentityRelayed}: the identity needs no gas money. Sends nothing. The signature
 * names the relayer, so only that account can submit it and take the fee.
 *
 * @example
 * const { relayerFee, relayer } = await hub.relayQuote('identity');
 * const registration = await signRegisterIdentity(identityClient, { registry, beneficiary, relayerFee, relayer });
 * await registerIdentityRelayed(relayerClient, { registration }); // on the relayer's side
 */
export async function signRegisterIdentity(
  client: ChitClient,
  parameters: SignRegisterIdentityParameters,
): Promise<SignRegisterIdentityReturnType> {
  const account = requireAccount(client, parameters.account);
  const { registry } = parameters;
  const [chainId, nonce] = await guard(() =>
    Promise.all([
      client.chain?.id ?? getChainId(client),
      parameters.nonce ??
        readContract(client, { address: registry, abi: registryAbi, functionName: 'nonces', args: [account.address] }),
    ]),
  );
  const message = {
    identity: account.address,
    beneficiary: parameters.beneficiary ?? ZERO_ADDRESS,
    relayerFee: parameters.relayerFee ?? 0n,
    relayer: parameters.relayer,
    nonce,
  };
  const signature = await guard(() =>
    signTypedData(client, {
      account,
      domain: registryDomain({ registry, chainId }),
      types: registerIdentityTypes,
      primaryType: 'RegisterIdentity',
      message,
    }),
  );
  return { registry, chainId, ...message, signature };
}
