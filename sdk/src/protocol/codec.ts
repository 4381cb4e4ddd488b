import { type Address, getAddress, type Hex, isAddress } from 'viem';
import { z } from 'zod';
import { MalformedMessageError } from '../errors/protocol.js';
import type {
  ExchangeRequest,
  ExchangeResponse,
  InstantExitRequestBody,
  Invoice,
  RecoveryResponse,
  Reveal,
  SignedConsumerPromise,
  SignedHubPromise,
  SignedRecoveryRequest,
} from './types.js';

// The wire format: JSON, amounts as decimal strings (they exceed 2^53), bytes as 0x-hex, addresses
// as 0x-hex (EIP-55 checksummed when mixed case), signatures as r || s || v with v = 27 or 28. Decoding
// is strict: unknown fields, wrong lengths, negative or oversized numbers are rejected with a
// MalformedMessageError naming the field.

const MAX_UINT256 = (1n << 256n) - 1n;

const address = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 20-byte 0x-hex address')
  .refine((value) => isAddress(value, { strict: true }), 'bad EIP-55 checksum')
  .transform((value) => getAddress(value));

const bytesN = (n: number) =>
  z
    .string()
    .regex(new RegExp(`^0x[0-9a-fA-F]{${n * 2}}$`), `expected ${n} bytes as 0x-hex`)
    .transform((value) => value.toLowerCase() as Hex);

const bytes32 = bytesN(32);
// v = 0 or 1 recovers the same signer off-chain, but the contracts refuse it: one form only.
const signature = bytesN(65).refine(
  (value) => value.endsWith('1b') || value.endsWith('1c'),
  'expected v = 27 or 28 (0x1b or 0x1c) as the last byte',
);
/** A sealed R (sealPreimage): ephemeral public key, compressed (33) || nonce (12) || encrypted R (32) || tag (16). */
const sealedPreimage = bytesN(33 + 12 + 32 + 16);

const uint256 = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/, 'expected a non-negative decimal integer string')
  .transform((value) => BigInt(value))
  .refine((value) => value <= MAX_UINT256, 'exceeds uint256');

const chainId = z.number().int().positive().max(Number.MAX_SAFE_INTEGER);

const scope = { hub: address, chainId };

const agreement = z.strictObject({ provider: address, id: bytes32, total: uint256 });

const invoice = z.strictObject({
  ...scope,
  provider: address,
  agreementId: bytes32,
  agreementTotal: uint256,
  hashlock: bytes32,
  fee: z.number().int().min(0).max(10_000),
});

const consumerPromise = z.strictObject({
  ...scope,
  consumer: address,
  total: uint256,
  hashlock: bytes32,
  agreement,
  signature,
});

const hubPromise = z.strictObject({ ...scope, provider: address, total: uint256, hashlock: bytes32, signature });

const exchangeRequest = z.strictObject({
  promise: consumerPromise,
  previousPreimage: bytes32.optional(),
  encryptedPreimage: sealedPreimage,
});

const exchangeResponse = z.strictObject({ hubPromise });

const reveal = z.strictObject({ ...scope, provider: address, preimage: bytes32 });

const recoveryRequest = z.strictObject({ ...scope, provider: address, issuedAt: uint256, signature });

// The hub checks the signature in its own domain: the body does not repeat hub and chainId.
const instantExitRequest = z.strictObject({ consumer: address, amount: uint256, issuedAt: uint256, signature });

const recoveryResponse = z.strictObject({ hubPromise: hubPromise.nullable(), preimage: bytes32.nullable() });

/**
 * Every wire message's zod schema, keyed by message name.
 *
 * @example
 * const ok = wireSchemas.invoice.safeParse(json).success;
 */
export const wireSchemas = {
  invoice,
  consumerPromise,
  hubPromise,
  exchangeRequest,
  exchangeResponse,
  reveal,
  recoveryRequest,
  recoveryResponse,
  instantExitRequest,
} as const;

/** The name of a wire message. */
export type MessageName = keyof typeof wireSchemas;

interface Messages {
  invoice: Invoice;
  consumerPromise: SignedConsumerPromise;
  hubPromise: SignedHubPromise;
  exchangeRequest: ExchangeRequest;
  exchangeResponse: ExchangeResponse;
  reveal: Reveal;
  recoveryRequest: SignedRecoveryRequest;
  recoveryResponse: RecoveryResponse;
  instantExitRequest: InstantExitRequestBody;
}

/**
 * Decodes a wire message (already parsed JSON) into its typed form, strictly.
 *
 * @throws {MalformedMessageError} naming the first offending field.
 * @example
 * const promise = decodeMessage('consumerPromise', await request.json());
 */
export function decodeMessage<N extends MessageName>(name: N, json: unknown): Messages[N] {
  const result = wireSchemas[name].safeParse(json);
  if (!result.success) {
    const issue = result.error.issues[0]!;
    throw new MalformedMessageError(name, wireIssuePath(issue), issue.message, result.error);
  }
  return result.data as unknown as Messages[N];
}

/**
 * The dotted path of the field a decoding issue is about. For an unknown field that is the field
 * itself (zod puts it in `keys` and gives its parent's path): the first one when there are several.
 *
 * @example
 * const result = wireSchemas.reveal.safeParse({ ...reveal, extra: 1 });
 * if (!result.success) wireIssuePath(result.error.issues[0]!); // 'extra'
 */
export function wireIssuePath(issue: z.core.$ZodIssue): string {
  const path = issue.code === 'unrecognized_keys' ? [...issue.path, issue.keys[0]!] : issue.path;
  return path.map(String).join('.');
}

type Wire<T> = T extends bigint
  ? string
  : T extends Address | Hex | string | number | boolean | null | undefined
    ? T
    : { [K in keyof T]: Wire<T[K]> };

/**
 * Encodes a typed message for the wire: bigints become decimal strings; everything else is kept.
 *
 * @example
 * await fetch(url, { method: 'POST', body: JSON.stringify(encodeMessage(promise)) });
 */
export function encodeMessage<T>(message: T): Wire<T> {
  return toWire(message) as Wire<T>;
}

function toWire(value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString(10);
  if (Array.isArray(value)) return value.map(toWire);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(value)) if (inner !== undefined) out[key] = toWire(inner);
    return out;
  }
  return value;
}
