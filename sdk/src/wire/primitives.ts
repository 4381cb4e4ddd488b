import { getAddress, type Hex, isAddress } from 'viem';
import { z } from 'zod';

// The primitives of every wire schema, defined once: JSON, amounts as decimal strings (they exceed
// 2^53), bytes as 0x-hex, addresses as 0x-hex (EIP-55 checksummed when mixed case), signatures as
// r || s || v with v = 27 or 28. Each decodes strictly, with a message that says what was expected.

export const MAX_UINT256 = (1n << 256n) - 1n;
/** 0x and 40 hex digits, in any case (the checksum is checked apart). */
export const ADDRESS_PATTERN = /^0x[0-9a-fA-F]{40}$/;
/** `n` bytes as 0x-hex, in any case. */
export const bytesPattern = (n: number) => new RegExp(`^0x[0-9a-fA-F]{${n * 2}}$`);
/** A decimal string of a non-negative integer of at most 78 digits, without leading zeros. */
export const UINT256_PATTERN = /^(0|[1-9][0-9]{0,77})$/;

/** An address: lower case or valid EIP-55; decodes to its EIP-55 form. */
export const address = z
  .string()
  .regex(ADDRESS_PATTERN, 'expected a 20-byte 0x-hex address')
  .refine((value) => isAddress(value, { strict: true }), 'bad EIP-55 checksum')
  .transform((value) => getAddress(value))
  .meta({ description: 'address: 0x and 40 hex digits, lower case or EIP-55' });

/** `n` bytes as 0x-hex; decodes to lower case. */
export const bytesN = (n: number) =>
  z
    .string()
    .regex(bytesPattern(n), `expected ${n} bytes as 0x-hex`)
    .transform((value) => value.toLowerCase() as Hex);

export const bytes32 = bytesN(32).meta({ description: '32 bytes as 0x-hex' });

// v = 0 or 1 recovers the same signer off-chain, but the contracts refuse it: one form only.
export const signature = bytesN(65)
  .refine(
    (value) => value.endsWith('1b') || value.endsWith('1c'),
    'expected v = 27 or 28 (0x1b or 0x1c) as the last byte',
  )
  .meta({ description: '65 bytes r || s || v as 0x-hex, v = 27 or 28' });

/** A sealed R (sealPreimage): ephemeral public key, compressed (33) || nonce (12) || encrypted R (32) || tag (16). */
export const sealedPreimage = bytesN(33 + 12 + 32 + 16).meta({
  description: '93 bytes as 0x-hex: R sealed to the hub key (sealPreimage)',
});

export const publicKey = z
  .string()
  .regex(
    /^0x(0[23][0-9a-fA-F]{64}|04[0-9a-fA-F]{128})$/,
    'expected a secp256k1 public key (33 bytes compressed or 65 uncompressed)',
  )
  .transform((value) => value.toLowerCase() as Hex)
  .meta({ description: 'secp256k1 public key as 0x-hex, 33 bytes compressed or 65 uncompressed' });

/** A non-negative integer below 2^256 as a decimal string (an amount, unix seconds or a nonce); decodes to a bigint. */
export const uint256 = z
  .string()
  .regex(UINT256_PATTERN, 'expected a non-negative decimal integer string')
  .transform((value) => BigInt(value))
  .refine((value) => value <= MAX_UINT256, 'exceeds uint256')
  .meta({ description: 'decimal string below 2^256 (an amount, unix seconds or a nonce)' });

export const chainId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

/** A fee in basis points. */
export const basisPoints = z.number().int().min(0).max(10_000);

export const text = z.string().min(1).max(1_000);
