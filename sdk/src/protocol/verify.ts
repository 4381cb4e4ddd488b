import { type Address, hexToBytes } from 'viem';
import {
  consumerPromiseDigestBytes,
  hubPromiseDigestBytes,
  instantExitRequestDigest,
  recoveryRequestDigest,
  settlementAuthorizationDigest,
} from './hash.js';
import type {
  SignedConsumerPromise,
  SignedHubPromise,
  SignedInstantExitRequest,
  SignedRecoveryRequest,
} from './types.js';
import { jsVerifier, type Verifier } from './verifier.js';

const same = (a: string | undefined, b: string): boolean => a !== undefined && a.toLowerCase() === b.toLowerCase();

/**
 * The address that signed a consumer promise, or `undefined` for a malformed or malleable signature.
 *
 * @example
 * const signer = recoverConsumerPromiseSigner(promise);
 */
export function recoverConsumerPromiseSigner(
  promise: SignedConsumerPromise,
  verifier: Verifier = jsVerifier,
): Address | undefined {
  return verifier.recover(consumerPromiseDigestBytes(promise), promise.signature);
}

/**
 * Whether `promise` was signed by its consumer, exactly as the Hub contract checks it.
 *
 * @example
 * if (!verifyConsumerPromise(promise, nativeVerifier())) throw new Error('bad promise');
 */
export function verifyConsumerPromise(promise: SignedConsumerPromise, verifier: Verifier = jsVerifier): boolean {
  return same(recoverConsumerPromiseSigner(promise, verifier), promise.consumer);
}

/**
 * Whether `promise` was signed by `operator`, the hub's operator.
 *
 * @example
 * if (!verifyHubPromise(hubPromise, operator)) throw new InvalidSignatureError(operator, undefined);
 */
export function verifyHubPromise(
  promise: SignedHubPromise,
  operator: Address,
  verifier: Verifier = jsVerifier,
): boolean {
  return same(verifier.recover(hubPromiseDigestBytes(promise), promise.signature), operator);
}

/**
 * Whether `signature` is the provider's consent to pay `relayerFee` to `relayer` when it settles `promise`.
 *
 * @example
 * verifySettlementAuthorization(hubPromise, 10n ** 16n, relayer, signature);
 */
export function verifySettlementAuthorization(
  promise: SignedHubPromise,
  relayerFee: bigint,
  relayer: Address,
  signature: `0x${string}`,
  verifier: Verifier = jsVerifier,
): boolean {
  return same(
    verifier.recover(hexToBytes(settlementAuthorizationDigest(promise, relayerFee, relayer)), signature),
    promise.provider,
  );
}

/**
 * Whether a recovery request was signed by the provider it names.
 *
 * @example
 * if (!verifyRecoveryRequest(request)) reply(401);
 */
export function verifyRecoveryRequest(request: SignedRecoveryRequest, verifier: Verifier = jsVerifier): boolean {
  return same(verifier.recover(hexToBytes(recoveryRequestDigest(request)), request.signature), request.provider);
}

/**
 * Whether an instant-exit request was signed by the consumer it names.
 *
 * @example
 * if (!verifyInstantExitRequest({ ...scope, ...body }, nativeVerifier())) reply(400);
 */
export function verifyInstantExitRequest(request: SignedInstantExitRequest, verifier: Verifier = jsVerifier): boolean {
  return same(verifier.recover(hexToBytes(instantExitRequestDigest(request)), request.signature), request.consumer);
}
