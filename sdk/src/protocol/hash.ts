import { type Address, bytesToHex, type Hex, hexToBytes, stringToBytes } from 'viem';
import { keccak256Bytes as keccak_256 } from './keccak.js';
import type { Agreement, ConsumerPromise, HubPromise, HubScope, InstantExitRequest, RecoveryRequest } from './types.js';

// Struct hashes are built by hand from 32-byte words rather than with viem's generic hashTypedData:
// the hub verifies thousands of promises a second and the generic encoder dominates that cost. The
// test vectors check both paths agree with each other and with the contracts.

const typeHash = (type: string): Uint8Array => keccak_256(stringToBytes(type));

const AGREEMENT = 'Agreement(address provider,bytes32 id,uint256 total)';
const HUB_PROMISE = 'HubPromise(address provider,uint256 total,bytes32 hashlock)';

/**
 * Type hashes of every Chit EIP-712 message, as the contracts define them.
 *
 * @example
 * const typeHash = bytesToHex(TYPEHASH.hubPromise);
 */
export const TYPEHASH = {
  domain: typeHash('EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)'),
  agreement: typeHash(AGREEMENT),
  consumerPromise: typeHash(
    `ConsumerPromise(address consumer,uint256 total,bytes32 hashlock,Agreement agreement)${AGREEMENT}`,
  ),
  hubPromise: typeHash(HUB_PROMISE),
  settlementAuthorization: typeHash(
    `SettlementAuthorization(HubPromise hubPromise,uint256 relayerFee,address relayer)${HUB_PROMISE}`,
  ),
  instantExit: typeHash('InstantExit(address consumer,uint256 amount,uint256 nonce,uint256 deadline)'),
  recoveryRequest: typeHash('RecoveryRequest(address provider,uint256 issuedAt)'),
  instantExitRequest: typeHash('InstantExitRequest(address consumer,uint256 amount,uint256 issuedAt)'),
} as const;

const MAX_UINT256 = (1n << 256n) - 1n;

function word(value: bigint | number): Uint8Array {
  const n = BigInt(value);
  if (n < 0n || n > MAX_UINT256) throw new RangeError(`${n} does not fit in uint256`);
  const out = new Uint8Array(32);
  let rest = n;
  for (let i = 31; i >= 0 && rest > 0n; i--) {
    out[i] = Number(rest & 0xffn);
    rest >>= 8n;
  }
  return out;
}

function addressWord(address: Address): Uint8Array {
  const bytes = hexToBytes(address);
  if (bytes.length !== 20) throw new RangeError(`${address} is not a 20-byte address`);
  const out = new Uint8Array(32);
  out.set(bytes, 12);
  return out;
}

function bytes32(value: Hex): Uint8Array {
  const bytes = hexToBytes(value);
  if (bytes.length !== 32) throw new RangeError(`${value} is not 32 bytes`);
  return bytes;
}

function hashWords(...words: Uint8Array[]): Uint8Array {
  const buffer = new Uint8Array(words.length * 32);
  words.forEach((w, i) => {
    buffer.set(w, i * 32);
  });
  return keccak_256(buffer);
}

const domainCache = new Map<string, Uint8Array>();

function domainSeparator(name: string, scope: { verifyingContract: Address; chainId: number }): Uint8Array {
  const key = `${name}:${scope.chainId}:${scope.verifyingContract.toLowerCase()}`;
  let separator = domainCache.get(key);
  if (!separator) {
    separator = hashWords(
      TYPEHASH.domain,
      keccak_256(stringToBytes(name)),
      keccak_256(stringToBytes('1')),
      word(scope.chainId),
      addressWord(scope.verifyingContract),
    );
    domainCache.set(key, separator);
  }
  return separator;
}

function digest(separator: Uint8Array, structHash: Uint8Array): Uint8Array {
  const buffer = new Uint8Array(66);
  buffer[0] = 0x19;
  buffer[1] = 0x01;
  buffer.set(separator, 2);
  buffer.set(structHash, 34);
  return keccak_256(buffer);
}

const hubSeparator = (scope: HubScope) =>
  domainSeparator('Chit Hub', { verifyingContract: scope.hub, chainId: scope.chainId });

/**
 * The EIP-712 domain separator of a hub, as `Hub.domainSeparator()` returns it.
 *
 * @example
 * const separator = hubDomainSeparator({ hub, chainId: 31337 });
 */
export function hubDomainSeparator(scope: HubScope): Hex {
  return bytesToHex(hubSeparator(scope));
}

/**
 * The struct hash of an agreement: what a consumer claim carries on-chain as `agreementHash`.
 *
 * @example
 * const agreementHash = hashAgreement({ provider, id, total: 10n ** 18n });
 */
export function hashAgreement(agreement: Agreement): Hex {
  return bytesToHex(agreementStructHash(agreement));
}

function agreementStructHash(agreement: Agreement): Uint8Array {
  return hashWords(TYPEHASH.agreement, addressWord(agreement.provider), bytes32(agreement.id), word(agreement.total));
}

/**
 * The EIP-712 digest a consumer signs for `promise`.
 *
 * @example
 * const digest = consumerPromiseDigest(promise);
 */
export function consumerPromiseDigest(promise: ConsumerPromise): Hex {
  return bytesToHex(consumerPromiseDigestBytes(promise));
}

/**
 * {@link consumerPromiseDigest} as bytes, for verifiers on the hot path.
 *
 * @example
 * const signer = nativeVerifier().recover(consumerPromiseDigestBytes(promise), promise.signature);
 */
export function consumerPromiseDigestBytes(promise: ConsumerPromise): Uint8Array {
  const structHash = hashWords(
    TYPEHASH.consumerPromise,
    addressWord(promise.consumer),
    word(promise.total),
    bytes32(promise.hashlock),
    agreementStructHash(promise.agreement),
  );
  return digest(hubSeparator(promise), structHash);
}

function hubPromiseStructHash(promise: Omit<HubPromise, keyof HubScope>): Uint8Array {
  return hashWords(TYPEHASH.hubPromise, addressWord(promise.provider), word(promise.total), bytes32(promise.hashlock));
}

/**
 * The EIP-712 digest the operator signs for a hub promise.
 *
 * @example
 * const digest = hubPromiseDigest(hubPromise);
 */
export function hubPromiseDigest(promise: HubPromise): Hex {
  return bytesToHex(hubPromiseDigestBytes(promise));
}

/**
 * {@link hubPromiseDigest} as bytes, for signers and verifiers on the hot path.
 *
 * @example
 * const signer = jsVerifier.recover(hubPromiseDigestBytes(hubPromise), hubPromise.signature);
 */
export function hubPromiseDigestBytes(promise: HubPromise): Uint8Array {
  return digest(hubSeparator(promise), hubPromiseStructHash(promise));
}

/**
 * The EIP-712 digest a provider signs to let `relayer`, and only it, take `relayerFee` when settling
 * `promise`.
 *
 * @example
 * const digest = settlementAuthorizationDigest(hubPromise, 10n ** 16n, relayer);
 */
export function settlementAuthorizationDigest(promise: HubPromise, relayerFee: bigint, relayer: Address): Hex {
  const structHash = hashWords(
    TYPEHASH.settlementAuthorization,
    hubPromiseStructHash(promise),
    word(relayerFee),
    addressWord(relayer),
  );
  return bytesToHex(digest(hubSeparator(promise), structHash));
}

/**
 * The EIP-712 digest the operator signs to let `consumer` exit at once.
 *
 * @example
 * const digest = instantExitDigest({ hub, chainId, consumer, amount, nonce: 0n, deadline });
 */
export function instantExitDigest(
  exit: HubScope & { consumer: Address; amount: bigint; nonce: bigint; deadline: bigint },
): Hex {
  const structHash = hashWords(
    TYPEHASH.instantExit,
    addressWord(exit.consumer),
    word(exit.amount),
    word(exit.nonce),
    word(exit.deadline),
  );
  return bytesToHex(digest(hubSeparator(exit), structHash));
}

/**
 * The EIP-712 digest a provider signs to recover its latest promise.
 *
 * @example
 * const digest = recoveryRequestDigest({ hub, chainId, provider, issuedAt: 1_700_000_000n });
 */
export function recoveryRequestDigest(request: RecoveryRequest): Hex {
  const structHash = hashWords(TYPEHASH.recoveryRequest, addressWord(request.provider), word(request.issuedAt));
  return bytesToHex(digest(hubSeparator(request), structHash));
}

/**
 * The EIP-712 digest a consumer signs to ask the hub to co-sign an instant exit.
 *
 * @example
 * const digest = instantExitRequestDigest({ hub, chainId, consumer, amount: 10n ** 18n, issuedAt: 1_700_000_000n });
 */
export function instantExitRequestDigest(request: InstantExitRequest): Hex {
  const structHash = hashWords(
    TYPEHASH.instantExitRequest,
    addressWord(request.consumer),
    word(request.amount),
    word(request.issuedAt),
  );
  return bytesToHex(digest(hubSeparator(request), structHash));
}

/**
 * keccak256 of a 32-byte preimage R: the hashlock of invoices and promises, as the contracts derive it.
 *
 * @example
 * const hashlock = hashlockOf(preimage);
 */
export function hashlockOf(preimage: Hex): Hex {
  const bytes = hexToBytes(preimage);
  if (bytes.length !== 32) throw new RangeError('a preimage R is 32 bytes');
  return bytesToHex(keccak_256(bytes));
}
