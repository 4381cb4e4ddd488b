import assert from 'node:assert/strict';
import { ensureRedis, freePort, type RunningService } from '@chit/devstack';
import { createPublicClient, http } from 'viem';
import { TcpProxy } from '../../test/e2e/support/tcp-proxy';
import { type RunningHub, startHub } from '../src/app';
import { briefRpcError, rpcUnreachable } from '../src/chain/rpc-errors';
import { loadConfig } from '../src/config/config';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';

// The chain RPC out of reach under a running hub: requests that need it answer 503 UNAVAILABLE with a
// message of the hub's own (never the RPC's URL, which may hold an API key), and answer again when it
// is back.
describe('chain RPC out of reach', () => {
  let chain: Awaited<ReturnType<typeof startChain>>;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: RunningService;
  let proxy: TcpProxy;
  let hub: RunningHub;

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    proxy = await TcpProxy.start({ host: '127.0.0.1', port: Number(new URL(chain.url).port) });
    db = await createTestDatabase();
    redis = await ensureRedis();
    hub = await startHub(
      loadConfig({
        DATABASE_URL: db.url,
        REDIS_URL: redis.url,
        RPC_URL: `${proxy.url}/?apikey=secret`,
        HUB_ADDRESS: chain.deployment.hub.address,
        OPERATOR_KEY: chain.operatorKey,
        PORT: '0',
        LOG_LEVEL: 'silent',
        HUB_ROLE: 'api',
        FOLLOWER_POLL_MS: '200',
        QUEUE_PREFIX: queuePrefix(redis.url, 'rpc-outage'),
      }),
    );
  });

  after(async () => {
    await hub?.close();
    await proxy?.close();
    await db?.drop();
    await redis?.stop();
    chain?.stop();
  });

  /** Polls GET /v1/info until it answers `status`, for at most 30 s. */
  async function info(status: number): Promise<{ status: number; text: string }> {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const response = await fetch(`${hub.url}/v1/info`, { signal: AbortSignal.timeout(20_000) });
      const answer = { status: response.status, text: await response.text() };
      if (answer.status === status) return answer;
      assert.ok(Date.now() < deadline, `GET /v1/info still answers ${answer.status}: ${answer.text}`);
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  it('answers /v1/info 503 UNAVAILABLE while the RPC is cut, and 200 when it is back', async function () {
    this.timeout(90_000);
    await info(200);
    await proxy.cut();
    const down = await info(503);
    assert.deepEqual(JSON.parse(down.text), {
      code: 'UNAVAILABLE',
      message: 'The chain RPC is unreachable: try again shortly',
      details: {},
    });
    assert.equal(hub.context.chain.outage.down, true);
    await proxy.restore();
    const up = await info(200);
    assert.equal(JSON.parse(up.text).hub, chain.deployment.hub.address);
  });
});

describe('rpcUnreachable and briefRpcError', () => {
  it('find viem transport errors under the errors wrapping them, and say so in one short line without the URL', async () => {
    const url = `http://127.0.0.1:${await freePort()}/v3/secret-key`;
    const client = createPublicClient({ transport: http(url, { retryCount: 0 }) });
    const error = await client
      .readContract({
        address: '0x0000000000000000000000000000000000000001',
        abi: [
          { type: 'function', name: 'config', inputs: [], outputs: [{ type: 'uint256' }], stateMutability: 'view' },
        ],
        functionName: 'config',
      })
      .catch((caught: unknown) => caught);
    assert.equal(rpcUnreachable(error), true);
    assert.equal(rpcUnreachable(new Error('execution reverted')), false);
    const line = briefRpcError(error, url);
    assert.equal(line, 'HTTP request failed. fetch failed (ECONNREFUSED)');
    assert.doesNotMatch(line, /secret/);
  });
});
