import type { Address, TypedDataDomain } from 'viem';

/**
 * The EIP-712 domain of a hub: every promise, authorization and exit is valid at one hub on one chain.
 *
 * @example
 * const domain = hubDomain({ hub: '0xd8FC…', chainId: 31337 });
 */
export function hubDomain(scope: { hub: Address; chainId: number }): TypedDataDomain {
  return { name: 'Chit Hub', version: '1', chainId: scope.chainId, verifyingContract: scope.hub };
}

/**
 * The EIP-712 domain of a Registry: identity registrations and beneficiary changes.
 *
 * @example
 * const domain = registryDomain({ registry: '0xe7f1…', chainId: 31337 });
 */
export function registryDomain(scope: { registry: Address; chainId: number }): TypedDataDomain {
  return { name: 'Chit Registry', version: '1', chainId: scope.chainId, verifyingContract: scope.registry };
}

const agreement = [
  { name: 'provider', type: 'address' },
  { name: 'id', type: 'bytes32' },
  { name: 'total', type: 'uint256' },
] as const;

const hubPromise = [
  { name: 'provider', type: 'address' },
  { name: 'total', type: 'uint256' },
  { name: 'hashlock', type: 'bytes32' },
] as const;

/**
 * EIP-712 types of the consumer's promise (primary type `ConsumerPromise`), as the Hub contract
 * verifies them.
 *
 * @example
 * await account.signTypedData({ domain, types: consumerPromiseTypes, primaryType: 'ConsumerPromise', message });
 */
export const consumerPromiseTypes = {
  ConsumerPromise: [
    { name: 'consumer', type: 'address' },
    { name: 'total', type: 'uint256' },
    { name: 'hashlock', type: 'bytes32' },
    { name: 'agreement', type: 'Agreement' },
  ],
  Agreement: agreement,
} as const;

/**
 * EIP-712 types of the `Agreement` struct alone, for its struct hash.
 *
 * @example
 * hashStruct({ types: agreementTypes, primaryType: 'Agreement', data: agreement });
 */
export const agreementTypes = { Agreement: agreement } as const;

/**
 * EIP-712 types of the hub's promise to a provider (primary type `HubPromise`).
 *
 * @example
 * await operator.signTypedData({ domain, types: hubPromiseTypes, primaryType: 'HubPromise', message });
 */
export const hubPromiseTypes = { HubPromise: hubPromise } as const;

/**
 * EIP-712 types of a provider's consent to a relayer fee paid to one named relayer (primary type
 * `SettlementAuthorization`). The Hub checks it with `relayer` = the transaction's sender.
 *
 * @example
 * await provider.signTypedData({ domain, types: settlementAuthorizationTypes, primaryType: 'SettlementAuthorization', message: { hubPromise, relayerFee, relayer } });
 */
export const settlementAuthorizationTypes = {
  SettlementAuthorization: [
    { name: 'hubPromise', type: 'HubPromise' },
    { name: 'relayerFee', type: 'uint256' },
    { name: 'relayer', type: 'address' },
  ],
  HubPromise: hubPromise,
} as const;

/**
 * EIP-712 types of the hub's co-signature of an instant exit (primary type `InstantExit`).
 *
 * @example
 * await operator.signTypedData({ domain, types: instantExitTypes, primaryType: 'InstantExit', message });
 */
export const instantExitTypes = {
  InstantExit: [
    { name: 'consumer', type: 'address' },
    { name: 'amount', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;

/**
 * EIP-712 types of a provider's recovery request to a hub (off-chain only; primary type `RecoveryRequest`).
 *
 * @example
 * await provider.signTypedData({ domain, types: recoveryRequestTypes, primaryType: 'RecoveryRequest', message });
 */
export const recoveryRequestTypes = {
  RecoveryRequest: [
    { name: 'provider', type: 'address' },
    { name: 'issuedAt', type: 'uint256' },
  ],
} as const;

/**
 * EIP-712 types of a consumer's request for the hub's instant-exit co-signature (off-chain only;
 * primary type `InstantExitRequest`).
 *
 * @example
 * await consumer.signTypedData({ domain, types: instantExitRequestTypes, primaryType: 'InstantExitRequest', message });
 */
export const instantExitRequestTypes = {
  InstantExitRequest: [
    { name: 'consumer', type: 'address' },
    { name: 'amount', type: 'uint256' },
    { name: 'issuedAt', type: 'uint256' },
  ],
} as const;

/**
 * EIP-712 types of a relayed identity registration (Registry; primary type `RegisterIdentity`). `relayer` is
 * the only account that may submit it and take `relayerFee`: the Registry checks it against `msg.sender`.
 *
 * @example
 * await identity.signTypedData({ domain: registryDomain(scope), types: registerIdentityTypes, primaryType: 'RegisterIdentity', message });
 */
export const registerIdentityTypes = {
  RegisterIdentity: [
    { name: 'identity', type: 'address' },
    { name: 'beneficiary', type: 'address' },
    { name: 'relayerFee', type: 'uint256' },
    { name: 'relayer', type: 'address' },
    { name: 'nonce', type: 'uint256' },
  ],
} as const;

/**
 * EIP-712 types of a relayed beneficiary change (Registry; primary type `SetBeneficiary`).
 *
 * @example
 * await identity.signTypedData({ domain: registryDomain(scope), types: setBeneficiaryTypes, primaryType: 'SetBeneficiary', message });
 */
export const setBeneficiaryTypes = {
  SetBeneficiary: [
    { name: 'identity', type: 'address' },
    { name: 'beneficiary', type: 'address' },
    { name: 'nonce', type: 'uint256' },
  ],
} as const;
