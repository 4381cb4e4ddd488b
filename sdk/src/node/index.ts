// @chit/sdk/node — the Node-only parts of the SDK.

export * from './file-store.js';
export * from './hub-http.js';
export * from './native-account.js';
export * from './native-hashing.js';
export * from './native-preimage.js';
export * from './native-verifier.js';
