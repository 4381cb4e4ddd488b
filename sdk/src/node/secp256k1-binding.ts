import { createRequire } from 'node:module';

/** The parts of the `secp256k1` package's native binding the SDK uses. */
export interface Secp256k1Binding {
  ecdsaRecover(signature: Uint8Array, recovery: number, message: Uint8Array, compressed: boolean): Uint8Array;
  /** An RFC 6979 signature with low s, and its recovery id. */
  ecdsaSign(message: Uint8Array, seckey: Uint8Array): { signature: Uint8Array; recid: number };
  privateKeyVerify(seckey: Uint8Array): boolean;
  publicKeyCreate(seckey: Uint8Array, compressed: boolean): Uint8Array;
  /** `pubkey × tweak`: with a private key as the tweak, the ECDH shared point. */
  publicKeyTweakMul(pubkey: Uint8Array, tweak: Uint8Array, compressed: boolean): Uint8Array;
}

let binding: Secp256k1Binding | null | undefined;

/** The native libsecp256k1 binding of the optional `secp256k1` package, or null when it cannot load. */
export function loadSecp256k1(): Secp256k1Binding | null {
  if (binding !== undefined) return binding;
  try {
    // The package ships prebuilt libsecp256k1 bindings; its pure-JS fallback is not wanted here (the
    // SDK's own is faster), so load the native entry point only.
    const require = createRequire(import.meta.url);
    binding = require('secp256k1/bindings') as Secp256k1Binding;
  } catch {
    binding = null;
  }
  return binding;
}
