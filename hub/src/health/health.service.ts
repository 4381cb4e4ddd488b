import type Redis from 'ioredis';
import type { Pool } from 'pg';
import type { ChainService } from '../chain/chain.service';

/** How long a dependency may take to answer a readiness check before it counts as down. */
const CHECK_TIMEOUT_MS = 2_000;

/**
 * Readiness: Postgres, Redis and the RPC each answer, each within {@link CHECK_TIMEOUT_MS}. A client
 * that queues commands while its server is away (the hub's Redis client does, so that jobs survive a
 * restart) would otherwise hold the check until the server is back.
 */
export class HealthService {
  constructor(
    private readonly pool: Pool,
    private readonly redis: Redis,
    private readonly chain: ChainService,
  ) {}

  async checks(): Promise<{ postgres: boolean; redis: boolean; rpc: boolean }> {
    const [postgres, redis, rpc] = await Promise.all([
      answers(this.pool.query('SELECT 1').then(() => true)),
      answers(this.redis.ping().then((answer) => answer === 'PONG')),
      answers(this.chain.ready()),
    ]);
    return { postgres, redis, rpc };
  }
}

/** What `check` resolves to, or false when it fails or takes longer than the timeout. */
async function answers(check: Promise<boolean>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([check.catch(() => false), timeout]);
  } finally {
    clearTimeout(timer);
  }
}
