import {
  type BaseWallet,
  hexlify,
  keccak256,
  randomBytes,
  Signature,
  type Signer,
  TypedDataEncoder,
  ZeroHash,
  zeroPadValue,
} from 'ethers';
import type { IHub } from '../../../typechain-types';

/** EIP-712 types the Hub verifies; the SDK exports the same. */
export const hubTypes = {
  Agreement: [
    { name: 'provider', type: 'address' },
    { name: 'id', type: 'bytes32' },
    { name: 'total', type: 'uint256' },
  ],
  ConsumerPromise: [
    { name: 'consumer', type: 'address' },
    { name: 'total', type: 'uint256' },
    { name: 'hashlock', type: 'bytes32' },
    { name: 'agreement', type: 'Agreement' },
  ],
  HubPromise: [
    { name: 'provider', type: 'address' },
    { name: 'total', type: 'uint256' },
    { name: 'hashlock', type: 'bytes32' },
  ],
  SettlementAuthorization: [
    { name: 'hubPromise', type: 'HubPromise' },
    { name: 'relayerFee', type: 'uint256' },
    { name: 'relayer', type: 'address' },
  ],
  InstantExit: [
    { name: 'consumer', type: 'address' },
    { name: 'amount', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
} as const;

export const registryTypes = {
  RegisterIdentity: [
    { name: 'identity', type: 'address' },
    { name: 'beneficiary', type: 'address' },
    { name: 'relayerFee', type: 'uint256' },
    { name: 'relayer', type: 'address' },
    { name: 'nonce', type: 'uint256' },
  ],
  SetBeneficiary: [
    { name: 'identity', type: 'address' },
    { name: 'beneficiary', type: 'address' },
    { name: 'nonce', type: 'uint256' },
  ],
} as const;

export interface Domain {
  name: string;
  version: string;
  chainId: bigint;
  verifyingContract: string;
}

export const hubDomain = (hub: string, chainId: bigint): Domain => ({
  name: 'Chit Hub',
  version: '1',
  chainId,
  verifyingContract: hub,
});

export const registryDomain = (registry: string, chainId: bigint): Domain => ({
  name: 'Chit Registry',
  version: '1',
  chainId,
  verifyingContract: registry,
});

type Fields = readonly { name: string; type: string }[];
const pick = (types: Record<string, Fields>, primary: string): Record<string, { name: string; type: string }[]> => {
  const out: Record<string, { name: string; type: string }[]> = { [primary]: [...types[primary]] };
  for (const field of types[primary]) {
    if (types[field.type]) out[field.type] = [...types[field.type]];
  }
  return out;
};

/** Signs `value` as `primary` under `domain`. */
export const signTyped = (
  signer: Signer | BaseWallet,
  domain: Domain,
  types: Record<string, Fields>,
  primary: string,
  value: Record<string, unknown>,
): Promise<string> => signer.signTypedData(domain, pick(types, primary), value);

/** An EIP-2098 compact signature `{ r, vs }` from a 65-byte signature. */
export const compact = (signature: string): { r: string; vs: string } => {
  const parsed = Signature.from(signature);
  return { r: parsed.r, vs: parsed.yParityAndS };
};

export const EMPTY_SIGNATURE = { r: ZeroHash, vs: ZeroHash } as const;

/** A fresh preimage R and its hashlock keccak256(R). */
export const newHashlock = (): { preimage: string; hashlock: string } => {
  const preimage = hexlify(randomBytes(32));
  return { preimage, hashlock: keccak256(preimage) };
};

export interface Agreement {
  provider: string;
  id: string;
  total: bigint;
}

export const agreementHash = (agreement: Agreement): string =>
  TypedDataEncoder.hashStruct('Agreement', pick(hubTypes, 'Agreement'), agreement);

export const agreementId = (n: number | bigint): string =>
  zeroPadValue(`0x${BigInt(n).toString(16).padStart(2, '0')}`, 32);

export interface ConsumerClaimInput {
  hub: string;
  chainId: bigint;
  consumer: Signer | BaseWallet;
  total: bigint;
  provider: string;
  agreement?: Partial<Agreement>;
  preimage?: string;
}

/** A consumer claim ready for `settleConsumer`, signed by `consumer`. */
export async function consumerClaim(input: ConsumerClaimInput): Promise<IHub.ConsumerClaimStruct> {
  const { preimage, hashlock } = input.preimage
    ? { preimage: input.preimage, hashlock: keccak256(input.preimage) }
    : newHashlock();
  const agreement: Agreement = {
    provider: input.provider,
    id: agreementId(1),
    total: input.total,
    ...input.agreement,
  };
  const consumer = await input.consumer.getAddress();
  const signature = await signTyped(input.consumer, hubDomain(input.hub, input.chainId), hubTypes, 'ConsumerPromise', {
    consumer,
    total: input.total,
    hashlock,
    agreement,
  });
  return {
    consumer,
    total: input.total,
    agreementHash: agreementHash(agreement),
    preimage,
    signature: compact(signature),
  };
}

export interface ProviderClaimInput {
  hub: string;
  chainId: bigint;
  operator: Signer | BaseWallet;
  provider: string;
  total: bigint;
  preimage?: string;
  relayerFee?: bigint;
  /** Signs the relayer-fee authorization; required when `relayerFee` > 0. */
  providerSigner?: Signer | BaseWallet;
  /** The account the authorization names, the only one that may submit the claim; required when `relayerFee` > 0. */
  relayer?: string;
}

/** A provider claim ready for `settleProvider`, signed by the operator (and the provider for a fee). */
export async function providerClaim(input: ProviderClaimInput): Promise<IHub.ProviderClaimStruct> {
  const { preimage, hashlock } = input.preimage
    ? { preimage: input.preimage, hashlock: keccak256(input.preimage) }
    : newHashlock();
  const domain = hubDomain(input.hub, input.chainId);
  const hubPromise = { provider: input.provider, total: input.total, hashlock };
  const hubSignature = await signTyped(input.operator, domain, hubTypes, 'HubPromise', hubPromise);
  const relayerFee = input.relayerFee ?? 0n;
  let providerSignature: { r: string; vs: string } = EMPTY_SIGNATURE;
  if (relayerFee > 0n) {
    if (!input.providerSigner) throw new Error('providerSigner is required for a relayer fee');
    if (!input.relayer) throw new Error('relayer is required for a relayer fee');
    providerSignature = compact(
      await signTyped(input.providerSigner, domain, hubTypes, 'SettlementAuthorization', {
        hubPromise,
        relayerFee,
        relayer: input.relayer,
      }),
    );
  }
  return {
    provider: input.provider,
    total: input.total,
    preimage,
    relayerFee,
    hubSignature: compact(hubSignature),
    providerSignature,
  };
}

/** The hub's co-signature of an instant exit. */
export const instantExitSignature = (
  operator: Signer | BaseWallet,
  hub: string,
  chainId: bigint,
  value: { consumer: string; amount: bigint; nonce: bigint; deadline: bigint },
): Promise<string> => signTyped(operator, hubDomain(hub, chainId), hubTypes, 'InstantExit', value);

/** An identity's signed registration, relayable only by the `relayer` it names. */
export const registerIdentitySignature = (
  identity: Signer | BaseWallet,
  registry: string,
  chainId: bigint,
  value: { identity: string; beneficiary: string; relayerFee: bigint; relayer: string; nonce: bigint },
): Promise<string> => signTyped(identity, registryDomain(registry, chainId), registryTypes, 'RegisterIdentity', value);

/** An identity's signed beneficiary change, relayable by anyone. */
export const setBeneficiarySignature = (
  identity: Signer | BaseWallet,
  registry: string,
  chainId: bigint,
  value: { identity: string; beneficiary: string; nonce: bigint },
): Promise<string> => signTyped(identity, registryDomain(registry, chainId), registryTypes, 'SetBeneficiary', value);
