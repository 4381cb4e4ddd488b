import { ensurePostgres, ensureRedis, type RunningService } from '@chit/devstack';

// Mocha root hooks of the e2e run: one Postgres server (DATABASE_URL's, else an embedded one) and one
// Redis (REDIS_URL, else localhost:6379, else a redis-server of its own) for every stack of the run.
// Each stack makes its own database and queue prefix on them (support/stack.ts).
let postgres: RunningService | undefined;
let redis: RunningService | undefined;

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120_000);
    postgres = await ensurePostgres();
    redis = await ensureRedis();
    process.env.CHIT_E2E_POSTGRES_URL = postgres.url;
    process.env.CHIT_E2E_REDIS_URL = redis.url;
  },
  async afterAll() {
    await redis?.stop();
    await postgres?.stop();
  },
};
