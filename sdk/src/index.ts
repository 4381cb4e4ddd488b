// @chit/sdk — the browser-safe core. Node-only parts (native verification, file stores) are in
// `@chit/sdk/node`; the command line, `chit`, is the package @chit/cli.
export * from './actions/index.js';
export * from './errors/base.js';
export * from './errors/contract.js';
export * from './errors/protocol.js';
export * from './generated/abis.js';
export * from './hub-client/index.js';
export * from './protocol/claims.js';
export * from './protocol/codec.js';
export * from './protocol/eip712.js';
export * from './protocol/hash.js';
export * from './protocol/hashlock.js';
export * from './protocol/keccak.js';
export * from './protocol/preimage-box.js';
export * from './protocol/sign.js';
export * from './protocol/types.js';
export * from './protocol/verifier.js';
export * from './protocol/verify.js';
export * from './sessions/index.js';
export * from './wire/endpoints.js';
export * from './wire/history.js';
export * as wirePrimitives from './wire/primitives.js';
export * from './wire/requests.js';
