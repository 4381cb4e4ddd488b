import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import Redis from 'ioredis';
import { freePort } from './ports';

// The services a local hub (npm start) and the tests need, brought up the way README.md promises:
// Postgres from DATABASE_URL, else an embedded one (postgres.ts); Redis from REDIS_URL, else
// localhost:6379, else a redis-server started here, else a message saying how to get one.

export interface RunningService {
  url: string;
  /** What provided it, for the start-up banner. */
  source: string;
  stop(): Promise<void>;
}

/** Whether a Redis answers PING at `url` within a second. */
export async function redisAnswers(url: string): Promise<boolean> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1_000,
  });
  client.on('error', () => {});
  try {
    await client.connect();
    return (await client.ping()) === 'PONG';
  } catch {
    return false;
  } finally {
    client.disconnect();
  }
}

/** A redis-server on 127.0.0.1:`port` that keeps nothing on disk: stopped, it is empty. */
export function spawnRedisServer(port: number): ChildProcess {
  return spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: 'ignore',
  });
}

/** The message for a machine with no Redis at all. */
export const NO_REDIS_MESSAGE =
  'No Redis: REDIS_URL is unset, nothing answers on localhost:6379 and redis-server is not installed. ' +
  'Install it (Debian/Ubuntu: apt-get install redis-server; macOS: brew install redis) or set REDIS_URL.';

/** Redis: REDIS_URL, else localhost:6379, else a redis-server started on a free port. */
export async function ensureRedis(log: (line: string) => void = () => {}): Promise<RunningService> {
  if (process.env.REDIS_URL) {
    return { url: process.env.REDIS_URL, source: 'REDIS_URL', stop: async () => {} };
  }
  const local = 'redis://127.0.0.1:6379';
  if (await redisAnswers(local)) return { url: local, source: 'localhost:6379', stop: async () => {} };
  if (spawnSync('redis-server', ['--version']).status !== 0) throw new Error(NO_REDIS_MESSAGE);
  const port = await freePort();
  log(`starting redis-server on 127.0.0.1:${port} (set REDIS_URL to use your own)`);
  const child = spawnRedisServer(port);
  const url = `redis://127.0.0.1:${port}`;
  for (let i = 0; i < 50 && !(await redisAnswers(url)); i++) await new Promise((r) => setTimeout(r, 100));
  if (!(await redisAnswers(url))) {
    child.kill();
    throw new Error(`redis-server did not answer on ${url}`);
  }
  return {
    url,
    source: 'redis-server',
    async stop() {
      child.kill();
    },
  };
}
