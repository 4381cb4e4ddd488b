import { type HubRequest, hubEndpoints } from '@chit/sdk';
import { decodeBody } from '../errors/decode-wire';

// The bodies of POST /x402/verify and /x402/settle: x402 v2's facilitator request, decoded at the edge
// with the SDK's schema (hubRequestSchemas.x402FacilitatorRequest): only the outer shape, leniently like
// @x402/core's own schemas; a body of another shape is MALFORMED (400). What the fields say (version,
// scheme, network, the promise in `payload`) is judged by the service, which answers a payment it
// refuses with 200 and a reason.

export type FacilitatorRequest = HubRequest<'x402FacilitatorRequest'>;
export type PaymentRequirementsBody = HubRequest<'x402Requirements'>;

/** Decodes a facilitator request, or throws MALFORMED naming the first offending field. */
export function decodeFacilitatorRequest(body: unknown): FacilitatorRequest {
  return decodeBody(hubEndpoints.x402Verify.body, body);
}

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
