// @chit/x402 — the `chit` payment scheme for x402 v2: buyers pay HTTP requests with Chit consumer
// promises (chitFetch), sellers protect routes with @x402/express, @x402/hono (chitPaywall) or Fastify
// (chitFastify) or sell a whole API through the gateway (startGateway), and the
// hub is the facilitator. docs/x402.md has the wire contract.
// The buyer's side (also alone as @chit/x402/buyer, for browsers), then the seller's.
export * from './buyer.js';
export * from './fastify.js';
export * from './gateway.js';
export * from './paywall.js';
export * from './server.js';
