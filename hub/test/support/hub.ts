import { ensureRedis, type RunningService } from '@chit/devstack';
import { type RunningHub, startHub } from '../../src/app';
import { loadConfig } from '../../src/config/config';
import { startChain } from './chain';
import { createTestDatabase } from './postgres';
import { queuePrefix } from './redis';

/** One hub in this process on its own anvil, database and queue prefix: what most HTTP-level tests need. */
export interface TestStack {
  chain: Awaited<ReturnType<typeof startChain>>;
  db: Awaited<ReturnType<typeof createTestDatabase>>;
  redis: RunningService;
  hub: RunningHub;
  /** Closes the hub, drops the database, stops Redis (if it was started here) and anvil. */
  stop(): Promise<void>;
}

/**
 * Starts a {@link TestStack}; `label` names its queue prefix, `overrides` are hub settings on top of
 * the test defaults (port 0, silent logs). Call it from a `before` hook.
 */
export async function startTestStack(label: string, overrides: Record<string, string> = {}): Promise<TestStack> {
  const chain = await startChain();
  const db = await createTestDatabase();
  const redis = await ensureRedis();
  const hub = await startHub(
    loadConfig({
      DATABASE_URL: db.url,
      REDIS_URL: redis.url,
      RPC_URL: chain.url,
      HUB_ADDRESS: chain.deployment.hub.address,
      OPERATOR_KEY: chain.operatorKey,
      PORT: '0',
      LOG_LEVEL: 'silent',
      QUEUE_PREFIX: queuePrefix(redis.url, label),
      ...overrides,
    }),
  );
  return {
    chain,
    db,
    redis,
    hub,
    async stop() {
      await hub.close();
      await db.drop();
      await redis.stop();
      chain.stop();
    },
  };
}
