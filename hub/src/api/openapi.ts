import { maxExchangesPerRequest } from '@chit/sdk';
import { STATUS_OF } from '../errors/hub-error';

// The OpenAPI document served at GET /docs: docs/protocol.md's endpoint table, by hand. test/metrics.test.ts
// checks that every route the app serves is in it.

type Schema = Record<string, unknown>;

const ref = (name: string): Schema => ({ $ref: `#/components/schemas/${name}` });
const string = (description: string, pattern?: string): Schema => ({ type: 'string', description, pattern });
const address = string('address', '^0x[0-9a-fA-F]{40}$');
const bytes32 = string('32 bytes, hex', '^0x[0-9a-fA-F]{64}$');
const hex = string('bytes, hex', '^0x[0-9a-fA-F]*$');
const signature = string('65 bytes r || s || v, hex, v = 27 or 28', '^0x[0-9a-fA-F]{128}1[bcBC]$');
const sealedPreimage = string('93 bytes, hex: R sealed to the hub key (sealPreimage)', '^0x[0-9a-fA-F]{186}$');
const decimal = string('decimal string (amount, unix seconds or nonce)', '^[0-9]+$');
const object = (properties: Record<string, Schema>, optional: string[] = []): Schema => ({
  type: 'object',
  properties,
  required: Object.keys(properties).filter((key) => !optional.includes(key)),
});
const nullable = (schema: Schema): Schema => ({ oneOf: [schema, { type: 'null' }] });
const scope = { hub: address, chainId: { type: 'integer' } };
const readiness = object(
  {
    status: { type: 'string', enum: ['ready', 'unavailable'] },
    checks: { type: 'object' },
    reasons: object({ follower: { type: 'string' } }, ['follower']),
  },
  ['reasons'],
);
const accepted = object({ id: { type: 'string' }, status: ref('SettlementStatus') });

const schemas: Record<string, Schema> = {
  Error: object({
    code: { type: 'string', enum: Object.keys(STATUS_OF) },
    message: { type: 'string' },
    details: { type: 'object' },
  }),
  SettlementStatus: { type: 'string', enum: ['queued', 'submitted', 'confirmed', 'failed', 'retrying'] },
  ConsumerPromise: object({
    ...scope,
    consumer: address,
    total: decimal,
    hashlock: bytes32,
    agreement: object({ provider: address, id: bytes32, total: decimal }),
    signature,
  }),
  HubPromise: object({ ...scope, provider: address, total: decimal, hashlock: bytes32, signature }),
  ExchangeRequest: object(
    { promise: ref('ConsumerPromise'), previousPreimage: bytes32, encryptedPreimage: sealedPreimage },
    ['previousPreimage'],
  ),
  ExchangeResult: {
    oneOf: [object({ hubPromise: ref('HubPromise') }), object({ error: ref('Error') })],
    description: 'The answer POST /v1/exchange would give this item alone: a hub promise, or its error',
  },
  Reveal: object({ ...scope, provider: address, preimage: bytes32 }),
  RecoveryRequest: object({ ...scope, provider: address, issuedAt: decimal, signature }),
  Info: object({
    ...scope,
    registry: address,
    token: address,
    operator: address,
    publicKey: hex,
    fee: { type: 'integer', description: 'basis points' },
    pendingFee: nullable(object({ fee: { type: 'integer' }, effectiveAt: decimal })),
    stake: decimal,
    freeFunds: decimal,
    status: { type: 'string', enum: ['active', 'punished', 'closing', 'closed'] },
    consumersPaused: { type: 'boolean' },
    version: { type: 'string' },
  }),
  X402Requirements: {
    ...object({
      scheme: { type: 'string', const: 'chit' },
      network: string('CAIP-2: eip155:<chainId>'),
      asset: address,
      amount: decimal,
      payTo: address,
      maxTimeoutSeconds: { type: 'number' },
      extra: { type: 'object' },
    }),
    description: 'x402 v2 PaymentRequirements of the chit scheme; extra: hub, hubUrl, pricePerMiB, agreementSalt',
  },
  X402Request: object({
    x402Version: { type: 'integer', const: 2 },
    paymentPayload: object(
      {
        x402Version: { type: 'integer', const: 2 },
        accepted: {
          ...ref('X402Requirements'),
          description: 'as the 402 offered it: extra also holds the invoice (nonce, hashlock, expiresAt)',
        },
        payload: object(
          {
            promise: ref('ConsumerPromise'),
            usage: object({ requests: decimal, bytes: decimal }),
            encryptedPreimage: sealedPreimage,
          },
          ['usage', 'encryptedPreimage'],
        ),
        resource: { type: 'object' },
        extensions: { type: 'object' },
      },
      ['resource', 'extensions'],
    ),
    paymentRequirements: ref('X402Requirements'),
  }),
  Consumer: object({
    address,
    balance: decimal,
    settled: decimal,
    promised: decimal,
    credited: decimal,
    available: decimal,
    pendingExit: nullable(object({ amount: decimal, readyAt: decimal })),
    latestPromise: nullable(ref('ConsumerPromise')),
  }),
  Provider: object({
    address,
    earned: decimal,
    settled: decimal,
    unsettled: decimal,
    latestPromise: nullable(ref('HubPromise')),
  }),
};

const json = (schema: Schema) => ({ content: { 'application/json': { schema } } });

/**
 * An operation: its answer on success and the error statuses it may give (besides 500, and those of the
 * HTTP layer: 413 and 415 with a body, 414 with a path parameter, 429 unless the route is `unlimited`).
 */
function operation(
  summary: string,
  success: [status: number, schema: Schema],
  options: { body?: Schema; errors?: number[]; parameters?: Schema[]; unlimited?: boolean } = {},
): Schema {
  const httpLayer = [
    ...(options.body ? [400, 413, 415] : []),
    ...(options.parameters?.some((parameter) => parameter.in === 'path') ? [400, 414] : []),
    ...(options.unlimited ? [] : [429]),
  ];
  const errors = [...new Set([...(options.errors ?? []), ...httpLayer, 500])].sort((a, b) => a - b);
  return {
    summary,
    parameters: options.parameters,
    requestBody: options.body && { required: true, ...json(options.body) },
    responses: {
      [success[0]]: { description: 'success', ...json(success[1]) },
      ...Object.fromEntries(errors.map((status) => [status, { description: 'error', ...json(ref('Error')) }])),
    },
  };
}

const inPath = (name: string, schema: Schema) => ({ name, in: 'path', required: true, schema });
const post = 400;
const conflict = 409;
const missing = 404;

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'Chit hub',
    version: '0.1.0',
    description:
      'Amounts, timestamps and nonces are decimal strings. Every request is idempotent. See docs/protocol.md.',
  },
  paths: {
    '/v1/info': { get: operation('The hub: chain, contracts, operator, fee, stake, status', [200, ref('Info')]) },
    '/v1/exchange': {
      post: operation('Swap a consumer promise for a hub promise', [200, object({ hubPromise: ref('HubPromise') })], {
        body: ref('ExchangeRequest'),
        errors: [post, missing, conflict, 503],
      }),
    },
    '/v1/exchanges': {
      post: operation(
        `Swap 1 to ${maxExchangesPerRequest} consumer promises at once: per-item answers in request order`,
        [
          200,
          {
            ...object({ results: { type: 'array', items: ref('ExchangeResult') } }),
            example: {
              results: [
                {
                  hubPromise: {
                    hub: '0x4859E602e6ffac40ef337bB9B9Df6a4D9CF43b51',
                    chainId: 31337,
                    provider: '0xaf295d3c842bc1145E818d7FEf2c929726625620',
                    total: '7000000000000000',
                    hashlock: '0x852bac3b0a8c59dc25c970dd80c3fd75d4d3dc50e1a42413a414221dac7cc44e',
                    signature: '0x…65 bytes…',
                  },
                },
                {
                  error: {
                    code: 'OVERSPEND',
                    message: 'The consumer has promised more than its channel holds',
                    details: { owed: '12000000000000000', available: '10000000000000000' },
                  },
                },
              ],
            },
          },
        ],
        {
          body: object({
            exchanges: {
              type: 'array',
              minItems: 1,
              maxItems: maxExchangesPerRequest,
              items: ref('ExchangeRequest'),
            },
          }),
          errors: [post, 503],
        },
      ),
    },
    '/v1/reveal': {
      post: operation('Reveal the R of a hub promise', [200, object({ revealed: { type: 'boolean', const: true } })], {
        body: ref('Reveal'),
        errors: [post, missing],
      }),
    },
    '/v1/recovery': {
      post: operation(
        'Get the latest hub promise, re-signed, and its R back',
        [200, object({ hubPromise: nullable(ref('HubPromise')), preimage: nullable(bytes32) })],
        { body: ref('RecoveryRequest'), errors: [post] },
      ),
    },
    '/v1/consumers/{address}': {
      get: operation('A consumer channel and its books', [200, ref('Consumer')], {
        parameters: [inPath('address', address)],
        errors: [post, missing],
      }),
    },
    '/v1/providers/{address}': {
      get: operation("A provider's books", [200, ref('Provider')], {
        parameters: [inPath('address', address)],
        errors: [post, missing],
      }),
    },
    '/v1/quotes/settlement': {
      get: operation(
        "A fee quote for settling the provider's latest hub promise",
        [
          200,
          object({
            provider: address,
            amount: decimal,
            hubFee: decimal,
            relayerFee: decimal,
            relayer: string(
              "address: the hub's relayer, which the provider's SettlementAuthorization must name",
              '^0x[0-9a-fA-F]{40}$',
            ),
            gasPrice: decimal,
            validUntil: decimal,
          }),
        ],
        { parameters: [{ name: 'provider', in: 'query', required: true, schema: address }], errors: [post, missing] },
      ),
    },
    '/v1/quotes/relay': {
      get: operation(
        'A relayer fee quote for a relayed registration (kind=identity; kind=identity-permit when the relayer also submits the identity’s permit of the fee) or beneficiary change (kind=beneficiary)',
        [
          200,
          object({
            kind: { type: 'string', enum: ['identity', 'identity-permit', 'beneficiary'] },
            relayerFee: decimal,
            relayer: string(
              "address: the hub's relayer, which the identity's RegisterIdentity must name",
              '^0x[0-9a-fA-F]{40}$',
            ),
            gasPrice: decimal,
            validUntil: decimal,
          }),
        ],
        {
          parameters: [
            {
              name: 'kind',
              in: 'query',
              required: true,
              schema: { type: 'string', enum: ['identity', 'identity-permit', 'beneficiary'] },
            },
          ],
          errors: [post],
        },
      ),
    },
    '/v1/settlements': {
      post: operation('Settle a hub promise through the relayer', [202, accepted], {
        body: object({ provider: address, relayerFee: decimal, authorization: signature }),
        errors: [post, missing, conflict],
      }),
    },
    '/v1/settlements/{id}': {
      get: operation(
        'A settlement and its transaction',
        [
          200,
          object({
            id: { type: 'string' },
            kind: { type: 'string', enum: ['consumer', 'provider', 'identity', 'beneficiary'] },
            status: ref('SettlementStatus'),
            txHash: nullable(bytes32),
            error: nullable({ type: 'string' }),
          }),
        ],
        { parameters: [inPath('id', { type: 'string' })], errors: [missing] },
      ),
    },
    '/v1/exits/instant': {
      post: operation(
        "The operator's InstantExit co-signature, for the consumer's signed InstantExitRequest",
        [200, object({ consumer: address, amount: decimal, nonce: decimal, deadline: decimal, signature })],
        {
          body: object({ consumer: address, amount: decimal, issuedAt: decimal, signature }),
          errors: [post, missing, conflict],
        },
      ),
    },
    '/v1/relay/identities': {
      post: operation('Relay a Registry identity registration', [202, accepted], {
        body: object(
          {
            identity: address,
            beneficiary: address,
            relayerFee: decimal,
            signature,
            permit: object({ deadline: decimal, signature }),
          },
          ['permit'],
        ),
        errors: [post, conflict],
      }),
    },
    '/v1/relay/beneficiaries': {
      post: operation('Relay a Registry beneficiary change', [202, accepted], {
        body: object({ identity: address, beneficiary: address, signature }),
        errors: [post, conflict],
      }),
    },
    '/x402/supported': {
      get: operation('x402 facilitator: the chit scheme on this hub chain, its terms and signer', [
        200,
        object({
          kinds: {
            type: 'array',
            items: object({
              x402Version: { type: 'integer', const: 2 },
              scheme: { type: 'string', const: 'chit' },
              network: string('CAIP-2: eip155:<chainId>'),
              extra: object({
                hub: address,
                token: address,
                operator: address,
                fee: { type: 'integer' },
                publicKey: hex,
              }),
            }),
          },
          extensions: { type: 'array', items: { type: 'string' } },
          signers: { type: 'object', description: '{ "eip155:*": [operator] }' },
        }),
      ]),
    },
    '/x402/verify': {
      post: operation(
        'x402 facilitator: whether settling the payment now would succeed and credit at least the price; writes nothing. A refused payment is a 200 with isValid false',
        [
          200,
          object(
            {
              isValid: { type: 'boolean' },
              payer: address,
              extra: object({ increment: decimal }),
              invalidReason: { type: 'string', description: 'an error code of the hub, or an x402 one (UNDERPAID, …)' },
              invalidMessage: { type: 'string' },
            },
            ['payer', 'extra', 'invalidReason', 'invalidMessage'],
          ),
        ],
        { body: ref('X402Request'), errors: [post, 503] },
      ),
    },
    '/x402/settle': {
      post: operation(
        'x402 facilitator: exchange the payment (payload.encryptedPreimage required) as POST /v1/exchange does. A refused payment is a 200 with success false',
        [
          200,
          object(
            {
              success: { type: 'boolean' },
              transaction: { type: 'string', const: '' },
              network: string('CAIP-2: eip155:<chainId>'),
              payer: address,
              amount: { ...decimal, description: 'the increment credited' },
              extra: object({ hubPromise: ref('HubPromise') }),
              errorReason: { type: 'string', description: 'an error code of the hub, or an x402 one (UNDERPAID, …)' },
              errorMessage: { type: 'string' },
            },
            ['payer', 'amount', 'extra', 'errorReason', 'errorMessage'],
          ),
        ],
        { body: ref('X402Request'), errors: [post, 503] },
      ),
    },
    '/health': {
      get: operation('Alive while the process runs', [200, object({ status: { type: 'string' } })], {
        unlimited: true,
      }),
    },
    '/ready': {
      get: {
        summary: 'Ready (200) when Postgres, Redis and the RPC answer and the chain follower keeps up, else 503',
        responses: Object.fromEntries(
          [200, 503].map((status) => [status, { description: `${status}`, ...json(readiness) }]),
        ),
      },
    },
    '/metrics': {
      get: {
        summary: 'Prometheus metrics',
        responses: {
          200: {
            description: 'Prometheus text format 0.0.4',
            content: { 'text/plain': { schema: { type: 'string' } } },
          },
        },
      },
    },
    '/docs': {
      get: {
        summary: 'This OpenAPI document',
        responses: {
          200: { description: 'OpenAPI 3.1', ...json({ type: 'object' }) },
          429: { description: 'error', ...json(ref('Error')) },
        },
      },
    },
  },
  components: { schemas },
} as const;
