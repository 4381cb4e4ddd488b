import { ensurePostgres, type RunningService } from '@chit/devstack';
import { dropQueuePrefixes } from './redis';

// Mocha root hooks: one Postgres server for the whole run (DATABASE_URL's, else embedded); each test
// file creates its own database on it (support/postgres.ts). Each file's queue keys are deleted after
// its own `after` hooks have closed its hubs (support/redis.ts).
let postgres: RunningService | undefined;

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120_000);
    postgres = await ensurePostgres();
    process.env.CHIT_TEST_POSTGRES_URL = postgres.url;
    // Appended to each file's top-level suites, so they run after that file's own `after` hooks.
    for (const suite of this.test?.parent?.suites ?? []) {
      suite.afterAll('delete the queue keys of this file', dropQueuePrefixes);
    }
  },
  async afterAll() {
    await dropQueuePrefixes();
    await postgres?.stop();
  },
};
