import { z } from 'zod';
import { address, signature, uint256 } from './primitives.js';

// Bodies and queries of the hub endpoints that are not protocol messages (docs/protocol.md, "Hub
// endpoints"), decoded strictly like protocol messages: unknown fields, bad lengths and amounts out of
// range are refused naming the field.

const relayKind = z.enum(['identity', 'identity-permit', 'beneficiary']);

const settlementRequest = z.strictObject({ provider: address, relayerFee: uint256, authorization: signature });

const settlementQuoteQuery = z.object({ provider: address });

const relayQuoteQuery = z.object({ kind: relayKind });

const relayIdentityRequest = z.strictObject({
  identity: address,
  beneficiary: address,
  relayerFee: uint256,
  signature,
  /** The identity's EIP-2612 permit of `relayerFee` to the Registry, which the relayer submits first. */
  permit: z.strictObject({ deadline: uint256, signature }).optional(),
});

const relayBeneficiaryRequest = z.strictObject({ identity: address, beneficiary: address, signature });

// x402 v2's facilitator request `{ x402Version, paymentPayload, paymentRequirements }`, as @x402/core's
// HTTPFacilitatorClient sends it. Only the outer shape is decoded, leniently like @x402/core's own
// schemas (unknown fields are dropped, null optionals allowed); what the fields say is judged by the hub.
const nonEmpty = z.string().min(1);
const record = z.record(z.string(), z.unknown());

const x402Requirements = z.object({
  scheme: nonEmpty,
  network: z.string().regex(/^[^:]+:.+$/, 'expected a CAIP-2 network such as eip155:8453'),
  // Token base units: the chit scheme never prices in money ("$0.01").
  amount: z.string().regex(/^(0|[1-9][0-9]{0,77})$/, 'expected token base units as a decimal integer string'),
  asset: nonEmpty,
  payTo: nonEmpty,
  maxTimeoutSeconds: z.number().positive(),
  extra: record.nullish().transform((extra) => extra ?? {}),
});

const x402FacilitatorRequest = z.object({
  x402Version: z.number().int(),
  paymentPayload: z.object({
    x402Version: z.number().int(),
    accepted: x402Requirements,
    payload: record,
    resource: z.object({ url: nonEmpty }).loose().nullish(),
    extensions: record.nullish(),
  }),
  paymentRequirements: x402Requirements,
});

/**
 * Schemas of the hub requests that are not protocol messages, keyed by name (zod).
 *
 * @example
 * const ok = hubRequestSchemas.settlementRequest.safeParse(body).success;
 */
export const hubRequestSchemas = {
  settlementRequest,
  settlementQuoteQuery,
  relayQuoteQuery,
  relayIdentityRequest,
  relayBeneficiaryRequest,
  x402Requirements,
  x402FacilitatorRequest,
} as const;

/** The decoded form of a hub request schema. */
export type HubRequest<N extends keyof typeof hubRequestSchemas> = z.output<(typeof hubRequestSchemas)[N]>;
