import { ensurePostgres, type RunningService } from '../../src/dev/services';

// Mocha root hooks: one Postgres server for the whole run (DATABASE_URL's, else embedded); each test
// file creates its own database on it (support/postgres.ts).
let postgres: RunningService | undefined;

export const mochaHooks = {
  async beforeAll(this: Mocha.Context) {
    this.timeout(120_000);
    postgres = await ensurePostgres();
    process.env.CHIT_TEST_POSTGRES_URL = postgres.url;
  },
  async afterAll() {
    await postgres?.stop();
  },
};
