import { wireIssuePath } from '@chit/sdk';
import { isAddress } from 'viem';
import { z } from 'zod';
import type { Hex } from '../db/bytes';
import { decodeAddress } from '../errors/decode-wire';
import { HubError } from '../errors/hub-error';

// Bodies and queries of the settlement, quote and relay endpoints (docs/protocol.md, "Hub endpoints"),
// decoded strictly like protocol messages: unknown fields, bad lengths and amounts out of range are
// MALFORMED. The instant exit's body is a protocol message (the SDK's `instantExitRequest`).

const MAX_UINT256 = (1n << 256n) - 1n;

const address = z
  .string()
  .regex(/^0x[0-9a-fA-F]{40}$/, 'expected a 20-byte 0x-hex address')
  .refine((value) => isAddress(value, { strict: true }), 'bad EIP-55 checksum')
  .transform((value) => value.toLowerCase() as Hex);

const uint256 = z
  .string()
  .regex(/^(0|[1-9][0-9]{0,77})$/, 'expected a decimal integer string')
  .transform((value) => BigInt(value))
  .refine((value) => value <= MAX_UINT256, 'exceeds uint256');

const signature = z
  .string()
  .regex(/^0x[0-9a-fA-F]{130}$/, 'expected a 65-byte signature as 0x-hex')
  .transform((value) => value.toLowerCase() as Hex)
  .refine(
    (value) => value.endsWith('1b') || value.endsWith('1c'),
    'expected v = 27 or 28 (0x1b or 0x1c) as the last byte',
  );

export const settlementRequestSchema = z.strictObject({
  provider: address,
  relayerFee: uint256,
  authorization: signature,
});
export const quoteQuerySchema = z.object({ provider: address });
export const relayQuoteQuerySchema = z.object({ kind: z.enum(['identity', 'identity-permit', 'beneficiary']) });
export const relayIdentitySchema = z.strictObject({
  identity: address,
  beneficiary: address,
  relayerFee: uint256,
  signature,
  /** The identity's EIP-2612 permit of `relayerFee` to the Registry, which the relayer submits first. */
  permit: z.strictObject({ deadline: uint256, signature }).optional(),
});
export const relayBeneficiarySchema = z.strictObject({ identity: address, beneficiary: address, signature });

export type SettlementRequest = z.output<typeof settlementRequestSchema>;
export type RelayIdentityRequest = z.output<typeof relayIdentitySchema>;
export type RelayBeneficiaryRequest = z.output<typeof relayBeneficiarySchema>;

/** Decodes `input` with `schema`, or throws MALFORMED naming the first offending field. */
export function decodeBody<S extends z.ZodType>(schema: S, input: unknown): z.output<S> {
  const result = schema.safeParse(input);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const path = wireIssuePath(issue);
  throw new HubError('MALFORMED', path ? `${path}: ${issue.message}` : issue.message, { path });
}

const SETTLEMENT_ID = /^(c|p|identity|beneficiary)-(0x[0-9a-fA-F]{40})-(0|[1-9][0-9]{0,77})$/;

/**
 * Decodes the id of `GET /v1/settlements/{id}` into its canonical form, the one the hub answers:
 * `<c|p|identity|beneficiary>-<address in lower case>-<decimal>`. The address may come in lower case or
 * EIP-55; a bad checksum, or an id of another shape, is MALFORMED.
 */
export function decodeSettlementId(id: string): string {
  const match = SETTLEMENT_ID.exec(id);
  if (!match) {
    throw new HubError('MALFORMED', 'id: expected c-, p-, identity- or beneficiary-<address>-<decimal integer>', {
      path: 'id',
    });
  }
  return `${match[1]}-${decodeAddress(match[2], 'id').toLowerCase()}-${match[3]}`;
}
