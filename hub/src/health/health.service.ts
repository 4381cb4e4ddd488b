import type Redis from 'ioredis';
import type { Pool } from 'pg';
import type { ChainService } from '../chain/chain.service';

/** Readiness: Postgres, Redis and the RPC each answer. */
export class HealthService {
  constructor(
    private readonly pool: Pool,
    private readonly redis: Redis,
    private readonly chain: ChainService,
  ) {}

  async checks(): Promise<{ postgres: boolean; redis: boolean; rpc: boolean }> {
    const [postgres, redis, rpc] = await Promise.all([
      this.pool.query('SELECT 1').then(
        () => true,
        () => false,
      ),
      this.redis.ping().then(
        (answer) => answer === 'PONG',
        () => false,
      ),
      this.chain.ready(),
    ]);
    return { postgres, redis, rpc };
  }
}
