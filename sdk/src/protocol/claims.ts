import { type Hex, parseSignature, signatureToCompactSignature } from 'viem';
import { PreimageMismatchError } from '../errors/protocol.js';
import { hashAgreement, hashlockOf } from './hash.js';
import type { SignedConsumerPromise, SignedHubPromise } from './types.js';

/** An EIP-2098 compact signature as the contracts take it. */
export interface CompactSignature {
  r: Hex;
  vs: Hex;
}

/** A consumer promise as `Hub.settleConsumer` takes it. */
export interface ConsumerClaim {
  consumer: Hex;
  total: bigint;
  agreementHash: Hex;
  preimage: Hex;
  signature: CompactSignature;
}

/** A hub promise as `Hub.settleProvider` takes it. */
export interface ProviderClaim {
  provider: Hex;
  total: bigint;
  preimage: Hex;
  relayerFee: bigint;
  hubSignature: CompactSignature;
  providerSignature: CompactSignature;
}

const ZERO = `0x${'00'.repeat(32)}` as Hex;

/**
 * A 65-byte signature in the EIP-2098 compact form `{ r, vs }` the contracts take.
 *
 * @example
 * const { r, vs } = toCompactSignature(promise.signature);
 */
export function toCompactSignature(signature: Hex): CompactSignature {
  const compact = signatureToCompactSignature(parseSignature(signature));
  return { r: compact.r, vs: compact.yParityAndS };
}

function requirePreimage(hashlock: Hex, preimage: Hex): void {
  if (hashlockOf(preimage) !== hashlock.toLowerCase()) throw new PreimageMismatchError(hashlock);
}

/**
 * The on-chain claim for a signed consumer promise and the R of its hashlock.
 *
 * @throws {PreimageMismatchError} when `preimage` is not the promise's R (the contract would reject it).
 * @example
 * await hub.write.settleConsumer([toConsumerClaim(promise, preimage)]);
 */
export function toConsumerClaim(promise: SignedConsumerPromise, preimage: Hex): ConsumerClaim {
  requirePreimage(promise.hashlock, preimage);
  return {
    consumer: promise.consumer,
    total: promise.total,
    agreementHash: hashAgreement(promise.agreement),
    preimage,
    signature: toCompactSignature(promise.signature),
  };
}

/**
 * The on-chain claim for a signed hub promise and its R, with an optional relayer fee and the
 * provider's {@link signSettlementAuthorization} for it, which must name the account that submits the claim.
 *
 * @example
 * await hub.write.settleProvider([toProviderClaim(hubPromise, preimage)]);
 */
export function toProviderClaim(
  promise: SignedHubPromise,
  preimage: Hex,
  relayer?: { fee: bigint; authorization: Hex },
): ProviderClaim {
  requirePreimage(promise.hashlock, preimage);
  return {
    provider: promise.provider,
    total: promise.total,
    preimage,
    relayerFee: relayer?.fee ?? 0n,
    hubSignature: toCompactSignature(promise.signature),
    providerSignature: relayer ? toCompactSignature(relayer.authorization) : { r: ZERO, vs: ZERO },
  };
}
