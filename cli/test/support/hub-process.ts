/**
 * The hub service (hub/) as a child process for the command line's tests, run from its sources with
 * ts-node as hub/test does (so no hub build is needed), on a chain of the SDK's test support
 * (sdk/test/support/chain.ts), a database of its own and a queue prefix of its own. Postgres and Redis
 * come as for the hub's tests (@chit/devstack): DATABASE_URL, else an embedded server;
 * REDIS_URL, else localhost:6379, else a redis-server.
 *
 *   const hub = await startHubProcess({ chain });
 *   await hub.stop();          // SIGTERM, waits for the exit: the hub is gone
 *   after(() => hub.cleanup()); // kills it if needed, drops its database and queue keys
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { bytesToHex } from 'viem';
import type { TestChain } from '../../../sdk/test/support/chain.js';

const HUB = fileURLToPath(new URL('../../../hub/', import.meta.url));

// The hub's own dependencies and helpers, loaded from hub/ (the command line does not depend on them).
const fromHub = createRequire(path.join(HUB, 'package.json'));

interface RunningService {
  url: string;
  stop(): Promise<void>;
}

interface HubServices {
  ensurePostgres(): Promise<RunningService>;
  ensureRedis(): Promise<RunningService>;
  freePort(): Promise<number>;
}

interface Pool {
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
  on(event: 'error', listener: () => void): void;
}

interface Redis {
  connect(): Promise<void>;
  scan(cursor: string, ...args: (string | number)[]): Promise<[string, string[]]>;
  del(...keys: string[]): Promise<number>;
  disconnect(): void;
  on(event: 'error', listener: () => void): void;
}

/** A hub process: its URL, and the means to stop it. */
export interface HubProcess {
  url: string;
  /** Whether the process is running. */
  readonly running: boolean;
  /** Its last lines of output, for failure messages. */
  logs(): string;
  /** Stops it with SIGTERM (a graceful shutdown) and waits for the exit. */
  stop(): Promise<void>;
  /** Kills it if it runs, drops its database and deletes its queue keys. */
  cleanup(): Promise<void>;
}

/**
 * Starts the hub of `chain` (its first Hub, operated by account #0) as a process, and waits until it
 * listens (60 s at most).
 *
 * @example
 * const hub = await startHubProcess({ chain, env: { LOG_LEVEL: 'info' } });
 */
export async function startHubProcess(options: {
  chain: TestChain;
  env?: Record<string, string>;
}): Promise<HubProcess> {
  const services: HubServices = await import('@chit/devstack');
  const postgres = await services.ensurePostgres();
  const redis = await services.ensureRedis();
  const cleanups: (() => Promise<unknown>)[] = [() => redis.stop(), () => postgres.stop()];
  const cleanup = async () => {
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
  };

  try {
    const name = `chit_cli_${randomBytes(6).toString('hex')}`;
    const { Pool } = fromHub('pg') as { Pool: new (options: { connectionString: string; max: number }) => Pool };
    const admin = new Pool({ connectionString: postgres.url, max: 1 });
    admin.on('error', () => {});
    await admin.query(`CREATE DATABASE ${name}`);
    cleanups.push(async () => {
      await admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await admin.end();
    });
    const database = new URL(postgres.url);
    database.pathname = `/${name}`;

    const prefix = `chit-cli-${randomBytes(6).toString('hex')}`;
    cleanups.push(async () => {
      const Client = fromHub('ioredis') as new (url: string, options: object) => Redis;
      const client = new Client(redis.url, { lazyConnect: true, maxRetriesPerRequest: 1 });
      client.on('error', () => {});
      await client.connect();
      let cursor = '0';
      do {
        const [next, keys] = await client.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await client.del(...keys);
      } while (cursor !== '0');
      client.disconnect();
    });

    const port = await services.freePort();
    const url = `http://127.0.0.1:${port}`;
    const child: ChildProcess = spawn(
      process.execPath,
      ['-r', 'ts-node/register/transpile-only', path.join('src', 'main.ts'), 'start'],
      {
        cwd: HUB,
        env: {
          ...process.env,
          DATABASE_URL: database.toString(),
          REDIS_URL: redis.url,
          RPC_URL: options.chain.url,
          HUB_ADDRESS: options.chain.hub,
          OPERATOR_KEY: bytesToHex(options.chain.account(0).getHdKey().privateKey!),
          HOST: '127.0.0.1',
          PORT: String(port),
          LOG_LEVEL: 'warn',
          QUEUE_PREFIX: prefix,
          CONFIRMATIONS: '0',
          FOLLOWER_POLL_MS: '100',
          SETTLEMENT_SCAN_INTERVAL_MS: '3600000',
          ...options.env,
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const running = () => child.exitCode === null && child.signalCode === null;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    const kill = () => child.kill('SIGKILL');
    process.once('exit', kill);
    cleanups.push(async () => {
      process.off('exit', kill);
      if (running()) {
        child.kill('SIGKILL');
        await exited;
      }
    });

    let lines: string[] = [];
    let listening = false;
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        if (line.includes('listening on')) listening = true;
        lines.push(line);
      }
      if (lines.length > 400) lines = lines.slice(-200);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const logs = () => lines.join('\n');
    const deadline = Date.now() + 60_000;
    while (!listening) {
      if (!running()) throw new Error(`the hub exited (${child.exitCode ?? child.signalCode}):\n${logs()}`);
      if (Date.now() > deadline) throw new Error(`the hub did not listen within 60 s:\n${logs()}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }

    return {
      url,
      get running() {
        return running();
      },
      logs,
      async stop() {
        if (!running()) return;
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
        await exited;
        clearTimeout(timer);
      },
      cleanup,
    };
  } catch (error) {
    await cleanup();
    throw error;
  }
}
