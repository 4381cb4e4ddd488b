import assert from 'node:assert/strict';
import { ensureRedis, type RunningService, testTokenAbi } from '@chit/devstack';
import { deposit, HubClient, waitForTransaction } from '@chit/sdk';
import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  type Hash,
  http,
  parseEther,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { type RunningHub, startHub } from '../src/app';
import { type HubConfig, loadConfig } from '../src/config/config';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';

// HUB_ROLE splits one hub into API replicas and a worker (follower + settlement) on one database
// and one Redis, as docker-compose.yml runs it.
describe('HUB_ROLE', () => {
  let chain: Awaited<ReturnType<typeof startChain>>;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: RunningService;
  let prefix: string;
  const hubs: RunningHub[] = [];

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    db = await createTestDatabase();
    redis = await ensureRedis();
    prefix = queuePrefix(redis.url, 'roles');
  });
  after(async () => {
    for (const hub of hubs) await hub.close();
    await db?.drop();
    await redis?.stop();
    chain?.stop();
  });

  async function start(role: HubConfig['HUB_ROLE']): Promise<RunningHub> {
    const hub = await startHub(
      loadConfig({
        DATABASE_URL: db.url,
        REDIS_URL: redis.url,
        RPC_URL: chain.url,
        HUB_ADDRESS: chain.deployment.hub.address,
        OPERATOR_KEY: chain.operatorKey,
        PORT: '0',
        LOG_LEVEL: 'silent',
        QUEUE_PREFIX: prefix,
        CONFIRMATIONS: '0',
        FOLLOWER_POLL_MS: '50',
        HUB_ROLE: role,
      }),
    );
    hubs.push(hub);
    return hub;
  }

  it('refuses a role it does not know, naming HUB_ROLE', () => {
    assert.throws(
      () => loadConfig({ DATABASE_URL: 'postgres://x/y', RPC_URL: 'http://x', HUB_ADDRESS: '0x', HUB_ROLE: 'both' }),
      /HUB_ROLE: Invalid option: expected one of "all"\|"api"\|"worker"/,
    );
  });

  it('an API replica serves the API but follows nothing; the worker follows and serves only operations', async function () {
    this.timeout(60_000);
    const api = await start('api');
    const rpc = createPublicClient({ chain: foundry, transport: http(chain.url) });
    const consumer = privateKeyToAccount(generatePrivateKey());
    const operator = createWalletClient({
      account: privateKeyToAccount(chain.operatorKey),
      chain: foundry,
      transport: http(chain.url),
    });
    const mined = async (hash: Promise<Hash>) => waitForTransaction(rpc, { hash: await hash });
    await createTestClient({ chain: foundry, mode: 'anvil', transport: http(chain.url) }).setBalance({
      address: consumer.address,
      value: parseEther('1'),
    });
    await mined(
      operator.writeContract({
        address: chain.deployment.token.address as Address,
        abi: testTokenAbi,
        functionName: 'mint',
        args: [consumer.address, parseEther('5')],
      }),
    );
    const wallet = createWalletClient({ account: consumer, chain: foundry, transport: http(chain.url) });
    await waitForTransaction(rpc, {
      hash: (await deposit(wallet, { hub: chain.deployment.hub.address as Address, amount: parseEther('5') })).hash,
    });

    const client = new HubClient({ url: api.url });
    const openapi = (await (await fetch(`${api.url}/docs`)).json()) as { openapi: string };
    assert.match(openapi.openapi, /^3\./);
    await new Promise((resolve) => setTimeout(resolve, 500));
    await assert.rejects(
      client.consumer(consumer.address),
      { code: 'UNKNOWN_CONSUMER' },
      'an API replica applies no deposit',
    );

    const worker = await start('worker');
    assert.equal((await fetch(`${worker.url}/v1/info`)).status, 404);
    assert.equal((await fetch(`${worker.url}/v1/exchange`, { method: 'POST' })).status, 404);
    assert.equal((await fetch(`${worker.url}/docs`)).status, 404, "the OpenAPI document is the API replicas'");
    assert.equal((await fetch(`${worker.url}/health`)).status, 200);
    assert.equal((await fetch(`${worker.url}/ready`)).status, 200);
    assert.match(await (await fetch(`${worker.url}/metrics`)).text(), /chit_/);

    for (let i = 0; ; i++) {
      const balance = await client.consumer(consumer.address).then(
        (account) => account.balance,
        () => 0n,
      );
      if (balance === parseEther('5')) break;
      assert.ok(i < 200, 'the worker applied the deposit, and the API replica reads it');
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
});
