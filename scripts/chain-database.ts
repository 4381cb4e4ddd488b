import type { RunningService } from '@chit/devstack';
import { Pool } from 'pg';
import { createPublicClient, http } from 'viem';

/**
 * For `npm start` with DATABASE_URL: a new database on that server for the chain at `rpcUrl`, named
 * after its genesis block (`chit_local_<12 hex digits>`), dropped again by `stop()`. Each `npm start`
 * is a new chain, and the books of an earlier one are wrong on it (the hub refuses them): the
 * database DATABASE_URL names is never written.
 */
export async function databaseForChain(serverUrl: string, rpcUrl: string): Promise<RunningService> {
  const genesis = await createPublicClient({ transport: http(rpcUrl) }).getBlock({ blockNumber: 0n });
  const name = `chit_local_${genesis.hash.slice(2, 14)}`;
  const admin = new Pool({ connectionString: serverUrl, max: 1 });
  admin.on('error', () => {});
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } catch (error) {
    await admin.end();
    throw new Error(
      `with DATABASE_URL set, npm start makes a new database on that server for each new chain, and ` +
        `creating ${name} failed: ${(error as Error).message}. Let DATABASE_URL's user create databases ` +
        '(CREATEDB), or unset DATABASE_URL for an embedded Postgres.',
    );
  }
  const url = new URL(serverUrl);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    source: `DATABASE_URL's server, database ${name} (new for this chain, dropped at exit)`,
    stop: once(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`).catch(() => {});
      await admin.end();
    }),
  };
}

/** `work`, run by the first call only; later calls get the same promise. */
function once(work: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  return () => {
    running ??= work();
    return running;
  };
}
