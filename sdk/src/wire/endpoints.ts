import { z } from 'zod';
import { hubErrorCodes } from '../hub-client/errors.js';
import { maxExchangesPerRequest } from '../hub-client/hub-client.js';
import { hubAnswerSchemas } from '../hub-client/schemas.js';
import { wireSchemas } from '../protocol/codec.js';
import { historyAnswerSchemas, historyListQuery, historyQuery, sessionRequest } from './history.js';
import { address, basisPoints, publicKey, uint256 } from './primitives.js';
import { hubRequestSchemas } from './requests.js';

// Every HTTP endpoint of a hub, once: method, path, operation id, request and answer schemas. The hub
// decodes with these schemas, the hub client parses with them, and the hub's OpenAPI document
// (GET /docs) is generated from this table.

/** The error answer every refusal shares: a stable code of {@link hubErrorCodes}, a message and its facts. */
const error = z.strictObject({
  code: z.enum(Object.keys(hubErrorCodes) as [keyof typeof hubErrorCodes, ...(keyof typeof hubErrorCodes)[]]),
  message: z.string(),
  details: z.record(z.string(), z.unknown()),
});

const settlementId = z
  .string()
  .regex(
    /^(c|p|identity|beneficiary)-(0x[0-9a-fA-F]{40})-(0|[1-9][0-9]{0,77})$/,
    'expected c-, p-, identity- or beneficiary-<address>-<decimal integer>',
  );

const health = z.strictObject({ status: z.literal('ok') });

const readiness = z.strictObject({
  status: z.enum(['ready', 'unavailable']),
  checks: z.record(z.string(), z.boolean()),
  reasons: z.record(z.string(), z.string()).optional(),
});

const exchangesRequest = z.strictObject({
  exchanges: z.array(wireSchemas.exchangeRequest).min(1).max(maxExchangesPerRequest),
  sign: z.enum(['each', 'latest']).optional().meta({
    description:
      "each (the default): every credited item's hub promise is signed; latest: one per provider, its highest total, which covers its other items (answered covered)",
  }),
});

const network = z.string().regex(/^eip155:[0-9]+$/, 'expected a CAIP-2 network: eip155:<chainId>');
const reason = z.string().meta({ description: 'an error code of the hub, or an x402 one (UNDERPAID, …)' });

const x402Supported = z.object({
  kinds: z.array(
    z.object({
      x402Version: z.literal(2),
      scheme: z.literal('chit'),
      network,
      extra: z.object({ hub: address, token: address, operator: address, fee: basisPoints, publicKey }),
    }),
  ),
  extensions: z.array(z.string()),
  signers: z.record(z.string(), z.array(address)).meta({ description: '{ "eip155:*": [operator] }' }),
});

const x402Verify = z.union([
  z.object({ isValid: z.literal(true), payer: address, extra: z.object({ increment: uint256 }) }),
  z.object({ isValid: z.literal(false), invalidReason: reason, invalidMessage: z.string(), payer: address.optional() }),
]);

const x402Settle = z.union([
  z.object({
    success: z.literal(true),
    transaction: z.literal(''),
    network,
    payer: address,
    amount: uint256.meta({ description: 'the increment credited' }),
    extra: z.object({ hubPromise: wireSchemas.hubPromise }),
  }),
  z.object({
    success: z.literal(false),
    errorReason: reason,
    errorMessage: z.string(),
    transaction: z.literal(''),
    network,
    payer: address.optional(),
  }),
]);

/**
 * The schemas the OpenAPI document names as components, by component name: the error answer and the
 * messages several endpoints share.
 */
export const hubWireComponents = {
  Error: error,
  ConsumerPromise: wireSchemas.consumerPromise,
  HubPromise: wireSchemas.hubPromise,
  ExchangeRequest: wireSchemas.exchangeRequest,
  Job: hubAnswerSchemas.job,
  X402Requirements: hubRequestSchemas.x402Requirements,
  X402FacilitatorRequest: hubRequestSchemas.x402FacilitatorRequest,
} as const;

/** One HTTP endpoint of a hub. */
export interface HubEndpoint {
  readonly method: 'get' | 'post';
  /** The path in OpenAPI form: `/v1/consumers/{address}`. */
  readonly path: string;
  readonly operationId: string;
  readonly summary: string;
  /** The path parameters, when the path has any. */
  readonly params?: z.ZodObject;
  readonly query?: z.ZodObject;
  readonly body?: z.ZodType;
  /** The status of a success. */
  readonly status: number;
  /** The answer on success; `text/plain` when `text` is set. */
  readonly answer: z.ZodType;
  readonly text?: boolean;
  /** The statuses of the refusals the endpoint gives with an {@link hubWireComponents.Error} body, besides the HTTP layer's. */
  readonly errors: readonly number[];
  /** Not rate limited (no 429). */
  readonly unlimited?: boolean;
  /** Answered only to a signed-in session: `Authorization: Bearer <token>` of `POST /v1/auth/session`. */
  readonly session?: boolean;
  /** Another status answered with the success schema (`/ready` answers 503 when not ready). */
  readonly alsoStatus?: number;
}

type Rest = Partial<Omit<HubEndpoint, 'method' | 'path' | 'operationId' | 'summary' | 'answer' | 'body'>>;

function get<A extends z.ZodType, R extends Rest = Record<never, never>>(
  path: string,
  operationId: string,
  summary: string,
  answer: A,
  rest: R = {} as R,
) {
  return {
    method: 'get' as const,
    path,
    operationId,
    summary,
    status: 200,
    answer,
    errors: [] as readonly number[],
    ...rest,
  };
}

function post<B extends z.ZodType, A extends z.ZodType, R extends Rest = Record<never, never>>(
  path: string,
  operationId: string,
  summary: string,
  body: B,
  answer: A,
  rest: R = {} as R,
) {
  const errors: readonly number[] = [400];
  return { method: 'post' as const, path, operationId, summary, body, status: 200, answer, errors, ...rest };
}

const job = hubAnswerSchemas.job;
const byAddress = z.strictObject({ address });

/**
 * Every HTTP endpoint of a hub, keyed by operation id (docs/protocol.md, "Hub endpoints").
 *
 * @example
 * const { method, path, body } = hubEndpoints.requestSettlement;
 * const ok = body.safeParse(json).success;
 */
export const hubEndpoints = {
  getInfo: get('/v1/info', 'getInfo', 'The hub: chain, contracts, operator, fee, stake, status', hubAnswerSchemas.info),
  exchange: post(
    '/v1/exchange',
    'exchange',
    'Swap a consumer promise for a hub promise',
    wireSchemas.exchangeRequest,
    wireSchemas.exchangeResponse,
    { errors: [400, 404, 409, 503] },
  ),
  exchangeMany: post(
    '/v1/exchanges',
    'exchangeMany',
    `Swap 1 to ${maxExchangesPerRequest} consumer promises at once: per-item answers in request order, each a hub promise or the error POST /v1/exchange would give that item alone`,
    exchangesRequest,
    hubAnswerSchemas.exchangeResults,
    { errors: [400, 503] },
  ),
  reveal: post('/v1/reveal', 'reveal', 'Reveal the R of a hub promise', wireSchemas.reveal, hubAnswerSchemas.revealed, {
    errors: [400, 404],
  }),
  recover: post(
    '/v1/recovery',
    'recover',
    'Get the latest hub promise, re-signed, and its R back',
    wireSchemas.recoveryRequest,
    wireSchemas.recoveryResponse,
  ),
  getConsumer: get(
    '/v1/consumers/{address}',
    'getConsumer',
    'A consumer channel and its books',
    hubAnswerSchemas.consumerAccount,
    { params: byAddress, errors: [400, 404] },
  ),
  getProvider: get('/v1/providers/{address}', 'getProvider', "A provider's books", hubAnswerSchemas.providerAccount, {
    params: byAddress,
    errors: [400, 404],
  }),
  quoteSettlement: get(
    '/v1/quotes/settlement',
    'quoteSettlement',
    "A fee quote for settling the provider's latest hub promise",
    hubAnswerSchemas.settlementQuote,
    { query: hubRequestSchemas.settlementQuoteQuery, errors: [400, 404] },
  ),
  quoteRelay: get(
    '/v1/quotes/relay',
    'quoteRelay',
    'A relayer fee quote for a relayed registration (kind=identity; kind=identity-permit when the relayer also submits the identity’s permit of the fee) or beneficiary change (kind=beneficiary)',
    hubAnswerSchemas.relayQuote,
    { query: hubRequestSchemas.relayQuoteQuery, errors: [400] },
  ),
  requestSettlement: post(
    '/v1/settlements',
    'requestSettlement',
    'Settle a hub promise through the relayer',
    hubRequestSchemas.settlementRequest,
    job,
    { status: 202, errors: [400, 404, 409] },
  ),
  getSettlement: get(
    '/v1/settlements/{id}',
    'getSettlement',
    'A settlement and its transaction',
    hubAnswerSchemas.settlement,
    { params: z.strictObject({ id: settlementId }), errors: [400, 404] },
  ),
  instantExit: post(
    '/v1/exits/instant',
    'instantExit',
    "The operator's InstantExit co-signature, for the consumer's signed InstantExitRequest",
    wireSchemas.instantExitRequest,
    hubAnswerSchemas.instantExit,
    { errors: [400, 404, 409] },
  ),
  relayIdentity: post(
    '/v1/relay/identities',
    'relayIdentity',
    'Relay a Registry identity registration',
    hubRequestSchemas.relayIdentityRequest,
    job,
    { status: 202, errors: [400, 409] },
  ),
  relayBeneficiary: post(
    '/v1/relay/beneficiaries',
    'relayBeneficiary',
    'Relay a Registry beneficiary change',
    hubRequestSchemas.relayBeneficiaryRequest,
    job,
    { status: 202, errors: [400, 409] },
  ),
  x402Supported: get(
    '/x402/supported',
    'x402Supported',
    'x402 facilitator: the chit scheme on this hub chain, its terms and signer',
    x402Supported,
  ),
  x402Verify: post(
    '/x402/verify',
    'x402Verify',
    'x402 facilitator: whether settling the payment now would succeed and credit at least the price; writes nothing. A refused payment is a 200 with isValid false',
    hubRequestSchemas.x402FacilitatorRequest,
    x402Verify,
    { errors: [400, 503] },
  ),
  x402Settle: post(
    '/x402/settle',
    'x402Settle',
    'x402 facilitator: exchange the payment (payload.encryptedPreimage required) as POST /v1/exchange does. A refused payment is a 200 with success false',
    hubRequestSchemas.x402FacilitatorRequest,
    x402Settle,
    { errors: [400, 503] },
  ),
  getAuthNonce: get(
    '/v1/auth/nonce',
    'getAuthNonce',
    'A nonce for one Sign-In with Ethereum (EIP-4361) message, good for 10 minutes',
    historyAnswerSchemas.authNonce,
  ),
  createSession: post(
    '/v1/auth/session',
    'createSession',
    "Sign in: an EIP-4361 message for this hub's host and chain with a nonce of GET /v1/auth/nonce, signed by the identity (EIP-191); answers a bearer token for the history endpoints",
    sessionRequest,
    historyAnswerSchemas.session,
    { errors: [400, 401] },
  ),
  getProviderHistory: get(
    '/v1/history/providers/{address}',
    'getProviderHistory',
    "A provider's earnings per hour or UTC day, the hub fee at today's fee, and its books; the provider's session only. format=csv answers text/csv (start,amount,hubFee,exchanges)",
    historyAnswerSchemas.providerHistory,
    { params: byAddress, query: historyQuery, errors: [400, 401, 403], session: true },
  ),
  getProviderConsumers: get(
    '/v1/history/providers/{address}/consumers',
    'getProviderConsumers',
    "What each consumer paid a provider in the UTC days the range touches, largest first (at most 100); the provider's session only. format=csv answers text/csv",
    historyAnswerSchemas.providerConsumers,
    { params: byAddress, query: historyListQuery, errors: [400, 401, 403], session: true },
  ),
  getProviderSettlements: get(
    '/v1/history/providers/{address}/settlements',
    'getProviderSettlements',
    "A provider's settlements created in the range, newest first (at most 1,000), with their fees and gas; the provider's session only. format=csv answers text/csv",
    historyAnswerSchemas.providerSettlements,
    { params: byAddress, query: historyListQuery, errors: [400, 401, 403], session: true },
  ),
  getConsumerHistory: get(
    '/v1/history/consumers/{address}',
    'getConsumerHistory',
    "A consumer's spending per hour or UTC day; the consumer's session only. format=csv answers text/csv",
    historyAnswerSchemas.consumerHistory,
    { params: byAddress, query: historyQuery, errors: [400, 401, 403], session: true },
  ),
  getConsumerProviders: get(
    '/v1/history/consumers/{address}/providers',
    'getConsumerProviders',
    "What a consumer paid each provider in the UTC days the range touches, largest first (at most 100); the consumer's session only. format=csv answers text/csv",
    historyAnswerSchemas.consumerProviders,
    { params: byAddress, query: historyListQuery, errors: [400, 401, 403], session: true },
  ),
  getHubHistory: get(
    '/v1/history/hub',
    'getHubHistory',
    "The hub's volume per bucket, stake and free funds against liabilities, and settlement batches; the operator's session only. format=csv answers text/csv of the volume",
    historyAnswerSchemas.hubHistory,
    { query: historyQuery, errors: [400, 401, 403], session: true },
  ),
  health: get('/health', 'health', 'Alive while the process runs', health, { unlimited: true }),
  ready: get(
    '/ready',
    'ready',
    'Ready (200) when Postgres, Redis and the RPC answer and the chain follower keeps up, else 503',
    readiness,
    { alsoStatus: 503, unlimited: true },
  ),
  metrics: get('/metrics', 'metrics', 'Prometheus metrics (text format 0.0.4)', z.string(), {
    text: true,
    unlimited: true,
  }),
  docs: get('/docs', 'docs', 'This OpenAPI document', z.record(z.string(), z.unknown())),
} as const satisfies Record<string, HubEndpoint>;

/** The operation id of a hub endpoint. */
export type HubOperationId = keyof typeof hubEndpoints;
