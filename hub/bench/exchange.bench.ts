/**
 * Exchange throughput of one hub process: `npm run bench:hub`.
 *
 * Starts anvil with the contracts, a hub process on the local Postgres (DATABASE_URL, else
 * 127.0.0.1:5432; fsync as the server has it, on by default) and Redis, seeds consumer channels in the
 * books (as the chain follower would after deposits), pre-signs every consumer promise, then drives
 * the hub from this process — the load generator shares the machine — and prints exchanges/s and
 * latency percentiles.
 *
 *   CHIT_BENCH_WORKERS (64)   provider/consumer pairs exchanging in parallel, each in sequence
 *   CHIT_BENCH_EXCHANGES (300) exchanges per pair
 *   CHIT_BENCH_HUB_NODE_FLAGS  flags for the hub's node, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import path from 'node:path';
import { consumerPromiseDigestBytes, encodeMessage, hashlockOf } from '@chit/sdk';
import { enableNativeHashing } from '@chit/sdk/node';
import { Pool } from 'pg';
import { Agent, request } from 'undici';
import { bytesToHex, type Hex } from 'viem';
import { startLocalChain } from '../../scripts/local-chain';
import { OperatorSigner } from '../src/crypto/operator-signer';
import { toBytea } from '../src/db/bytes';
import { ensureRedis, freePort } from '../src/dev/services';

const WORKERS = Number(process.env.CHIT_BENCH_WORKERS ?? 64);
const EXCHANGES = Number(process.env.CHIT_BENCH_EXCHANGES ?? 300);
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function main(): Promise<void> {
  enableNativeHashing();
  const chain = await startLocalChain(await freePort(), 'http://127.0.0.1');
  const redis = await ensureRedis();
  const dbName = `chit_bench_${randomBytes(4).toString('hex')}`;
  const admin = new Pool({ connectionString: ADMIN_URL, max: 1 });
  await admin.query(`CREATE DATABASE ${dbName}`);
  const dbUrl = new URL(ADMIN_URL);
  dbUrl.pathname = `/${dbName}`;
  const fsync = (await admin.query('SHOW fsync')).rows[0].fsync;
  const port = await freePort();
  let hub: ChildProcess | undefined;
  try {
    const nodeFlags = process.env.CHIT_BENCH_HUB_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
    hub = spawn(process.execPath, [...nodeFlags, path.join(__dirname, '..', 'dist', 'main.js'), 'start'], {
      stdio: ['ignore', 'inherit', 'inherit'],
      env: {
        ...process.env,
        DATABASE_URL: dbUrl.toString(),
        REDIS_URL: redis.url,
        RPC_URL: chain.anvil.url,
        HUB_ADDRESS: chain.deployment.hub.address,
        OPERATOR_KEY: chain.accounts[0]!.privateKey,
        PORT: String(port),
        LOG_LEVEL: 'warn',
        QUEUE_PREFIX: `chit-bench-${randomUUID()}`,
        DB_POOL_SIZE: '16',
      },
    });
    const base = `http://127.0.0.1:${port}`;
    for (let i = 0; ; i++) {
      try {
        if ((await fetch(`${base}/ready`)).ok) break;
      } catch {}
      if (i > 300) throw new Error('the hub did not start');
      await new Promise((r) => setTimeout(r, 100));
    }

    // Seed: one consumer per worker with a large channel, as the follower records deposits.
    const pool = new Pool({ connectionString: dbUrl.toString(), max: 2 });
    const scope = { hub: chain.deployment.hub.address as Hex, chainId: chain.deployment.chainId };
    const box = bytesToHex(randomBytes(93));
    const pairs = Array.from({ length: WORKERS }, () => ({
      consumer: new OperatorSigner(bytesToHex(randomBytes(32))),
      provider: bytesToHex(randomBytes(20)) as Hex,
    }));
    await pool.query('INSERT INTO consumers (address, balance) SELECT unnest($1::bytea[]), 10^30', [
      pairs.map((p) => toBytea(p.consumer.address.toLowerCase())),
    ]);
    await pool.end();

    // Pre-sign every promise (native signing; the box is opaque here: each request carries the
    // previous R, so the hub never needs to open it).
    const started = performance.now();
    const bodies = pairs.map(({ consumer, provider }) => {
      const agreementId = bytesToHex(randomBytes(32));
      let previous: Hex | undefined;
      return Array.from({ length: EXCHANGES }, (_, k) => {
        const preimage = bytesToHex(randomBytes(32));
        const total = BigInt(k + 1) * 10n ** 15n;
        const promise = {
          ...scope,
          consumer: consumer.address,
          total,
          hashlock: hashlockOf(preimage),
          agreement: { provider, id: agreementId, total },
        };
        const signed = { ...promise, signature: consumer.signDigest(consumerPromiseDigestBytes(promise)) };
        const body = JSON.stringify({
          promise: encodeMessage(signed),
          encryptedPreimage: box,
          ...(previous && { previousPreimage: previous }),
        });
        previous = preimage;
        return body;
      });
    });
    console.log(`signed ${WORKERS * EXCHANGES} promises in ${((performance.now() - started) / 1000).toFixed(1)} s`);

    const agent = new Agent({ connections: WORKERS, pipelining: 1 });
    const latencies: number[] = [];
    let errors = 0;
    const t0 = performance.now();
    await Promise.all(
      bodies.map(async (sequence) => {
        for (const body of sequence) {
          const t = performance.now();
          const response = await request(`${base}/v1/exchange`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body,
            dispatcher: agent,
          });
          await response.body.text();
          if (response.statusCode !== 200) errors++;
          latencies.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor((latencies.length * p) / 100))]!;
    console.log(
      `hub: 1 process, Postgres fsync=${fsync}, ${WORKERS} concurrent providers, ${latencies.length} exchanges`,
    );
    console.log(`exchanges/s: ${Math.round(latencies.length / seconds)}`);
    console.log(`p50 ms: ${pct(50).toFixed(1)}`);
    console.log(`p99 ms: ${pct(99).toFixed(1)}`);
    console.log(`errors: ${errors}`);
    await agent.close();
  } finally {
    hub?.kill('SIGTERM');
    chain.anvil.process.kill();
    await redis.stop();
    await new Promise((r) => setTimeout(r, 500));
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
