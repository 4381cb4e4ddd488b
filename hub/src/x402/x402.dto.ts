import { z } from 'zod';

// The bodies of POST /x402/verify and /x402/settle: x402 v2's facilitator request
// `{ x402Version, paymentPayload, paymentRequirements }`, as @x402/core's HTTPFacilitatorClient sends
// it (docs/protocol.md, "x402 facilitator"). Only the outer shape is decoded here, leniently like
// @x402/core's own schemas (unknown fields are dropped, null optionals allowed): a body of another
// shape is MALFORMED (400). What the fields say (version, scheme, network, the promise in `payload`) is
// judged by the service, which answers a payment it refuses with 200 and a reason.

const nonEmpty = z.string().min(1);
const record = z.record(z.string(), z.unknown());

const requirements = z.object({
  scheme: nonEmpty,
  network: z.string().regex(/^[^:]+:.+$/, 'expected a CAIP-2 network such as eip155:8453'),
  // Token base units: the chit scheme never prices in money ("$0.01").
  amount: z.string().regex(/^(0|[1-9][0-9]{0,77})$/, 'expected token base units as a decimal integer string'),
  asset: nonEmpty,
  payTo: nonEmpty,
  maxTimeoutSeconds: z.number().positive(),
  extra: record.nullish().transform((extra) => extra ?? {}),
});

export const facilitatorRequestSchema = z.object({
  x402Version: z.number().int(),
  paymentPayload: z.object({
    x402Version: z.number().int(),
    accepted: requirements,
    payload: record,
    resource: z.object({ url: nonEmpty }).loose().nullish(),
    extensions: record.nullish(),
  }),
  paymentRequirements: requirements,
});

export type FacilitatorRequest = z.output<typeof facilitatorRequestSchema>;
export type PaymentRequirementsBody = z.output<typeof requirements>;

/** `GET /x402/supported`. */
export interface SupportedAnswer {
  kinds: { x402Version: 2; scheme: 'chit'; network: string; extra: Record<string, unknown> }[];
  extensions: string[];
  signers: Record<string, string[]>;
}

/** `POST /x402/verify`: always 200 for a well-formed body. */
export type VerifyAnswer =
  | { isValid: true; payer: string; extra: { increment: string } }
  | { isValid: false; invalidReason: string; invalidMessage: string; payer?: string };

/** `POST /x402/settle`: always 200 for a well-formed body. */
export type SettleAnswer<HubPromise = unknown> =
  | {
      success: true;
      transaction: '';
      network: string;
      payer: string;
      amount: string;
      extra: { hubPromise: HubPromise };
    }
  | { success: false; errorReason: string; errorMessage: string; transaction: ''; network: string; payer?: string };
