// The figures of scripts/tunnel-bench.ts and their BENCHMARKS.md section, without the bench's imports,
// so that scripts/bench.ts can render them before anything is built.

/** One mode's figures. */
export interface ModeFigures {
  /** All bytes over all download time. */
  mibPerSecond: number;
  bestMibPerSecond: number;
  medianMibPerSecond: number;
  /** CPU time of this process (provider, consumer, file server) per GiB carried. */
  cpuMsPerGiB: number;
  hubCpuMsPerGiB: number;
}

/** What `--json` writes (scripts/bench.ts puts it in BENCHMARKS.md). */
export interface TunnelFigures {
  mibPerRun: number;
  runs: number;
  intervalMs: number;
  invoicesPaid: number;
  load: number[];
  on: ModeFigures;
  off: ModeFigures;
}

/**
 * The BENCHMARKS.md section of the paid tunnel.
 *
 * @example
 * lines.push(...tunnelSection(figures));
 */
export function tunnelSection(figures: TunnelFigures): string[] {
  const row = (name: string, mode: ModeFigures) =>
    `| ${name} | ${mode.mibPerSecond.toFixed(0)} | ${mode.bestMibPerSecond.toFixed(0)} | ${mode.medianMibPerSecond.toFixed(0)} | ${mode.cpuMsPerGiB.toFixed(0)} | ${mode.hubCpuMsPerGiB.toFixed(0)} |`;
  const slower = 1 - figures.on.mibPerSecond / figures.off.mibPerSecond;
  const cpu = figures.on.cpuMsPerGiB / figures.off.cpuMsPerGiB - 1;
  const percent = (value: number) => `${(value * 100).toFixed(1)} %`;
  return [
    '## Paid tunnel (bandwidth per minute and per GiB)',
    '',
    `curl downloads ${figures.mibPerRun} MiB from a node:http server through \`chit connect\`'s local SOCKS5 proxy and \`chit provide proxy\`'s tunnel (\`connectTunnel\` and \`startTunnelProvider\` of @chit/tunnel, both in one Node process with the server), ${figures.runs} times with payments on and ${figures.runs} times with payments off, alternating. Payments on: 0.01 a minute and 1 a GiB, an invoice every ${figures.intervalMs / 1000} s (sixty times the default), each checked and signed by the consumer and exchanged at the hub by the provider's ProviderLedger (native signature checks and sealing); ${figures.invoicesPaid} invoices were paid. Payments off: the same tunnel with prices of zero, so nothing is invoiced. CPU is this process's (provider, consumer, server) and the hub's, per GiB carried. The hub, Postgres and curl share the same 2 cores (load average ${figures.load.map((l) => l.toFixed(2)).join(', ')} at the end). Command: \`npm run bench:tunnel\` (\`CHIT_BENCH_MIB\`, \`CHIT_BENCH_RUNS\`, \`CHIT_BENCH_INTERVAL_MS\`).`,
    '',
    '| payments | MiB/s, all runs | best run | median run | CPU ms per GiB | hub CPU ms per GiB |',
    '| --- | ---: | ---: | ---: | ---: | ---: |',
    row('on', figures.on),
    row('off', figures.off),
    '',
    `Payments on were ${percent(slower)} slower over all runs and took ${percent(cpu)} more CPU per GiB; the target is under 5 %. At ${figures.on.mibPerSecond.toFixed(0)} MiB/s an invoice every ${figures.intervalMs / 1000} s is one per ${(figures.on.mibPerSecond * (figures.intervalMs / 1000)).toFixed(0)} MiB: each a signature, its checks and an exchange at the hub. Compare the difference with the spread between the best and the median run of one mode: on a shared machine that spread is noise.`,
  ];
}
