import { randomBytes } from 'node:crypto';
import { Pool } from 'pg';
import { migrate } from '../../src/db/migrator';

/** The server tests create their databases on, set up by the root hooks (support/hooks.ts). */
const adminUrl = (): string => {
  const url = process.env.CHIT_TEST_POSTGRES_URL;
  if (!url) throw new Error('no test Postgres: run the hub tests with mocha (test/support/hooks.ts)');
  return url;
};

/** A fresh, migrated database of its own for one test file, dropped by `drop()`. */
export async function createTestDatabase(): Promise<{ url: string; pool: Pool; drop(): Promise<void> }> {
  const name = `chit_test_${randomBytes(6).toString('hex')}`;
  const admin = new Pool({ connectionString: adminUrl(), max: 1 });
  admin.on('error', () => {});
  await admin.query(`CREATE DATABASE ${name}`);
  const url = new URL(adminUrl());
  url.pathname = `/${name}`;
  const pool = new Pool({ connectionString: url.toString(), max: 10 });
  // Idle clients are cut when the database is dropped; that is expected here.
  pool.on('error', () => {});
  await migrate(pool);
  return {
    url: url.toString(),
    pool,
    async drop() {
      await pool.end();
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    },
  };
}
