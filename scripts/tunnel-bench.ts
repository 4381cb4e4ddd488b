/**
 * Throughput of the paid tunnel: `npm run bench:tunnel`.
 *
 * Brings up the e2e stack (anvil with the contracts, the hub as its own process on Postgres and Redis,
 * see test/e2e/support/stack.ts), a node:http server streaming a body of CHIT_BENCH_MIB MiB, and in
 * this process a tunnel provider (startTunnelProvider) and a consumer's tunnel (connectTunnel). curl
 * downloads the body through the consumer's local SOCKS5 proxy, CHIT_BENCH_RUNS times in each mode,
 * alternating (and alternating which mode goes first):
 *   - payments on: prices of 0.01 a minute and 1 a GiB, an invoice every CHIT_BENCH_INTERVAL_MS
 *     (1,000: sixty times more often than the default), each paid (ConsumerSession signs, the
 *     provider's ProviderLedger exchanges at the hub);
 *   - payments off: the same tunnel code with prices of zero, so nothing is ever invoiced.
 * It prints MiB/s (the best run of each mode and the median), the CPU time of this process (provider,
 * consumer, file server) and of the hub per GiB carried, and checks that the hub credited what the
 * consumer paid. curl, this process, the hub and Postgres share the machine.
 *
 *   CHIT_BENCH_MIB (512)          MiB per download
 *   CHIT_BENCH_RUNS (4)           downloads per mode
 *   CHIT_BENCH_INTERVAL_MS (1000) invoice interval with payments on
 *   --json FILE                   also write the figures as JSON (scripts/bench.ts puts them in BENCHMARKS.md)
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import { ensurePostgres, ensureRedis } from '@chit/devstack';
import { ConsumerLedger, HubClient, MemoryStore, ProviderLedger } from '@chit/sdk';
import { nativePreimageSealer, nativeVerifier, nodeHubHttp } from '@chit/sdk/node';
import { connectTunnel, startTunnelProvider, type Tunnel, type TunnelProvider } from '@chit/tunnel';
import { parseEther } from 'viem';
import { cpuMs } from '../hub/bench/cpu';
import { startStack, until } from '../test/e2e/support/stack';
import { type ModeFigures, type TunnelFigures, tunnelSection } from './tunnel-bench-report';

const MIB_PER_RUN = Number(process.env.CHIT_BENCH_MIB ?? 512);
const RUNS = Number(process.env.CHIT_BENCH_RUNS ?? 4);
const INTERVAL_MS = Number(process.env.CHIT_BENCH_INTERVAL_MS ?? 1_000);
const PAID = { perMinute: 10n ** 16n, perGiB: 10n ** 18n };
const FREE = { perMinute: 0n, perGiB: 0n };

interface Mode {
  name: string;
  provider: TunnelProvider;
  tunnel: Tunnel;
  consumerLedger: ConsumerLedger;
  buyer: Awaited<ReturnType<Awaited<ReturnType<typeof startStack>>['newConsumer']>>;
  mibPerSecond: number[];
  cpuMs: number;
  hubCpuMs: number;
  bytes: number;
  seconds: number;
  invoices: number;
}

function download(port: number, url: string): Promise<{ seconds: number; bytes: number }> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('curl', [
      '-s',
      '-S',
      '--socks5-hostname',
      `127.0.0.1:${port}`,
      '-o',
      '/dev/null',
      '-w',
      '%{size_download}',
      url,
    ]);
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => {
      out += chunk;
    });
    child.stderr.on('data', (chunk) => {
      err += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => {
      if (code !== 0) reject(new Error(`curl exited ${code}: ${err}`));
      else resolve({ seconds: (performance.now() - started) / 1000, bytes: Number(out) });
    });
  });
}

async function main(): Promise<void> {
  const postgres = await ensurePostgres();
  const redis = await ensureRedis();
  process.env.CHIT_E2E_POSTGRES_URL = postgres.url;
  process.env.CHIT_E2E_REDIS_URL = redis.url;
  const stack = await startStack();
  const chunk = Buffer.alloc(1 << 20, 0x61);
  const files = createServer((_request, response) => {
    response.writeHead(200, { 'content-length': String(MIB_PER_RUN * chunk.length) });
    let left = MIB_PER_RUN;
    const pump = () => {
      while (left > 0) {
        left -= 1;
        if (!response.write(chunk)) return void response.once('drain', pump);
      }
      response.end();
    };
    pump();
  });
  await new Promise<void>((resolve) => files.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(files.address() as AddressInfo).port}/body`;
  const modes: Mode[] = [];
  try {
    for (const [name, prices] of [
      ['payments on', PAID],
      ['payments off', FREE],
    ] as const) {
      const seller = await stack.newProvider();
      const buyer = await stack.newConsumer({ deposit: parseEther('10') });
      // As `chit provide proxy` and `chit connect` make them: native signature checks and sealing.
      const ledger = new ProviderLedger({
        hub: new HubClient({ url: stack.hub.url, http: nodeHubHttp() }),
        account: seller.account,
        store: new MemoryStore(),
        verifier: nativeVerifier(),
        preimageSealer: nativePreimageSealer,
      });
      const consumerLedger = new ConsumerLedger({
        hub: stack.chain.hub,
        chainId: stack.chain.deployment.chainId,
        account: buyer.account,
        verifier: nativeVerifier(),
      });
      const provider = await startTunnelProvider({
        ledger,
        verifier: nativeVerifier(),
        hubUrl: stack.hub.url,
        prices,
        intervalMs: INTERVAL_MS,
        port: 0,
        allowPrivateTargets: true,
      });
      const tunnel = await connectTunnel({ provider: provider.url, ledger: consumerLedger, maxPrices: prices });
      modes.push({
        name,
        provider,
        tunnel,
        buyer,
        consumerLedger,
        mibPerSecond: [],
        cpuMs: 0,
        hubCpuMs: 0,
        bytes: 0,
        seconds: 0,
        invoices: 0,
      });
      const mode = modes.at(-1)!;
      tunnel.on('paid', () => {
        mode.invoices += 1;
      });
    }
    console.log(`${RUNS} downloads of ${MIB_PER_RUN} MiB per mode, alternating; invoices every ${INTERVAL_MS} ms…`);
    await download(modes[1]!.tunnel.port, url); // warm-up
    for (let run = 0; run < RUNS; run++) {
      // Alternating which mode goes first, so that neither always follows the other.
      for (const mode of run % 2 === 0 ? modes : [...modes].reverse()) {
        const cpu = process.cpuUsage();
        const hub = cpuMs(stack.hub.pid);
        const { seconds, bytes } = await download(mode.tunnel.port, url);
        const used = process.cpuUsage(cpu);
        mode.cpuMs += (used.user + used.system) / 1000;
        const hubAfter = cpuMs(stack.hub.pid);
        if (hub !== undefined && hubAfter !== undefined) mode.hubCpuMs += hubAfter - hub;
        mode.bytes += bytes;
        mode.mibPerSecond.push(bytes / 2 ** 20 / seconds);
        mode.seconds += seconds;
      }
    }
    const paid = modes[0]!;
    const spent = paid.tunnel.status().spent;
    for (const mode of modes) await mode.tunnel.close();
    for (const mode of modes) await mode.provider.close();
    const total = await paid.consumerLedger.total();
    await until('the hub to credit what the consumer paid', async () => {
      return (await stack.hub.client.consumer(paid.buyer.address)).credited === total;
    });
    const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
    const figuresOf = (mode: Mode): ModeFigures => ({
      mibPerSecond: mode.bytes / 2 ** 20 / mode.seconds,
      bestMibPerSecond: Math.max(...mode.mibPerSecond),
      medianMibPerSecond: median(mode.mibPerSecond),
      cpuMsPerGiB: mode.cpuMs / (mode.bytes / 2 ** 30),
      hubCpuMsPerGiB: mode.hubCpuMs / (mode.bytes / 2 ** 30),
    });
    const figures: TunnelFigures = {
      mibPerRun: MIB_PER_RUN,
      runs: RUNS,
      intervalMs: INTERVAL_MS,
      invoicesPaid: paid.invoices,
      load: os.loadavg(),
      on: figuresOf(paid),
      off: figuresOf(modes[1]!),
    };
    console.log(`\n${tunnelSection(figures).join('\n')}`);
    console.log(`the consumer paid ${spent} base units for ${paid.bytes} bytes, credited by the hub`);
    const json = process.argv.indexOf('--json');
    if (json > 0) writeFileSync(process.argv[json + 1]!, JSON.stringify(figures, null, 2));
  } finally {
    files.close();
    await stack.stop();
    await redis.stop();
    await postgres.stop();
  }
}

if (require.main === module) {
  main().then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
