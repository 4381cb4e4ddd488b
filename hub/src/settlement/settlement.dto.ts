import { type HubRequest, hubEndpoints } from '@chit/sdk';
import type { Hex } from '../db/bytes';
import { decodeAddress, decodeBody } from '../errors/decode-wire';
import { HubError } from '../errors/hub-error';

// The bodies and queries of the settlement, quote and relay endpoints, decoded at the edge with the SDK's
// schemas (hubEndpoints). The SDK answers addresses in EIP-55; settlement records and recovered signers
// are in lower case, so the addresses are lowered here.

const lower = (address: string) => address.toLowerCase() as Hex;

type Lowered<T, K extends keyof T> = Omit<T, K> & { [P in K]: Hex };

export type SettlementRequest = Lowered<HubRequest<'settlementRequest'>, 'provider'>;
export type RelayIdentityRequest = Lowered<HubRequest<'relayIdentityRequest'>, 'identity' | 'beneficiary'>;
export type RelayBeneficiaryRequest = Lowered<HubRequest<'relayBeneficiaryRequest'>, 'identity' | 'beneficiary'>;
type RelayKind = HubRequest<'relayQuoteQuery'>['kind'];

/** `POST /v1/settlements`. */
export function decodeSettlementRequest(body: unknown): SettlementRequest {
  const request = decodeBody(hubEndpoints.requestSettlement.body, body);
  return { ...request, provider: lower(request.provider) };
}

/** `GET /v1/quotes/settlement`: the provider, lowered. */
export function decodeSettlementQuoteQuery(query: unknown): Hex {
  return lower(decodeBody(hubEndpoints.quoteSettlement.query, query).provider);
}

/** `GET /v1/quotes/relay`. */
export function decodeRelayQuoteQuery(query: unknown): RelayKind {
  return decodeBody(hubEndpoints.quoteRelay.query, query).kind;
}

/** `POST /v1/relay/identities`. */
export function decodeRelayIdentity(body: unknown): RelayIdentityRequest {
  const request = decodeBody(hubEndpoints.relayIdentity.body, body);
  return { ...request, identity: lower(request.identity), beneficiary: lower(request.beneficiary) };
}

/** `POST /v1/relay/beneficiaries`. */
export function decodeRelayBeneficiary(body: unknown): RelayBeneficiaryRequest {
  const request = decodeBody(hubEndpoints.relayBeneficiary.body, body);
  return { ...request, identity: lower(request.identity), beneficiary: lower(request.beneficiary) };
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
