/**
 * The exchange service alone, without HTTP: how many exchanges per second the rules, the native
 * crypto and Postgres (group commit) sustain in one process. Compare with `npm run bench:hub` to see
 * what the HTTP layer costs.
 *
 *   ts-node --transpile-only -P hub/tsconfig.json hub/bench/service.bench.ts
 */
import { randomBytes } from 'node:crypto';
import { consumerPromiseDigestBytes, encodeMessage, hashlockOf } from '@chit/sdk';
import { enableNativeHashing, nativePreimageSealer } from '@chit/sdk/node';
import { Pool } from 'pg';
import { bytesToHex, type Hex } from 'viem';
import { OperatorSigner } from '../src/crypto/operator-signer';
import { toBytea } from '../src/db/bytes';
import { migrate } from '../src/db/migrator';
import { decodeWire } from '../src/errors/decode-wire';
import { ExchangeService } from '../src/exchange/exchange.service';
import { ExchangeRepository, RevealRepository } from '../src/repositories/exchange.repository';

const WORKERS = Number(process.env.CHIT_BENCH_WORKERS ?? 64);
const EXCHANGES = Number(process.env.CHIT_BENCH_EXCHANGES ?? 300);
const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

async function main(): Promise<void> {
  enableNativeHashing();
  const dbName = `chit_bench_${randomBytes(4).toString('hex')}`;
  const admin = new Pool({ connectionString: ADMIN_URL, max: 1 });
  await admin.query(`CREATE DATABASE ${dbName}`);
  const url = new URL(ADMIN_URL);
  url.pathname = `/${dbName}`;
  const pool = new Pool({ connectionString: url.toString(), max: 16 });
  try {
    await migrate(pool);
    const scope = { hub: bytesToHex(randomBytes(20)) as Hex, chainId: 31337 };
    const operator = new OperatorSigner(bytesToHex(randomBytes(32)));
    const service = new ExchangeService(scope, new ExchangeRepository(pool), new RevealRepository(pool), operator, {
      maxBatch: Number(process.env.EXCHANGE_MAX_BATCH ?? 256),
      concurrency: Number(process.env.EXCHANGE_CONCURRENCY ?? 4),
    });
    const pairs = Array.from({ length: WORKERS }, () => ({
      consumer: new OperatorSigner(bytesToHex(randomBytes(32))),
      provider: bytesToHex(randomBytes(20)) as Hex,
    }));
    await pool.query('INSERT INTO consumers (address, balance) SELECT unnest($1::bytea[]), 10^30', [
      pairs.map((p) => toBytea(p.consumer.address.toLowerCase())),
    ]);
    const seal = nativePreimageSealer(operator.publicKey);
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
        // Parsed JSON, as the HTTP layer would hand it over.
        const body = JSON.parse(
          JSON.stringify({
            promise: encodeMessage(signed),
            encryptedPreimage: seal(preimage),
            ...(previous && { previousPreimage: previous }),
          }),
        );
        previous = preimage;
        return body;
      });
    });
    const latencies: number[] = [];
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    await Promise.all(
      bodies.map(async (sequence) => {
        for (const body of sequence) {
          const t = performance.now();
          await service.exchange(decodeWire('exchangeRequest', body));
          latencies.push(performance.now() - t);
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    latencies.sort((a, b) => a - b);
    const pct = (p: number) => latencies[Math.floor((latencies.length * p) / 100)]!;
    console.log(`service only: ${WORKERS} concurrent providers, ${latencies.length} exchanges`);
    console.log(`exchanges/s: ${Math.round(latencies.length / seconds)}`);
    console.log(`p50 ms: ${pct(50).toFixed(1)}`);
    console.log(`p99 ms: ${pct(99).toFixed(1)}`);
    console.log(
      `cpu µs/exchange (this process, Postgres apart): ${Math.round((cpu.user + cpu.system) / latencies.length)}`,
    );
  } finally {
    await pool.end();
    await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
    await admin.end();
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
