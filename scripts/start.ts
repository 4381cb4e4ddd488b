/**
 * `npm start`: a working local Chit stack with no configuration: anvil with the contracts deployed,
 * Postgres (a new database for the new chain on DATABASE_URL's server, else an embedded one), Redis
 * (REDIS_URL, else localhost:6379, else a redis-server started here), and the hub as its own process.
 * Prints the hub URL and the funded demo accounts; Ctrl-C stops everything.
 *
 *   CHIT_CHAIN_PORT (8545), CHIT_HUB_PORT (8080)
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { ensurePostgres, ensureRedis, type RunningService, requireFreePort } from '@chit/devstack';
import { databaseForChain } from './chain-database';
import { chainBanner, DEMO_FREE_FUNDS, startLocalChain } from './local-chain';

const log = (line: string) => console.log(line);

async function waitForReady(url: string, hub: ChildProcess): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (hub.exitCode !== null) throw new Error(`the hub exited with code ${hub.exitCode} (its output is above)`);
    try {
      if ((await fetch(`${url}/ready`)).ok) return;
    } catch {}
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`the hub did not become ready at ${url}/ready within 30 s`);
}

/** What to do next, in another terminal, from the checkout: the lines end the banner. */
export function nextSteps(hubUrl: string, rpcUrl: string): string[] {
  const defaults = hubUrl === 'http://127.0.0.1:8080' && rpcUrl === 'http://127.0.0.1:8545';
  const env = defaults ? '' : `HUB_URL=${hubUrl} RPC_URL=${rpcUrl} `;
  return [
    'Next, in another terminal from this folder:',
    `  export CHIT_HUB_URL=${hubUrl} CHIT_RPC_URL=${rpcUrl}`,
    '  npx chit hubs                                   # the hubs of the Registry',
    '  npx chit identity new && npx chit identity fund # a provider identity with gas and test tokens',
    `  ${env}node --import tsx examples/pay-per-minute.ts   # a consumer pays a provider, minute by minute`,
    '  docs/providers.md (get paid), docs/integrators.md (pay from an app), docs/operators.md (run a hub)',
  ];
}

async function main(): Promise<void> {
  const chainPort = Number(process.env.CHIT_CHAIN_PORT ?? 8545);
  const hubPort = Number(process.env.CHIT_HUB_PORT ?? 8080);
  const hubUrl = `http://127.0.0.1:${hubPort}`;
  const services: RunningService[] = [];
  let hub: ChildProcess | undefined;
  let chain: Awaited<ReturnType<typeof startLocalChain>> | undefined;
  let stopping = false;
  const stop = async (code = 0) => {
    // Once: Ctrl-C stops the hub, whose exit would call this again.
    if (stopping) return;
    stopping = true;
    const running = hub;
    if (running && running.exitCode === null) {
      // The hub closes its connections before the databases go.
      const exited = new Promise((resolve) => running.once('exit', resolve));
      running.kill('SIGTERM');
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    }
    chain?.anvil.process.kill();
    for (const service of services.reverse()) await service.stop();
    process.exit(code);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());

  try {
    await requireFreePort(hubPort, 'CHIT_HUB_PORT');
    chain = await startLocalChain(chainPort, hubUrl, log, { freeFunds: DEMO_FREE_FUNDS });
    const server = await ensurePostgres(log);
    services.push(server);
    // Every start is a new chain, which needs new books: on DATABASE_URL's server, a database of its own.
    const postgres = server.source === 'DATABASE_URL' ? await databaseForChain(server.url, chain.anvil.url) : server;
    if (postgres !== server) services.push(postgres);
    const redis = await ensureRedis(log);
    services.push(redis);
    log(`Postgres: ${postgres.source}; Redis: ${redis.source} (${redis.url})`);

    hub = spawn(process.execPath, [path.join(__dirname, '..', 'hub', 'dist', 'main.js'), 'start'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        DATABASE_URL: postgres.url,
        REDIS_URL: redis.url,
        RPC_URL: chain.anvil.url,
        HUB_ADDRESS: chain.deployment.hub.address,
        OPERATOR_KEY: chain.accounts[0]!.privateKey,
        PORT: String(hubPort),
        CONFIRMATIONS: process.env.CONFIRMATIONS ?? '0',
        LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
        // Everything else is new on each start: so are the queues.
        QUEUE_PREFIX: process.env.QUEUE_PREFIX ?? `chit-local-${randomUUID()}`,
      },
    });
    await waitForReady(hubUrl, hub);
    log(`\n${chainBanner(chain.anvil.url, chain).join('\n')}`);
    log(`\n${nextSteps(hubUrl, chain.anvil.url).join('\n')}`);
    log(`\nHub running at ${hubUrl} (try ${hubUrl}/v1/info). Press Ctrl-C to stop.`);
    hub.on('exit', (code) => {
      log(`the hub exited (${code}); stopping`);
      void stop(code ?? 1);
    });
  } catch (error) {
    console.error(`npm start failed: ${(error as Error).message}`);
    await stop(1);
  }
}

void main();
