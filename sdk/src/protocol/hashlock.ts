import { bytesToHex, type Hex } from 'viem';
import { hashlockOf } from './hash.js';

/**
 * A fresh random preimage R (32 bytes from the platform's CSPRNG) and its hashlock keccak256(R).
 * The provider keeps R secret until the hub has given it a hub promise with the same hashlock.
 *
 * @example
 * const { preimage, hashlock } = newHashlock();
 */
export function newHashlock(): { preimage: Hex; hashlock: Hex } {
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  const preimage = bytesToHex(bytes);
  return { preimage, hashlock: hashlockOf(preimage) };
}
