import { jsVerifier, publicKeyToAddressLower, splitSignature, type Verifier } from '../protocol/verifier.js';
import { loadSecp256k1 } from './secp256k1-binding.js';

/**
 * A verifier backed by native libsecp256k1 (the optional `secp256k1` package), about 25x the pure
 * JavaScript one; falls back to {@link jsVerifier} when the binding cannot load.
 *
 * @example
 * const verifier = nativeVerifier();
 * console.log(verifier.kind); // 'native' when the binding loaded
 */
export function nativeVerifier(): Verifier {
  const native = loadSecp256k1();
  if (!native) return jsVerifier;
  return {
    kind: 'native',
    recover(digest, signature) {
      const parts = splitSignature(signature);
      if (!parts || digest.length !== 32) return undefined;
      try {
        return publicKeyToAddressLower(native.ecdsaRecover(parts.compact, parts.recovery, digest, false));
      } catch {
        return undefined;
      }
    },
  };
}
