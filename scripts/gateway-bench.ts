/**
 * Paid requests per second through `chit provide http`'s gateway: `npm run bench:gateway`.
 *
 * Brings up the e2e stack (anvil with the contracts, the hub as its own process on Postgres and Redis,
 * see test/e2e/support/stack.ts), a toy API on node:http in a process of its own
 * (scripts/gateway-bench-api.ts), and the gateway in this process in front of it. CHIT_BENCH_BUYERS
 * buyers (fresh consumers with deposits, in a process of their own: scripts/gateway-bench-buyers.ts)
 * each make CHIT_BENCH_WARMUP paid requests, not counted, then CHIT_BENCH_REQUESTS, counted, in
 * sequence, all buyers at once, through chitFetch (@x402/fetch with the chit scheme): the first one a
 * 402, sign, paid retry, the hub's /x402/verify; the later ones signed at once for the seller's next
 * invoice (one round trip), checked by the seller alone; the API, the exchange at the hub. It prints paid
 * requests/s and latency percentiles of a whole paid request, beside the same requests sent straight
 * to the API, and checks that the hub credited exactly what the buyers paid, and the CPU per paid
 * request of each: the gateway (this process), the API, the hub, Postgres, the buyers. They share the machine.
 *
 *   CHIT_BENCH_BUYERS (16)     buyers paying at once
 *   CHIT_BENCH_REQUESTS (50)   paid requests per buyer, counted
 *   CHIT_BENCH_WARMUP (10)     paid requests per buyer before those, not counted: each agreement's first
 *                              payment (a 402, then the hub's /x402/verify) and the JIT's warm-up
 *   CHIT_BENCH_BODY (512)      response body bytes
 *   CHIT_BENCH_STORE (file)    the seller's store: a FileStore in a temporary directory, as `chit provide
 *                              http` keeps it (a journal, synced to disk once per group of writes), or
 *                              `memory` (MemoryStore, nothing on disk)
 *   CHIT_BENCH_AGREEMENTS (0)  agreements the seller was paid on before the bench, from earlier buyers:
 *                              their credited totals are written into the seller's store first (the
 *                              ledger's checkpoint), as a seller that has sold for a while has them
 *   CHIT_BENCH_MIDDLEWARE=1    then the same paid requests to the API's own app with the chit middleware
 *                              (chitFastify, in this process) instead of through the gateway, by as many
 *                              other buyers to another seller: what the gateway itself adds (latency only)
 *   --json FILE                also write the figures as JSON (scripts/bench.ts puts them in BENCHMARKS.md)
 *   CHIT_BENCH_TIMINGS=1       also the latency of every kind of HTTP call this process makes (the
 *                              hub's /x402/verify and /v1/exchanges, the API, the gateway)
 *   CHIT_BENCH_PROFILE=DIR     write a CPU profile of this process (the gateway) over the paid
 *                              requests only, to DIR/gateway-bench.cpuprofile (the hub's: CHIT_E2E_HUB_NODE_FLAGS)
 *   CHIT_BENCH_BUYERS_PROF=DIR write a CPU profile of the buyers' process (from its start) to DIR
 */
import { fork } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { tmpdir } from 'node:os';
import path, { join } from 'node:path';
import { ensurePostgres, ensureRedis } from '@chit/devstack';
import { HubClient, MemoryStore, ProviderLedger } from '@chit/sdk';
import { enableNativeHashing, FileStore, nativePreimageSealer, nativeVerifier, nodeHubHttp } from '@chit/sdk/node';
import { chitFastify, chitPaywall, startGateway } from '@chit/x402';
import fastify from 'fastify';
import type { Hex } from 'viem';
import { parseEther } from 'viem';
import { BackendCpu, cpuMs } from '../hub/bench/cpu';
import { type Consumer, type Stack, startStack } from '../test/e2e/support/stack';
import type { BuyersJob, BuyersResult } from './gateway-bench-buyers';

const BUYERS = Number(process.env.CHIT_BENCH_BUYERS ?? 16);
const REQUESTS = Number(process.env.CHIT_BENCH_REQUESTS ?? 50);
const BODY = Number(process.env.CHIT_BENCH_BODY ?? 512);
const PRICE = 10n ** 15n;
const PER_MIB = 10n ** 16n;
const STORE = process.env.CHIT_BENCH_STORE ?? 'file';
const AGREEMENTS = Number(process.env.CHIT_BENCH_AGREEMENTS ?? 0);
const WARMUP = Number(process.env.CHIT_BENCH_WARMUP ?? 10);
const MIDDLEWARE = process.env.CHIT_BENCH_MIDDLEWARE === '1';
/** What a paid request of `n` owes in all: `n` requests and the bodies of the `n - 1` before it, rounded up. */
const due = (n: bigint) => n * PRICE + ((n - 1n) * BigInt(BODY) * PER_MIB + (1n << 20n) - 1n) / (1n << 20n);

/** What `--json` writes. */
export interface GatewayFigures {
  buyers: number;
  /** Agreements the seller had been paid on before (CHIT_BENCH_AGREEMENTS). */
  earlierAgreements: number;
  requestsPerBuyer: number;
  /** Paid requests per buyer before those counted (CHIT_BENCH_WARMUP). */
  warmupPerBuyer: number;
  bodyBytes: number;
  paidRequests: number;
  seconds: number;
  paidPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  directP50Ms: number;
  directP99Ms: number;
  /** The same paid requests to an app with the chit middleware (CHIT_BENCH_MIDDLEWARE=1): what the gateway adds. */
  middlewareP50Ms?: number;
  middlewareP99Ms?: number;
  /** CPU time per paid request, in microseconds (Linux /proc; absent elsewhere). */
  cpuUs?: { buyers: number; gateway: number; api: number; hub: number; postgres: number };
  /** The seller's exchanges per POST /v1/exchanges to the hub, on average. */
  exchangesPerRequest?: number;
}

const exchangeCalls = { requests: 0, items: 0 };
/** Counts the seller's POST /v1/exchanges and their items, for the average batch it prints. */
function countingHttp(http: ReturnType<typeof nodeHubHttp>): ReturnType<typeof nodeHubHttp> {
  return Object.assign(
    (request: Parameters<ReturnType<typeof nodeHubHttp>>[0]) => {
      if (request.method === 'POST' && request.url.endsWith('/v1/exchanges') && request.body) {
        exchangeCalls.requests++;
        exchangeCalls.items += (JSON.parse(request.body) as { exchanges: unknown[] }).exchanges.length;
      } else if (request.method === 'POST' && request.url.endsWith('/v1/exchange')) {
        // One exchange alone (nothing else was waiting).
        exchangeCalls.requests++;
        exchangeCalls.items++;
      }
      if (!process.env.CHIT_BENCH_TIMINGS) return http(request);
      const at = performance.now();
      return http(request).finally(() => record(request.url, at));
    },
    { close: () => http.close() },
  );
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]!;
const ms = (value: number) => `${value.toFixed(1)} ms`;

const timings = new Map<string, number[]>();
/** A call's latency, under its port and path (ids left out), for CHIT_BENCH_TIMINGS. */
function record(href: string, at: number): void {
  const url = new URL(href);
  const key = `${url.port} ${url.pathname.replace(/\/[0-9a-fx]{20,}/g, '/:id')}`;
  const values = timings.get(key) ?? [];
  values.push(performance.now() - at);
  timings.set(key, values);
}
if (process.env.CHIT_BENCH_TIMINGS) {
  const original = globalThis.fetch;
  globalThis.fetch = async (input, init) => {
    const at = performance.now();
    const response = await original(input, init);
    record(typeof input === 'string' ? input : input instanceof URL ? input.href : input.url, at);
    return response;
  };
}

async function startProfile(): Promise<Session> {
  const session = new Session();
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
  return session;
}

async function stopProfile(session: Session, dir: string): Promise<void> {
  const { profile } = await session.post('Profiler.stop');
  session.disconnect();
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'gateway-bench.cpuprofile');
  writeFileSync(file, JSON.stringify(profile));
  console.log(`CPU profile of the paid requests: ${file}`);
}

/** CHIT_BENCH_BUYERS fresh consumers, each with a deposit of 10 tokens (8 deposits at a time). */
async function newBuyers(stack: Stack): Promise<Consumer[]> {
  const buyers: Consumer[] = [];
  for (let i = 0; i < BUYERS; i += 8) {
    const next = Array.from({ length: Math.min(8, BUYERS - i) }, () =>
      stack.newConsumer({ deposit: parseEther('10') }),
    );
    buyers.push(...(await Promise.all(next)));
  }
  return buyers;
}

/**
 * Has `buyers` pay `url`'s `/data` in a buyers process of its own (scripts/gateway-bench-buyers.ts):
 * CHIT_BENCH_WARMUP each, then `warm()`, then CHIT_BENCH_REQUESTS each, timed.
 */
async function payThrough(
  stack: Stack,
  url: string,
  buyers: Consumer[],
  warm: () => Promise<void> = async () => {},
): Promise<BuyersResult> {
  const buyersProcess = fork(path.join(__dirname, 'gateway-bench-buyers.ts'), {
    execArgv: [
      '--require',
      'ts-node/register/transpile-only',
      ...(process.env.CHIT_BENCH_BUYERS_PROF
        ? ['--cpu-prof', `--cpu-prof-dir=${process.env.CHIT_BENCH_BUYERS_PROF}`]
        : []),
    ],
  });
  const exited = new Promise<never>((_, reject) =>
    buyersProcess.once('exit', (code) => reject(new Error(`the buyers' process exited with ${code}`))),
  );
  exited.catch(() => {}); // once it has answered, its exit is expected
  const message = () => Promise.race([new Promise((resolve) => buyersProcess.once('message', resolve)), exited]);
  // It says when it has loaded, so that its start-up is not counted.
  await message();
  const job: BuyersJob = {
    gatewayUrl: url,
    keys: buyers.map((buyer) => buyer.key),
    hub: stack.chain.hub,
    chainId: stack.chain.deployment.chainId,
    token: stack.chain.token,
    pricePerRequest: PRICE.toString(),
    pricePerMiB: PER_MIB.toString(),
    requests: REQUESTS,
    warmup: WARMUP,
  };
  buyersProcess.send(job);
  await message(); // warm
  await warm();
  buyersProcess.send('go');
  return (await message()) as BuyersResult;
}

/**
 * The same paid requests made to the API's own app with the chit middleware (chitFastify in this
 * process, answering the same bodies: the middleware path of docs/sellers.md) by as many other buyers,
 * to another seller whose ledger is kept the same way: what a paid request costs without the gateway.
 * Checks that the hub credited that seller exactly what its buyers owed; resolves with the latencies.
 */
async function throughMiddleware(stack: Stack): Promise<number[]> {
  const directory = mkdtempSync(join(tmpdir(), 'chit-middleware-bench-'));
  const app = fastify();
  try {
    const seller = await stack.newProvider();
    const buyers = await newBuyers(stack);
    const ledger = new ProviderLedger({
      hub: new HubClient({ url: stack.hub.url, http: nodeHubHttp() }),
      account: seller.account,
      store: STORE === 'memory' ? new MemoryStore() : new FileStore(directory),
      verifier: nativeVerifier(),
      preimageSealer: nativePreimageSealer,
    });
    await ledger.open();
    const paywall = await chitPaywall({
      hubUrl: stack.hub.url,
      ledger,
      secret: `0x${'b1'.repeat(32)}` as Hex,
      pricePerRequest: PRICE,
      pricePerMiB: PER_MIB,
      routes: ['GET /data'],
    });
    await chitFastify(app, paywall);
    const body = Buffer.alloc(BODY, 0x61);
    app.get('/data', async (_request, reply) => reply.header('content-length', body.length).send(body));
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const { latencies } = await payThrough(stack, url, buyers);
    const earned = (await stack.hub.client.provider(seller.address)).earned;
    const expected = BigInt(BUYERS) * due(BigInt(WARMUP + REQUESTS));
    if (earned !== expected)
      throw new Error(`the hub credited the app's seller ${earned}, its buyers owed ${expected}`);
    return latencies.sort((a, b) => a - b);
  } finally {
    await app.close();
    rmSync(directory, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  /** The seller's FileStore, removed at the end. */
  let storeDirectory: string | undefined;
  // As `chit provide http` and `chit pay` hash: natively.
  enableNativeHashing();
  const postgres = await ensurePostgres();
  const redis = await ensureRedis();
  process.env.CHIT_E2E_POSTGRES_URL = postgres.url;
  process.env.CHIT_E2E_REDIS_URL = redis.url;
  // The hub's own polling intervals, not the e2e stack's quick ones (a follower polling every 100 ms
  // costs the hub CPU that the figures per paid request would count).
  const stack = await startStack({
    hubEnv: { FOLLOWER_POLL_MS: '1000', TX_POLL_INTERVAL_MS: '1000', SETTLEMENT_RECONCILE_INTERVAL_MS: '30000' },
  });
  // The API in a process of its own: the CPU of this one is the gateway's alone.
  const api = fork(path.join(__dirname, 'gateway-bench-api.ts'), {
    execArgv: ['--require', 'ts-node/register/transpile-only'],
    env: { ...process.env, CHIT_BENCH_BODY: String(BODY) },
  });
  const apiUrl = await new Promise<string>((resolve, reject) => {
    api.once('message', (message: { port: number }) => resolve(`http://127.0.0.1:${message.port}`));
    api.once('exit', (code) => reject(new Error(`the API's process exited with ${code}`)));
  });
  try {
    console.log(`setting up ${BUYERS} buyers with deposits and one seller…`);
    const seller = await stack.newProvider();
    const buyers = await newBuyers(stack);
    if (STORE !== 'memory') storeDirectory = mkdtempSync(join(tmpdir(), 'chit-gateway-bench-'));
    const store = STORE === 'memory' ? new MemoryStore() : new FileStore(storeDirectory!);
    if (AGREEMENTS > 0) {
      // Earlier buyers' agreements, as the ledger's checkpoint of credited totals holds them.
      const key = `chit/provider/${stack.chain.deployment.chainId}/${stack.chain.hub.toLowerCase()}/${seller.address.toLowerCase()}`;
      const credited: Record<string, string> = {};
      for (let i = 0; i < AGREEMENTS; i++)
        credited[`0x${randomBytes(32).toString('hex')}`] = String(PRICE * BigInt(i + 1));
      await store.put(`${key}/credited`, { version: 1, credited });
      console.log(`the seller's store holds ${AGREEMENTS} earlier agreements`);
    }
    // As `chit provide http` makes it: native signature checks and sealing, node:http to the hub.
    const ledger = new ProviderLedger({
      hub: new HubClient({ url: stack.hub.url, http: countingHttp(nodeHubHttp()) }),
      account: seller.account,
      store,
      verifier: nativeVerifier(),
      preimageSealer: nativePreimageSealer,
    });
    await ledger.open();
    const gateway = await startGateway({
      upstream: apiUrl,
      hubUrl: stack.hub.url,
      ledger,
      secret: `0x${'b0'.repeat(32)}` as Hex,
      pricePerRequest: PRICE,
      pricePerMiB: PER_MIB,
      port: 0,
    });

    // The same requests straight to the API: what the gateway and the payment add to.
    const direct: number[] = [];
    await Promise.all(
      buyers.map(async () => {
        for (let i = 0; i < REQUESTS; i++) {
          const started = performance.now();
          await (await fetch(`${apiUrl}/data`)).arrayBuffer();
          direct.push(performance.now() - started);
        }
      }),
    );

    // The warm-up's paid requests are not counted: the CPU readings start once the buyers have paid them.
    const backends = new BackendCpu(stack.db);
    let stopSampling = () => {};
    let profiler: Session | undefined;
    let cpuBefore: { hub?: number; api?: number; self: NodeJS.CpuUsage } = { self: process.cpuUsage() };
    const result = await payThrough(stack, gateway.url, buyers, async () => {
      exchangeCalls.requests = 0;
      exchangeCalls.items = 0;
      await backends.sample();
      stopSampling = backends.sampleEvery(250);
      profiler = process.env.CHIT_BENCH_PROFILE ? await startProfile() : undefined;
      cpuBefore = { hub: cpuMs(stack.hub.pid), api: cpuMs(api.pid), self: process.cpuUsage() };
    });
    const { latencies, seconds } = result;
    if (profiler) await stopProfile(profiler, process.env.CHIT_BENCH_PROFILE!);
    stopSampling();
    await backends.sample();
    const hubCpu = cpuMs(stack.hub.pid);
    const apiCpu = cpuMs(api.pid);
    const selfCpu = process.cpuUsage(cpuBefore.self);
    await gateway.close();

    const paid = BUYERS * REQUESTS;
    const earned = (await stack.hub.client.provider(seller.address)).earned;
    const expected = BigInt(BUYERS) * due(BigInt(WARMUP + REQUESTS));
    if (earned !== expected) throw new Error(`the hub credited ${earned}, the buyers owed ${expected}`);
    const middleware = MIDDLEWARE ? await throughMiddleware(stack) : undefined;
    latencies.sort((a, b) => a - b);
    direct.sort((a, b) => a - b);
    console.log(
      `\n${paid} paid requests, ${BUYERS} buyers at once, ${BODY}-byte bodies, one seller, after ${WARMUP} per buyer not counted:`,
    );
    console.log(`  ${(paid / seconds).toFixed(0)} paid requests/s (${seconds.toFixed(1)} s)`);
    console.log(
      `  paid request through the gateway: p50 ${ms(percentile(latencies, 0.5))}, p99 ${ms(percentile(latencies, 0.99))}`,
    );
    console.log(
      `  the same request to the API:      p50 ${ms(percentile(direct, 0.5))}, p99 ${ms(percentile(direct, 0.99))}`,
    );
    if (middleware) {
      console.log(
        `  the same, paid to the API's own app: p50 ${ms(percentile(middleware, 0.5))}, p99 ${ms(percentile(middleware, 0.99))} (chitFastify, other buyers and seller)`,
      );
    }
    console.log(`  the hub credited exactly what the buyers paid: ${earned} base units`);
    if (exchangeCalls.requests > 0) {
      console.log(
        `  the seller's exchanges: ${exchangeCalls.items} in ${exchangeCalls.requests} requests to the hub (${(exchangeCalls.items / exchangeCalls.requests).toFixed(1)} per request)`,
      );
    }
    const perRequest = (ms: number) => Math.round((ms * 1000) / paid);
    const cpuUs =
      hubCpu !== undefined &&
      cpuBefore.hub !== undefined &&
      apiCpu !== undefined &&
      cpuBefore.api !== undefined &&
      backends.available
        ? {
            buyers: Math.round(result.cpuUs / paid),
            gateway: Math.round((selfCpu.user + selfCpu.system) / paid),
            api: perRequest(apiCpu - cpuBefore.api),
            hub: perRequest(hubCpu - cpuBefore.hub),
            postgres: perRequest(backends.usedMs),
          }
        : undefined;
    if (cpuUs) {
      console.log(
        `  cpu µs/paid request: gateway ${cpuUs.gateway}, API ${cpuUs.api}, hub ${cpuUs.hub}, postgres ${cpuUs.postgres}, buyers (the load generator) ${cpuUs.buyers}`,
      );
      const seller = cpuUs.gateway + cpuUs.api + cpuUs.hub + cpuUs.postgres;
      console.log(
        `  the seller's side (gateway, API, hub, Postgres): ${seller} µs per paid request, ${Math.round(2_000_000 / seller)} paid requests/s if the 2 cores did only that`,
      );
    }
    const json = process.argv.indexOf('--json');
    if (json > 0) {
      const figures: GatewayFigures = {
        buyers: BUYERS,
        earlierAgreements: AGREEMENTS,
        requestsPerBuyer: REQUESTS,
        warmupPerBuyer: WARMUP,
        bodyBytes: BODY,
        paidRequests: paid,
        seconds,
        paidPerSecond: paid / seconds,
        p50Ms: percentile(latencies, 0.5),
        p99Ms: percentile(latencies, 0.99),
        directP50Ms: percentile(direct, 0.5),
        directP99Ms: percentile(direct, 0.99),
        ...(middleware && {
          middlewareP50Ms: percentile(middleware, 0.5),
          middlewareP99Ms: percentile(middleware, 0.99),
        }),
        cpuUs,
        exchangesPerRequest: exchangeCalls.requests > 0 ? exchangeCalls.items / exchangeCalls.requests : undefined,
      };
      writeFileSync(process.argv[json + 1]!, JSON.stringify(figures, null, 2));
    }
    for (const [key, values] of timings) {
      values.sort((a, b) => a - b);
      console.log(
        `  ${key}: ${values.length} calls, p50 ${ms(percentile(values, 0.5))}, p99 ${ms(percentile(values, 0.99))}`,
      );
    }
  } finally {
    if (storeDirectory) rmSync(storeDirectory, { recursive: true, force: true });
    api.disconnect();
    // A graceful stop first: the hub writes its CPU profile when CHIT_E2E_HUB_NODE_FLAGS asks for one.
    await stack.hub.stop();
    await stack.stop();
    await redis.stop();
    await postgres.stop();
  }
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
