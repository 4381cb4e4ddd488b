import { secp256k1 } from '@noble/curves/secp256k1';
import { type Address, bytesToHex, type Hex, hexToBytes } from 'viem';
import { keccak256Bytes as keccak_256 } from './keccak.js';

/** Recovers the signer of a digest. Implementations: {@link jsVerifier} here, a native one in `@chit/sdk/node`. */
export interface Verifier {
  /** `native` (libsecp256k1) or `js` (pure JavaScript). */
  readonly kind: 'native' | 'js';
  /**
   * The lower-case address that signed the 32-byte `digest`, or `undefined` for a malformed or
   * malleable (high s) signature — the same signatures the contracts reject.
   */
  recover(digest: Uint8Array, signature: Hex | Uint8Array): Address | undefined;
}

const HALF_N = secp256k1.CURVE.n >> 1n;

/**
 * Splits a 65-byte (r, s, v) or 64-byte EIP-2098 signature into r||s (64 bytes) and the recovery bit,
 * rejecting high s like the contracts do. Shared by every verifier.
 *
 * @example
 * const parts = splitSignature(signature); // undefined when malformed
 */
export function splitSignature(signature: Hex | Uint8Array): { compact: Uint8Array; recovery: 0 | 1 } | undefined {
  const bytes = typeof signature === 'string' ? safeBytes(signature) : signature;
  if (!bytes) return undefined;
  let compact: Uint8Array;
  let recovery: number;
  if (bytes.length === 65) {
    const v = bytes[64]!;
    recovery = v >= 27 ? v - 27 : v;
    compact = bytes.subarray(0, 64);
  } else if (bytes.length === 64) {
    recovery = bytes[32]! >> 7;
    compact = new Uint8Array(bytes);
    compact[32] = compact[32]! & 0x7f;
  } else {
    return undefined;
  }
  if (recovery !== 0 && recovery !== 1) return undefined;
  const s = bytesToBigInt(compact.subarray(32, 64));
  const r = bytesToBigInt(compact.subarray(0, 32));
  if (s === 0n || r === 0n || s > HALF_N) return undefined;
  return { compact, recovery };
}

function safeBytes(hex: Hex): Uint8Array | undefined {
  try {
    return hexToBytes(hex);
  } catch {
    return undefined;
  }
}

function bytesToBigInt(bytes: Uint8Array): bigint {
  let n = 0n;
  for (const b of bytes) n = (n << 8n) | BigInt(b);
  return n;
}

/**
 * The address of an uncompressed (65-byte) public key.
 *
 * @example
 * const address = publicKeyToAddressLower(publicKey);
 */
export function publicKeyToAddressLower(publicKey: Uint8Array): Address {
  return bytesToHex(keccak_256(publicKey.subarray(1)).subarray(12));
}

/**
 * The pure-JavaScript verifier (noble-curves): runs everywhere, including browsers.
 *
 * @example
 * const signer = jsVerifier.recover(hexToBytes(digest), signature);
 */
export const jsVerifier: Verifier = {
  kind: 'js',
  recover(digest, signature) {
    const parts = splitSignature(signature);
    if (!parts || digest.length !== 32) return undefined;
    try {
      const point = secp256k1.Signature.fromCompact(parts.compact)
        .addRecoveryBit(parts.recovery)
        .recoverPublicKey(digest);
      return publicKeyToAddressLower(point.toRawBytes(false));
    } catch {
      return undefined;
    }
  },
};
