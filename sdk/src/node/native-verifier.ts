import { createRequire } from 'node:module';
import { jsVerifier, publicKeyToAddressLower, splitSignature, type Verifier } from '../protocol/verifier.js';

interface Secp256k1Binding {
  ecdsaRecover(signature: Uint8Array, recovery: number, message: Uint8Array, compressed: boolean): Uint8Array;
}

let binding: Secp256k1Binding | null | undefined;

function loadBinding(): Secp256k1Binding | null {
  if (binding !== undefined) return binding;
  try {
    // The `secp256k1` package ships prebuilt libsecp256k1 bindings; its pure-JS fallback is not wanted
    // here (ours is faster), so load the native entry point only.
    const require = createRequire(import.meta.url);
    binding = require('secp256k1/bindings') as Secp256k1Binding;
  } catch {
    binding = null;
  }
  return binding;
}

/**
 * A verifier backed by native libsecp256k1 (the optional `secp256k1` package), about 25x the pure
 * JavaScript one; falls back to {@link jsVerifier} when the binding cannot load.
 *
 * @example
 * const verifier = nativeVerifier();
 * console.log(verifier.kind); // 'native' when the binding loaded
 */
export function nativeVerifier(): Verifier {
  const native = loadBinding();
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
