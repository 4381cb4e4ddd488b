import type { Account, Address, Chain, Hex, LocalAccount, Transport, WalletClient } from 'viem';
import { signTypedData } from 'viem/actions';
import {
  consumerPromiseTypes,
  hubDomain,
  hubPromiseTypes,
  instantExitRequestTypes,
  instantExitTypes,
  recoveryRequestTypes,
  settlementAuthorizationTypes,
} from './eip712.js';
import { consumerPromiseDigest } from './hash.js';
import type {
  ConsumerPromise,
  HubPromise,
  HubScope,
  InstantExitRequest,
  RecoveryRequest,
  SignedConsumerPromise,
  SignedHubPromise,
  SignedInstantExitRequest,
  SignedRecoveryRequest,
} from './types.js';

/**
 * A signer that also signs a 32-byte digest itself (`nativeAccount` of `@chit/sdk/node`): for it,
 * {@link signConsumerPromise} computes the EIP-712 digest (natively once `enableNativeHashing` ran)
 * instead of handing the typed data to viem.
 */
export interface DigestSigner {
  signDigest(digest: Hex): Promise<Hex>;
  /**
   * True when every signature comes from the private key of the account's own address by construction
   * (a local key, as `nativeAccount`): the consumer ledger then does not recover each promise it signs
   * to check its signer. Leave it unset for a wallet, which may sign with another account than asked.
   */
  readonly signsAsItsAddress?: boolean;
}

/** Anything that signs EIP-712 typed data: a viem LocalAccount, or a wallet client bound to an account. */
export type TypedDataSigner = Pick<LocalAccount, 'signTypedData'> | WalletClient<Transport, Chain | undefined, Account>;

type TypedDataArgs = Parameters<LocalAccount['signTypedData']>[0];

/** Signs with a local account directly, or through a wallet client (browser or JSON-RPC wallets). */
async function sign(signer: TypedDataSigner, args: TypedDataArgs): Promise<Hex> {
  if ('account' in signer && 'request' in signer) {
    return withV27(
      await signTypedData(signer, { ...args, account: signer.account } as Parameters<typeof signTypedData>[1]),
    );
  }
  return withV27(await (signer as Pick<LocalAccount, 'signTypedData'>).signTypedData(args));
}

function isDigestSigner(signer: TypedDataSigner): signer is TypedDataSigner & DigestSigner {
  return typeof (signer as Partial<DigestSigner>).signDigest === 'function';
}

/** Some wallets answer v = 0 or 1; the wire and the contracts take 27 or 28 only. */
function withV27(signature: Hex): Hex {
  const v = signature.slice(130);
  if (signature.length !== 132 || (v !== '00' && v !== '01')) return signature;
  return `0x${signature.slice(2, 130)}${v === '00' ? '1b' : '1c'}`;
}

/**
 * Signs a consumer promise with the consumer's key. The signer must be `promise.consumer`.
 *
 * @example
 * const signed = await signConsumerPromise(consumerAccount, { hub, chainId, consumer, total, hashlock, agreement });
 */
export async function signConsumerPromise(
  signer: TypedDataSigner,
  promise: ConsumerPromise,
): Promise<SignedConsumerPromise> {
  if (isDigestSigner(signer)) return { ...promise, signature: await signer.signDigest(consumerPromiseDigest(promise)) };
  const signature = await sign(signer, {
    domain: hubDomain(promise),
    types: consumerPromiseTypes,
    primaryType: 'ConsumerPromise',
    message: {
      consumer: promise.consumer,
      total: promise.total,
      hashlock: promise.hashlock,
      agreement: promise.agreement,
    },
  });
  return { ...promise, signature };
}

/**
 * Signs a hub promise with the operator's key.
 *
 * @example
 * const signed = await signHubPromise(operatorAccount, { hub, chainId, provider, total, hashlock });
 */
export async function signHubPromise(signer: TypedDataSigner, promise: HubPromise): Promise<SignedHubPromise> {
  const signature = await sign(signer, {
    domain: hubDomain(promise),
    types: hubPromiseTypes,
    primaryType: 'HubPromise',
    message: { provider: promise.provider, total: promise.total, hashlock: promise.hashlock },
  });
  return { ...promise, signature };
}

/**
 * Signs the provider's consent to pay `relayerFee` to `relayer` for settling `promise`. The Hub accepts
 * it only in a transaction sent by `relayer`, so no one else can submit the claim and take the fee.
 *
 * @example
 * const quote = await hubClient.settlementQuote(providerAccount.address);
 * const authorization = await signSettlementAuthorization(providerAccount, hubPromise, quote.relayerFee, quote.relayer);
 */
export function signSettlementAuthorization(
  signer: TypedDataSigner,
  promise: HubPromise,
  relayerFee: bigint,
  relayer: Address,
): Promise<Hex> {
  return sign(signer, {
    domain: hubDomain(promise),
    types: settlementAuthorizationTypes,
    primaryType: 'SettlementAuthorization',
    message: {
      hubPromise: { provider: promise.provider, total: promise.total, hashlock: promise.hashlock },
      relayerFee,
      relayer,
    },
  });
}

/**
 * Signs the hub's co-signature of a consumer's instant exit (operator key).
 *
 * @example
 * const signature = await signInstantExit(operatorAccount, { hub, chainId, consumer, amount, nonce, deadline });
 */
export function signInstantExit(
  signer: TypedDataSigner,
  exit: HubScope & { consumer: Address; amount: bigint; nonce: bigint; deadline: bigint },
): Promise<Hex> {
  return sign(signer, {
    domain: hubDomain(exit),
    types: instantExitTypes,
    primaryType: 'InstantExit',
    message: { consumer: exit.consumer, amount: exit.amount, nonce: exit.nonce, deadline: exit.deadline },
  });
}

/**
 * Signs a provider's recovery request with its identity key.
 *
 * @example
 * const request = await signRecoveryRequest(providerAccount, { hub, chainId, provider, issuedAt: BigInt(Math.floor(Date.now() / 1000)) });
 */
export async function signRecoveryRequest(
  signer: TypedDataSigner,
  request: RecoveryRequest,
): Promise<SignedRecoveryRequest> {
  const signature = await sign(signer, {
    domain: hubDomain(request),
    types: recoveryRequestTypes,
    primaryType: 'RecoveryRequest',
    message: { provider: request.provider, issuedAt: request.issuedAt },
  });
  return { ...request, signature };
}

/**
 * Signs a consumer's request for the hub's instant-exit co-signature with the consumer's key. The
 * signer must be `request.consumer`.
 *
 * @example
 * const request = await signInstantExitRequest(consumerAccount, { hub, chainId, consumer, amount: 10n ** 18n, issuedAt: BigInt(Math.floor(Date.now() / 1000)) });
 */
export async function signInstantExitRequest(
  signer: TypedDataSigner,
  request: InstantExitRequest,
): Promise<SignedInstantExitRequest> {
  const signature = await sign(signer, {
    domain: hubDomain(request),
    types: instantExitRequestTypes,
    primaryType: 'InstantExitRequest',
    message: { consumer: request.consumer, amount: request.amount, issuedAt: request.issuedAt },
  });
  return { ...request, signature };
}
