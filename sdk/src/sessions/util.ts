import type { Address, Hex } from 'viem';

/**
 * Whether two hex strings (addresses, hashlocks) are equal, ignoring case.
 *
 * @example
 * sameHex('0xAbC', '0xabc'); // true
 */
export function sameHex(a: Hex | Address, b: Hex | Address): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

/**
 * A fresh random agreement id (32 bytes from the platform's CSPRNG), for a provider's new session.
 *
 * @example
 * const agreementId = newAgreementId();
 */
export function newAgreementId(): Hex {
  const bytes = new Uint8Array(32);
  globalThis.crypto.getRandomValues(bytes);
  return `0x${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
}
