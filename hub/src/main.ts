#!/usr/bin/env node
import { Command } from 'commander';
import { Pool } from 'pg';
import { startHub, VERSION } from './app';
import { ConfigError, loadConfig } from './config/config';
import { migrate } from './db/migrator';

const program = new Command()
  .name('chit-hub')
  .description('The Chit hub: checks promises, keeps the books in Postgres, settles on-chain in batches.')
  .version(VERSION);

program
  .command('migrate')
  .description('apply the database migrations to DATABASE_URL and exit')
  .action(async () => {
    const { DATABASE_URL } = loadConfig(process.env, ['DATABASE_URL']);
    const pool = new Pool({ connectionString: DATABASE_URL, max: 1 });
    try {
      const applied = await migrate(pool);
      console.log(applied.length ? `applied ${applied.join(', ')}` : 'the database is up to date');
    } finally {
      await pool.end();
    }
  });

program
  .command('start')
  .description('start the hub; every setting comes from the environment (see docs), flags override it')
  .option('--port <port>', 'PORT')
  .option('--host <host>', 'HOST')
  .option('--rpc-url <url>', 'RPC_URL')
  .option('--hub <address>', 'HUB_ADDRESS')
  .option('--role <role>', 'HUB_ROLE: all, api or worker')
  .action(async (flags: { port?: string; host?: string; rpcUrl?: string; hub?: string; role?: string }) => {
    const config = loadConfig({
      ...process.env,
      ...(flags.port && { PORT: flags.port }),
      ...(flags.host && { HOST: flags.host }),
      ...(flags.rpcUrl && { RPC_URL: flags.rpcUrl }),
      ...(flags.hub && { HUB_ADDRESS: flags.hub }),
      ...(flags.role && { HUB_ROLE: flags.role }),
    });
    const hub = await startHub(config);
    const { HUB_ADDRESS, HUB_ROLE } = hub.context.config;
    console.log(`chit-hub ${VERSION} (${HUB_ROLE}) listening on ${hub.url} for hub ${HUB_ADDRESS}`);
  });

program.parseAsync().catch((error: unknown) => {
  console.error(error instanceof ConfigError ? error.message : `chit-hub: ${(error as Error).message}`);
  process.exit(1);
});
