import type { ChildProcess } from 'node:child_process';
import { freePort, redisAnswers, spawnRedisServer } from '@chit/devstack';
import Redis from 'ioredis';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * A redis-server of a test's own on a fixed free port, which it can kill (SIGKILL) and start again on
 * the same port. It keeps nothing on disk (`--save ''`, `--appendonly no`): after a restart it is
 * empty, as a Redis that lost its data. Never the shared Redis of the run, which others use.
 *
 *   const redis = await RedisServer.start();
 *   await stack.hub.restart({ REDIS_URL: redis.url });
 *   await redis.kill(); await redis.restart();
 */
export class RedisServer {
  #child: ChildProcess | undefined;

  private constructor(readonly port: number) {}

  static async start(): Promise<RedisServer> {
    const server = new RedisServer(await freePort());
    await server.restart();
    return server;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** Starts it (empty) and waits until it answers PING. */
  async restart(): Promise<void> {
    if (this.running) throw new Error('redis-server is running already');
    this.#child = spawnRedisServer(this.port);
    for (let i = 0; i < 100; i++) {
      if (await redisAnswers(this.url)) return;
      await sleep(50);
    }
    throw new Error(`redis-server did not answer on ${this.url}`);
  }

  /** Kills it at once (SIGKILL): everything it held is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    await new Promise((resolve) => {
      child.once('exit', resolve);
      child.kill('SIGKILL');
    });
  }

  /** Keys whose name matches `pattern` (to look at the hub's queues). */
  async keys(pattern: string): Promise<string[]> {
    const client = new Redis(this.url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
    client.on('error', () => {});
    try {
      await client.connect();
      return await client.keys(pattern);
    } finally {
      client.disconnect();
    }
  }
}
