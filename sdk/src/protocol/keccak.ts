import { keccak_256 } from '@noble/hashes/sha3';

type Keccak = (data: Uint8Array) => Uint8Array;

let implementation: Keccak = keccak_256;

/**
 * keccak256 of `data` as bytes. Pure JavaScript (noble-hashes) unless `enableNativeHashing()` from
 * `@chit/sdk/node` switched it to the native implementation, about 10x faster.
 *
 * @example
 * const hash = keccak256Bytes(new Uint8Array(32));
 */
export function keccak256Bytes(data: Uint8Array): Uint8Array {
  return implementation(data);
}

/**
 * Replaces the keccak256 implementation after checking it against the JavaScript one; returns
 * whether it was accepted. Used by `enableNativeHashing()`.
 *
 * @example
 * setKeccakImplementation((data) => nativeKeccak(data));
 */
export function setKeccakImplementation(candidate: Keccak): boolean {
  const probe = new Uint8Array(200).map((_, i) => i);
  const expected = keccak_256(probe);
  const actual = candidate(probe);
  if (actual.length !== 32 || !actual.every((byte, i) => byte === expected[i])) return false;
  implementation = candidate;
  return true;
}
