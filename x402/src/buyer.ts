// @chit/x402/buyer — the buyer's side only (chitFetch, ChitClientScheme, the typed refusals and the
// wire helpers), without the seller's Node-only parts: what a browser bundle or an agent imports.
export * from './client.js';
export * from './errors.js';
export * from './fetch.js';
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
