/**
 * The buyers of `npm run bench:gateway`, in a process of their own so that the bench tells their CPU
 * (the load generator's) from the gateway's. Forked by scripts/gateway-bench.ts, which sends one
 * {@link BuyersJob} over IPC; each buyer pays its requests one after another through chitFetch
 * (@x402/fetch with the chit scheme, native signing as `chit pay` signs), all buyers at once: first
 * `warmup` each, then says `warm` and waits for `go` (the bench takes its CPU readings in between), then
 * `requests` each, which it times. Answers with {@link BuyersResult}.
 */
import { ConsumerLedger, MemoryStore } from '@chit/sdk';
import { enableNativeHashing, nativeAccount, nativeVerifier } from '@chit/sdk/node';
import { chitFetch } from '@chit/x402';
import type { Address, Hex } from 'viem';

export interface BuyersJob {
  gatewayUrl: string;
  keys: Hex[];
  hub: Address;
  chainId: number;
  token: Address;
  /** Decimal strings of token base units. */
  pricePerRequest: string;
  pricePerMiB: string;
  requests: number;
  /** Paid requests per buyer first, not counted: each agreement's first payment, and the JIT's warm-up. */
  warmup: number;
}

export interface BuyersResult {
  /** Milliseconds of each paid request, as the buyer saw it. */
  latencies: number[];
  seconds: number;
  /** CPU (user + system) of this process over the paid requests, in microseconds. */
  cpuUs: number;
}

async function run(job: BuyersJob): Promise<BuyersResult> {
  enableNativeHashing();
  const pays = job.keys.map((key) =>
    chitFetch(fetch, {
      ledger: new ConsumerLedger({
        hub: job.hub,
        chainId: job.chainId,
        account: nativeAccount(key),
        verifier: nativeVerifier(),
      }),
      token: job.token,
      maxPricePerRequest: BigInt(job.pricePerRequest),
      maxPricePerMiB: BigInt(job.pricePerMiB),
      store: new MemoryStore(),
    }),
  );
  const latencies: number[] = [];
  const payAll = (requests: number, timed: boolean) =>
    Promise.all(
      pays.map(async (pay) => {
        for (let i = 0; i < requests; i++) {
          const at = performance.now();
          const response = await pay(`${job.gatewayUrl}/data`);
          const body = await response.arrayBuffer();
          if (response.status !== 200) {
            throw new Error(
              `a paid request answered ${response.status}: ${Buffer.from(body).toString().slice(0, 500)}`,
            );
          }
          if (timed) latencies.push(performance.now() - at);
        }
      }),
    );
  await payAll(job.warmup, false);
  const go = new Promise((resolve) => process.once('message', resolve));
  process.send?.('warm');
  await go;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await payAll(job.requests, true);
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { latencies, seconds, cpuUs: used.user + used.system };
}

process.once('message', (job: BuyersJob) => {
  run(job).then(
    (result) => process.send?.(result, () => process.exit(0)),
    (error: Error) => {
      console.error(error);
      process.exit(1);
    },
  );
});
process.send?.('ready');
