import type Redis from 'ioredis';
import type { Pool } from 'pg';
import type { ChainService } from '../chain/chain.service';
import type { FollowerHealth } from '../chain/follower/follower.service';

/** How long a dependency may take to answer a readiness check before it counts as down. */
const CHECK_TIMEOUT_MS = 2_000;

/** Each check's outcome; `follower` only in a process that runs the chain follower. */
export interface ReadinessChecks {
  postgres: boolean;
  redis: boolean;
  rpc: boolean;
  follower?: boolean;
}

/** The checks, and why a failed one failed where that is known (`follower`). */
export interface Readiness {
  checks: ReadinessChecks;
  reasons: { follower?: string };
}

/**
 * Readiness: Postgres, Redis and the RPC each answer, each within {@link CHECK_TIMEOUT_MS}, and the
 * chain follower of this process (if it runs one) keeps up. A client that queues commands while its
 * server is away (the hub's Redis client does, so that jobs survive a restart) would otherwise hold
 * the check until the server is back.
 */
export class HealthService {
  constructor(
    private readonly pool: Pool,
    private readonly redis: Redis,
    private readonly chain: ChainService,
    private readonly follower?: () => FollowerHealth,
  ) {}

  async checks(): Promise<Readiness> {
    const [postgres, redis, rpc] = await Promise.all([
      answers(this.pool.query('SELECT 1').then(() => true)),
      answers(this.redis.ping().then((answer) => answer === 'PONG')),
      answers(this.chain.ready()),
    ]);
    if (!this.follower) return { checks: { postgres, redis, rpc }, reasons: {} };
    const follower = this.follower();
    return {
      checks: { postgres, redis, rpc, follower: follower.ok },
      reasons: follower.reason === undefined ? {} : { follower: follower.reason },
    };
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
