import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { ensureRedis, freePort, type RunningService } from '@chit/devstack';
import { encodeMessage, newHashlock, sealPreimage, signConsumerPromise } from '@chit/sdk';
import { type Hex, keccak256, toHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { toBytea } from '../src/db/bytes';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';

// Two hub processes (replicas) on one database: concurrent exchanges for one consumer, spread over
// both, never credit more than the consumer's channel holds.
describe('hub replicas', () => {
  let chain: Awaited<ReturnType<typeof startChain>>;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: RunningService;
  const hubs: { process: ChildProcess; url: string }[] = [];

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    db = await createTestDatabase();
    redis = await ensureRedis();
    // Both replicas share one queue namespace, of their own.
    const prefix = queuePrefix(redis.url, 'replicas');
    for (let i = 0; i < 2; i++) {
      const port = await freePort();
      const child = spawn(process.execPath, [path.join(__dirname, '..', 'dist', 'main.js'), 'start'], {
        stdio: ['ignore', 'ignore', 'inherit'],
        env: {
          ...process.env,
          DATABASE_URL: db.url,
          REDIS_URL: redis.url,
          RPC_URL: chain.url,
          HUB_ADDRESS: chain.deployment.hub.address,
          OPERATOR_KEY: chain.operatorKey,
          PORT: String(port),
          LOG_LEVEL: 'warn',
          QUEUE_PREFIX: prefix,
          EXCHANGE_CONCURRENCY: '4',
        },
      });
      hubs.push({ process: child, url: `http://127.0.0.1:${port}` });
    }
    for (const hub of hubs) {
      for (let i = 0; ; i++) {
        try {
          if ((await fetch(`${hub.url}/ready`)).ok) break;
        } catch {}
        if (hub.process.exitCode !== null || i > 300) throw new Error(`hub ${hub.url} did not start`);
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
  });

  after(async () => {
    for (const hub of hubs) hub.process.kill('SIGTERM');
    await Promise.all(hubs.map((hub) => new Promise((resolve) => hub.process.once('exit', resolve))));
    await db?.drop();
    await redis?.stop();
    chain?.stop();
  });

  it('credit a consumer paid by 50 providers at once exactly up to its balance', async () => {
    const consumer = privateKeyToAccount(generatePrivateKey());
    const ether = (n: number) => BigInt(n) * 10n ** 18n;
    await db.pool.query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
      toBytea(consumer.address.toLowerCase()),
      ether(30).toString(),
    ]);
    const info = (await (await fetch(`${hubs[0]!.url}/v1/info`)).json()) as { publicKey: Hex };
    const scope = { hub: chain.deployment.hub.address as Hex, chainId: chain.deployment.chainId };
    const bodies = [];
    for (let i = 0; i < 50; i++) {
      const provider = privateKeyToAccount(generatePrivateKey()).address;
      const { preimage, hashlock } = newHashlock();
      const promise = await signConsumerPromise(consumer, {
        ...scope,
        consumer: consumer.address,
        total: ether(i + 1),
        hashlock,
        agreement: { provider, id: keccak256(toHex(provider)), total: ether(1) },
      });
      bodies.push({ promise: encodeMessage(promise), encryptedPreimage: sealPreimage(info.publicKey, preimage) });
    }
    const answers = await Promise.all(
      bodies.map(async (body, i) => {
        const response = await fetch(`${hubs[i % 2]!.url}/v1/exchange`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        return { status: response.status, body: (await response.json()) as { code?: string } };
      }),
    );
    const accepted = answers.filter((a) => a.status === 200);
    assert.equal(accepted.length, 30);
    for (const refused of answers.filter((a) => a.status !== 200)) {
      assert.equal(refused.status, 409);
      assert.equal(refused.body.code, 'OVERSPEND');
    }
    const books = await db.pool.query('SELECT credited::text FROM consumers WHERE address = $1', [
      toBytea(consumer.address.toLowerCase()),
    ]);
    assert.equal(books.rows[0].credited, ether(30).toString());
    const promised = await db.pool.query('SELECT sum(increment)::text AS total FROM exchanges WHERE consumer = $1', [
      toBytea(consumer.address.toLowerCase()),
    ]);
    assert.equal(promised.rows[0].total, ether(30).toString());
  });
});
