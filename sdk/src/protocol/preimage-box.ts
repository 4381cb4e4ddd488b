import { gcm } from '@noble/ciphers/aes';
import { secp256k1 } from '@noble/curves/secp256k1';
import { hkdf } from '@noble/hashes/hkdf';
import { sha256 } from '@noble/hashes/sha256';
import { bytesToHex, type Hex, hexToBytes } from 'viem';

// ECIES over secp256k1: an ephemeral key agrees a secret with the hub's public key, HKDF-SHA256 turns
// it into an AES-256-GCM key. Layout: ephemeral public key (33 bytes, compressed) || nonce (12) ||
// ciphertext of R (32) || tag (16) = 93 bytes.

/** The box's layout and its HKDF `info`: what another implementation needs besides the algorithms. */
export const preimageBox = {
  bytes: 93,
  ephemeralKeyBytes: 33,
  nonceBytes: 12,
  info: 'chit/preimage/v1',
} as const;

const INFO = new TextEncoder().encode(preimageBox.info);

/**
 * Boxes a sealer from {@link preimageSealer} (or `nativePreimageSealer`) seals under one ephemeral key
 * before it draws another. Each box has its own random 12-byte nonce: the chance that two of 2^16 boxes
 * share one is about 2^-65, far inside AES-GCM's limits for one key.
 */
export const BOXES_PER_EPHEMERAL_KEY = 65_536;

/**
 * Encrypts a preimage R to the hub's secp256k1 public key, for `ExchangeRequest.encryptedPreimage`.
 * Only the hub can open it: when the provider never reveals R, or to give R back in a recovery.
 *
 * @example
 * const box = sealPreimage(hubInfo.publicKey, preimage);
 */
export function sealPreimage(hubPublicKey: Hex, preimage: Hex): Hex {
  return preimageSealer(hubPublicKey, 1)(preimage);
}

/**
 * A sealer of preimages to the hub's public key, for a provider that exchanges often: boxes as
 * {@link sealPreimage} makes them, but one ephemeral key (so one key agreement) serves
 * `boxesPerKey` boxes, each with its own random nonce. The hub caches the key it agrees with each
 * ephemeral key, so it opens the next boxes without a key agreement either. The box's format is the
 * same: any hub opens it.
 *
 * @example
 * const seal = preimageSealer(hubInfo.publicKey);
 * const encryptedPreimage = seal(preimage);
 */
export function preimageSealer(
  hubPublicKey: Hex,
  boxesPerKey: number = BOXES_PER_EPHEMERAL_KEY,
): (preimage: Hex) => Hex {
  const hub = hexToBytes(hubPublicKey);
  let left = 0;
  let ephemeralPublic: Uint8Array = new Uint8Array(0);
  let key: Uint8Array = new Uint8Array(0);
  return (preimage) => {
    if (left === 0) {
      const ephemeral = secp256k1.utils.randomPrivateKey();
      ephemeralPublic = secp256k1.getPublicKey(ephemeral, true);
      key = hkdf(sha256, secp256k1.getSharedSecret(ephemeral, hub, true), ephemeralPublic, INFO, 32);
      left = boxesPerKey;
    }
    left--;
    const nonce = new Uint8Array(12);
    globalThis.crypto.getRandomValues(nonce);
    const sealed = gcm(key, nonce).encrypt(hexToBytes(preimage));
    const out = new Uint8Array(33 + 12 + sealed.length);
    out.set(ephemeralPublic, 0);
    out.set(nonce, 33);
    out.set(sealed, 45);
    return bytesToHex(out);
  };
}

/**
 * Opens a box made by {@link sealPreimage} with the hub's private key; `undefined` when it is not a
 * valid box for this key.
 *
 * @example
 * const preimage = openPreimage(operatorPrivateKey, request.encryptedPreimage);
 */
export function openPreimage(hubPrivateKey: Hex, box: Hex): Hex | undefined {
  try {
    const bytes = hexToBytes(box);
    if (bytes.length !== preimageBox.bytes) return undefined;
    const ephemeralPublic = bytes.subarray(0, 33);
    const shared = secp256k1.getSharedSecret(hexToBytes(hubPrivateKey), ephemeralPublic, true);
    const key = hkdf(sha256, shared, ephemeralPublic, INFO, 32);
    return bytesToHex(gcm(key, bytes.subarray(33, 45)).decrypt(bytes.subarray(45)));
  } catch {
    return undefined;
  }
}
