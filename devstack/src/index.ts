// @chit/devstack: what `npm start`, the tests and the benches bring up on a developer's machine, each
// from the setting that names one when there is such a setting: Postgres (DATABASE_URL, else an
// embedded server), Redis (REDIS_URL, else localhost:6379, else a redis-server started here), anvil,
// and free ports. A private workspace package, consumed from its TypeScript sources (ts-node, tsx);
// the production hub never loads it, and its image does not install it.

export { ANVIL_CHAIN_ID, type Anvil, anvilBinary, startAnvil } from './anvil';
export { testTokenAbi } from './generated/test-token';
export { freePort, requireFreePort } from './ports';
export { createEmbeddedPostgres, type EmbeddedPostgres, ensurePostgres } from './postgres';
export { ensureRedis, NO_REDIS_MESSAGE, type RunningService, redisAnswers, spawnRedisServer } from './services';
