export * from './errors.js';
export * from './hub-client.js';
export * from './hub-directory.js';
export {
  backoffDelay,
  type HubRetryOptions,
  parseRetryAfter,
  type ResolvedRetryOptions,
  resolveRetryOptions,
} from './retry.js';
export * from './schemas.js';
