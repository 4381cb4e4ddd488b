// @chit/x402 — the `chit` payment scheme for x402 v2: buyers pay HTTP requests with Chit consumer
// promises (chitFetch), sellers protect routes with @x402/express or @x402/hono (chitPaywall), and the
// hub is the facilitator. docs/x402.md has the wire contract.
export * from './client.js';
export * from './errors.js';
export * from './fastify.js';
export * from './fetch.js';
export * from './gateway.js';
export * from './paywall.js';
export * from './server.js';
export {
  agreementIdOf,
  CHIT_SCHEME,
  type ChitInvoiceExtra,
  type ChitPayload,
  type ChitStaticExtra,
  DYNAMIC_EXTRA_FIELDS,
  due,
  MIB,
  networkOf,
} from './wire.js';
