/**
 * Every benchmark in one command: `npm run bench`. Builds what it needs (contracts, SDK, hub), runs
 * the gas snapshot (scripts/gas.ts), the SDK's signature verification bench (sdk/bench) and the hub's
 * exchange bench at several concurrency levels on one stack (hub/bench/exchange.bench.ts), then prints
 * BENCHMARKS.md and writes it at the repository root, with the machine, the versions and the command
 * behind each figure. The benches clean up after themselves: the hub bench stops its hub and anvil,
 * drops its database and deletes its Redis keys.
 *
 *   CHIT_BENCH_LEVELS (1,8,32,64,128)  concurrent providers of each level
 *   CHIT_BENCH_LEVEL_EXCHANGES (4000)  exchanges per level (at least 50 per provider)
 *   CHIT_BENCH_OUT (BENCHMARKS.md)     where to write the report
 *   DATABASE_URL, REDIS_URL            as for the hub bench: else 127.0.0.1:5432 / localhost:6379, else local servers
 *   RELAYER_TOKENS_PER_WEI (1)         token units one wei of the gas coin is worth, for the cost table
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { anvilBinary } from '@chit/devstack';
import { formatUnits, parseUnits } from 'viem';
import type { GatewayFigures } from './gateway-bench';
import { type TunnelFigures, tunnelSection } from './tunnel-bench-report';

const ROOT = path.join(__dirname, '..');
const BIN = path.join(ROOT, 'node_modules', '.bin');
const started = Date.now();

const DEFAULT_LEVELS = '1,8,32,64,128';
const DEFAULT_LEVEL_EXCHANGES = 4000;
const MIN_PER_PROVIDER = 50;
const BLOCK_GAS_LIMITS = [30_000_000n, 36_000_000n];
const GAS_PRICES_GWEI = [1n, 20n];
const BATCH = 50;
/** Exchanges per request of the batched hub levels, and which levels (concurrent providers) run batched too. */
const BATCH_SIZE = 16;
const BATCHED_PROVIDERS = [8, 32];
/** The widest batches the hub's targets name (64 exchanges per request), on a stack of their own: 40 requests per provider, so that the start and the end of the level (every provider waiting at once, then fewer and fewer) weigh little. */
const WIDE_BATCH = { size: 64, providers: 16, exchangesPerProvider: 2560 };

// Figures written by the benches (see their own types: hub/bench/exchange.bench.ts, sdk/bench/verify.bench.ts).
interface LevelFigures {
  workers: number;
  exchangesPerWorker: number;
  exchanges: number;
  seconds: number;
  exchangesPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  cpuUs?: { hub: number; postgres: number; loadGenerator: number; hubMainThread?: number; redis?: number };
  exchangesPerTransaction?: number;
  requests?: number;
  firstQuarterPerSecond?: number;
  lastQuarterPerSecond?: number;
}
interface HubBench {
  environment: {
    postgres: { source: string; version: string; fsync: string; synchronousCommit: string };
    redis: { source: string; version: string };
    hubSettings: Record<string, string>;
    books?: { exchanges: number; analyzedAfterSeconds?: number };
  };
  warmup: { workers: number; exchangesPerWorker: number } | false;
  levels: LevelFigures[];
}
interface VerifierFigures {
  'recover/s': number;
  'verify promise/s': number;
}
interface SdkBench {
  node: string;
  seconds: number;
  js: VerifierFigures;
  native: VerifierFigures;
  ratio: { recover: number; verifyPromise: number };
}

const elapsed = () => {
  const s = Math.round((Date.now() - started) / 1000);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
};
const progress = (line: string) => console.log(`[bench ${elapsed()}] ${line}`);

let current: ChildProcess | undefined;

/** Runs a command; its output is streamed with a prefix, or kept and shown only if it fails. */
function run(
  command: string,
  args: string[],
  options: { cwd?: string; prefix?: string; env?: NodeJS.ProcessEnv } = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: options.cwd ?? ROOT,
      env: options.env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    current = child;
    let output = '';
    const onData = (chunk: Buffer) => {
      output += chunk;
      if (options.prefix !== undefined)
        for (const line of chunk.toString().split('\n'))
          if (line.trim()) process.stdout.write(`${options.prefix}${line}\n`);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      current = undefined;
      if (code === 0) return resolve(output);
      if (options.prefix === undefined) process.stderr.write(output);
      reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`})`));
    });
  });
}

const grouped = (n: number | bigint) => n.toLocaleString('en-US');
/** A level's exchanges/s in its first and its last quarter. */
const quarters = (l: LevelFigures) =>
  l.firstQuarterPerSecond === undefined || l.lastQuarterPerSecond === undefined
    ? ''
    : `${grouped(Math.round(l.firstQuarterPerSecond))} / ${grouped(Math.round(l.lastQuarterPerSecond))}`;

/** What the books held before the levels ran. */
function booksLine(books: HubBench['environment']['books']): string {
  if (!books?.exchanges) return 'The levels run on empty books.';
  const analyzed =
    books.analyzedAfterSeconds === undefined
      ? ''
      : ` The hub had analyzed them on its own, every table, ${fixed(books.analyzedAfterSeconds)} s after the last exchange went in (its statistics upkeep, whatever the server's autovacuum), before the first level.`;
  return `The levels run on books that already hold ${grouped(books.exchanges)} exchanges (1,000 providers, 20,000 consumers, an agreement per pair), seeded with SQL once the hub had migrated.${analyzed}`;
}
const fixed = (n: number, digits = 1) => n.toFixed(digits);

/** Levels: concurrent providers, each with enough exchanges that a level has about `total`. */
function levelsFromEnv(): { workers: number; exchangesPerWorker: number }[] {
  const total = Number(process.env.CHIT_BENCH_LEVEL_EXCHANGES ?? DEFAULT_LEVEL_EXCHANGES);
  if (!Number.isInteger(total) || total < 1) throw new Error('CHIT_BENCH_LEVEL_EXCHANGES: expected a positive integer');
  return (process.env.CHIT_BENCH_LEVELS ?? DEFAULT_LEVELS).split(',').map((item) => {
    const workers = Number(item.trim());
    if (!Number.isInteger(workers) || workers < 1)
      throw new Error(`CHIT_BENCH_LEVELS: expected positive integers separated by commas, got "${item}"`);
    return { workers, exchangesPerWorker: Math.max(MIN_PER_PROVIDER, Math.round(total / workers)) };
  });
}

/** The command that reproduces the whole report, with the knobs this run was given. */
function benchCommand(): string {
  const knobs = ['CHIT_BENCH_LEVELS', 'CHIT_BENCH_LEVEL_EXCHANGES', 'RELAYER_TOKENS_PER_WEI']
    .filter((name) => process.env[name] !== undefined)
    .map((name) => `${name}=${process.env[name]}`);
  return [...knobs, 'npm run bench'].join(' ');
}

function osName(): string {
  try {
    const release = readFileSync('/etc/os-release', 'utf8');
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?/m.exec(release)?.[1];
    if (pretty) return `${pretty}, ${os.type()} ${os.release()} ${os.arch()}`;
  } catch {}
  return `${os.type()} ${os.release()} ${os.arch()}`;
}

/** The solc and settings of the newest compilation (what the gas was measured with). */
function solcBuild(): string {
  const dir = path.join(ROOT, 'artifacts', 'build-info');
  const newest = readdirSync(dir)
    .filter((name) => name.endsWith('.json'))
    .map((name) => path.join(dir, name))
    .sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
  if (!newest) return 'unknown';
  const info = JSON.parse(readFileSync(newest, 'utf8'));
  const settings = info.input?.settings ?? {};
  const optimizer = settings.optimizer?.enabled ? `optimizer ${settings.optimizer.runs} runs` : 'optimizer off';
  return `${info.solcLongVersion} (solc-js from the npm solc package), ${optimizer}${settings.viaIR ? ', via IR' : ''}, EVM ${settings.evmVersion ?? 'default'}`;
}

const version = (pkg: string) => JSON.parse(readFileSync(require.resolve(`${pkg}/package.json`), 'utf8')).version;

async function main(): Promise<void> {
  const levels = levelsFromEnv();
  const out = path.resolve(ROOT, process.env.CHIT_BENCH_OUT ?? 'BENCHMARKS.md');
  const tokensPerWei = process.env.RELAYER_TOKENS_PER_WEI ?? '1';
  if (!/^\d+(\.\d{1,18})?$/.test(tokensPerWei))
    throw new Error('RELAYER_TOKENS_PER_WEI: expected a non-negative decimal with at most 18 decimals');
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'chit-bench-'));
  let signalled = false;
  const stopOnSignal = (signal: NodeJS.Signals) => {
    if (signalled) return;
    signalled = true;
    progress(`${signal}: stopping (the running bench cleans up after itself)`);
    const exit = () => {
      rmSync(tmp, { recursive: true, force: true });
      process.exit(130);
    };
    if (current) current.once('close', exit).kill(signal);
    else exit();
  };
  process.on('SIGINT', stopOnSignal);
  process.on('SIGTERM', stopOnSignal);
  try {
    const date = new Date();
    progress(
      `${os.cpus().length} cores, load average ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
    );

    progress('building the contracts (npm run build:contracts)');
    await run('npm', ['run', 'build:contracts']);
    progress('building the SDK (npm run build -w sdk)');
    await run('npm', ['run', 'build', '-w', 'sdk']);
    progress('building the hub (npm run build -w hub)');
    await run('npm', ['run', 'build', '-w', 'hub']);

    progress('gas snapshot (npm run gas)');
    const gasOutput = await run('npm', ['run', 'gas']).catch((error) => {
      // A missed gas target fails the script, after it has written the snapshot: report it anyway.
      progress(`npm run gas: ${error.message}; using the snapshot it wrote`);
      return '';
    });
    if (gasOutput && !gasOutput.includes('wrote contracts/gas-snapshot.json'))
      throw new Error('npm run gas did not write contracts/gas-snapshot.json');
    const gas: Record<string, number> = JSON.parse(
      readFileSync(path.join(ROOT, 'contracts', 'gas-snapshot.json'), 'utf8'),
    );

    progress('signature verification, native against JavaScript (npm run bench:sdk)');
    const sdkJson = path.join(tmp, 'sdk.json');
    await run(path.join(BIN, 'tsx'), ['bench/verify.bench.ts', '--json', sdkJson], {
      cwd: path.join(ROOT, 'sdk'),
      prefix: '  sdk | ',
    });
    const sdk: SdkBench = JSON.parse(readFileSync(sdkJson, 'utf8'));

    const levelsArg = levels.map((l) => `${l.workers}x${l.exchangesPerWorker}`).join(',');
    progress(`hub exchanges, one stack, levels ${levelsArg} (providers x exchanges each)`);
    const loadBefore = os.loadavg();
    /** One run of the hub bench on a stack of its own: its levels in sequence, `batch` exchanges per request. */
    const hubBench = async (levelsArg: string, batch: number, name: string): Promise<HubBench> => {
      const json = path.join(tmp, `${name}.json`);
      await run(
        path.join(BIN, 'ts-node'),
        [
          '--transpile-only',
          '-P',
          'hub/tsconfig.json',
          'hub/bench/exchange.bench.ts',
          '--levels',
          levelsArg,
          '--batch',
          String(batch),
          '--json',
          json,
        ],
        { prefix: '  hub | ' },
      );
      return JSON.parse(readFileSync(json, 'utf8')) as HubBench;
    };
    const hub = await hubBench(levelsArg, 1, 'hub');

    const batchedArg = levelsArg
      .split(',')
      .filter((level) => BATCHED_PROVIDERS.includes(Number(level.split('x')[0])))
      .join(',');
    const batched: LevelFigures[] = [];
    if (batchedArg) {
      progress(`hub exchanges batched ${BATCH_SIZE} per request (POST /v1/exchanges), levels ${batchedArg}`);
      batched.push(...(await hubBench(batchedArg, BATCH_SIZE, 'hub-batched')).levels);
    }
    const wideLevel = `${WIDE_BATCH.providers}x${WIDE_BATCH.exchangesPerProvider}`;
    progress(`hub exchanges batched ${WIDE_BATCH.size} per request, level ${wideLevel}`);
    batched.push(...(await hubBench(wideLevel, WIDE_BATCH.size, 'hub-wide')).levels);
    progress('paid requests through the gateway of chit provide http (npm run bench:gateway)');
    progress('building @chit/x402 (npm run build -w x402)');
    await run('npm', ['run', 'build', '-w', 'x402']);
    // One buyer alone (the latency a paid request adds when nothing waits), 16 buyers at once, then 64: the
    // seller's exchanges batch more as more buyers wait together. Then 64 again for a seller already paid on
    // 100,000 agreements: what a paid request costs must not grow with them.
    const gateway: GatewayFigures[] = [];
    for (const [buyers, requests, agreements] of [
      [1, 300, 0],
      [16, 100, 0],
      [64, 100, 0],
      [64, 100, 100_000],
    ] as const) {
      const gatewayJson = path.join(tmp, `gateway-${buyers}-${agreements}.json`);
      await run(path.join(BIN, 'ts-node'), ['--transpile-only', 'scripts/gateway-bench.ts', '--json', gatewayJson], {
        prefix: `  gateway ${buyers}${agreements ? `, ${agreements} earlier agreements` : ''} | `,
        env: {
          ...process.env,
          CHIT_BENCH_BUYERS: String(buyers),
          CHIT_BENCH_REQUESTS: String(requests),
          CHIT_BENCH_AGREEMENTS: String(agreements),
          // One buyer alone: also paid to an app with the middleware, to tell the gateway's own share.
          CHIT_BENCH_MIDDLEWARE: buyers === 1 ? '1' : '0',
        },
      });
      gateway.push(JSON.parse(readFileSync(gatewayJson, 'utf8')));
    }
    progress('the paid tunnel, payments on and off (npm run bench:tunnel)');
    await run('npm', ['run', 'build', '-w', 'tunnel']);
    const tunnelJson = path.join(tmp, 'tunnel.json');
    await run(path.join(BIN, 'ts-node'), ['--transpile-only', 'scripts/tunnel-bench.ts', '--json', tunnelJson], {
      prefix: '  tunnel | ',
    });
    const tunnel: TunnelFigures = JSON.parse(readFileSync(tunnelJson, 'utf8'));
    const loadAfter = os.loadavg();

    const anvilOutput = await run(anvilBinary(), ['--version']);
    const commit = /Commit SHA: (\w{7})/.exec(anvilOutput)?.[1];
    const anvil = `${/Version: (\S+)/.exec(anvilOutput)?.[1] ?? anvilOutput.split('\n')[0]}${commit ? `, commit ${commit}` : ''}`;
    const report = render({
      date,
      levels: hub.levels,
      batched,
      gateway,
      tunnel,
      warmup: hub.warmup,
      hub: hub.environment,
      sdk,
      gas,
      tokensPerWei,
      anvil,
      load: { before: loadBefore, after: loadAfter },
      runSeconds: (Date.now() - started) / 1000,
    });
    const previous = existsSync(out) ? readFileSync(out, 'utf8') : '';
    const written = withSectionsOf(report, previous);
    writeFileSync(out, written);
    console.log(`\n${written}`);
    progress(`wrote ${path.relative(process.cwd(), out)}`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

interface ReportInput {
  date: Date;
  levels: LevelFigures[];
  /** The same levels' exchanges sent BATCH_SIZE per request. */
  batched: LevelFigures[];
  /** Paid requests through the gateway (scripts/gateway-bench.ts), one run per number of buyers. */
  gateway: GatewayFigures[];
  /** The paid tunnel (scripts/tunnel-bench.ts). */
  tunnel: TunnelFigures;
  warmup: HubBench['warmup'];
  hub: HubBench['environment'];
  sdk: SdkBench;
  gas: Record<string, number>;
  tokensPerWei: string;
  anvil: string;
  load: { before: number[]; after: number[] };
  runSeconds: number;
}

/**
 * `report` with the sections of the previous file that this script does not write (figures of benches
 * run on their own, such as `npm run bench:history`, which say so and when), kept as they were, before
 * the SDK's section.
 */
function withSectionsOf(report: string, previous: string): string {
  const sections = (text: string) => text.split(/^(?=## )/m).slice(1);
  const heading = (section: string) => section.split('\n', 1)[0]!;
  const written = new Set(sections(report).map(heading));
  const kept = sections(previous).filter((section) => !written.has(heading(section)));
  if (kept.length === 0) return report;
  const at = report.indexOf('## Signature verification (SDK)');
  const block = kept.map((section) => `${section.trimEnd()}\n\n`).join('');
  return at < 0 ? `${report.trimEnd()}\n\n${block}` : `${report.slice(0, at)}${block}${report.slice(at)}`;
}

/** A Markdown table; columns listed in `left` are left-aligned, the others (figures) right-aligned. */
function table(header: string[], rows: (string | number)[][], left: number[] = [0]): string[] {
  return [
    `| ${header.join(' | ')} |`,
    `| ${header.map((_, i) => (left.includes(i) ? '---' : '---:')).join(' | ')} |`,
    ...rows.map((row) => `| ${row.join(' | ')} |`),
  ];
}

/** A batched level's exchanges per request. */
function perRequest(level: LevelFigures): number {
  return level.requests ? Math.round(level.exchanges / level.requests) : BATCH_SIZE;
}

/** The CPU µs per paid request of the seller's side: the gateway, the API, the hub and Postgres. */
function sellerSide(cpu: NonNullable<GatewayFigures['cpuUs']>): number {
  return cpu.gateway + cpu.api + cpu.hub + cpu.postgres;
}

function render(input: ReportInput): string {
  const { gas, sdk, hub } = input;
  const g = (key: string) => {
    const value = gas[key];
    if (value === undefined) throw new Error(`contracts/gas-snapshot.json has no ${key}`);
    return value;
  };
  const loads = (l: number[]) => l.map((x) => x.toFixed(2)).join(', ');
  const ram = `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`;
  const command = benchCommand();

  // Settlement variants: gas of one settlement alone, of a 50-promise batch, and per promise in it.
  const variants = [
    {
      name: 'consumer promise',
      single: g('settleConsumer.single'),
      batch: g('settleConsumer.batch50'),
      perPromise: g('settleConsumer.batch50.perPromise'),
      singleKey: 'settleConsumer.single',
      batchKey: 'settleConsumer.batch50.perPromise',
    },
    {
      name: 'hub promise to a provider, relayed (relayer fee)',
      single: g('settleProvider.single'),
      batch: g('settleProvider.batch50'),
      perPromise: g('settleProvider.batch50.perPromise'),
      singleKey: 'settleProvider.single',
      batchKey: 'settleProvider.batch50.perPromise',
    },
  ];
  const noFee = g('settleProvider.batch50.noRelayerFee.perPromise');

  const tokensPerWeiScaled = parseUnits(input.tokensPerWei, 18);
  const tokensFor = (gasUsed: number, gwei: bigint) =>
    formatUnits(BigInt(gasUsed) * gwei * 10n ** 9n * tokensPerWeiScaled, 36);

  const lines: string[] = [
    '# Benchmarks',
    '',
    `Generated by \`${command}\` (scripts/bench.ts) on ${input.date.toISOString().replace(/\.\d+Z$/, 'Z')}, in ${Math.round(input.runSeconds)} s. Do not edit the figures by hand: run the command again.`,
    '',
    `**One run on a shared machine.** The ${os.cpus().length} cores were shared with other people's tests and builds while it ran (load average ${loads(input.load.before)} before the hub bench, ${loads(input.load.after)} after), and the load generator runs on the same cores as the hub, Postgres and Redis. Expect the throughput and latency figures to move by tens of percent from run to run; the gas figures are exact and deterministic.`,
    '',
    '## Machine and versions',
    '',
    ...table(
      ['what', 'used'],
      [
        ['CPU', `${os.cpus()[0]?.model ?? 'unknown'}, ${os.cpus().length} cores (shared)`],
        ['RAM', ram],
        ['OS', osName()],
        ['Node', process.version],
        [
          'Postgres',
          `${hub.postgres.version} (${hub.postgres.source}), fsync=${hub.postgres.fsync}, synchronous_commit=${hub.postgres.synchronousCommit}`,
        ],
        ['Redis', `${hub.redis.version} (${hub.redis.source})`],
        ['solc', solcBuild()],
        ['gas measured on', `Hardhat ${version('hardhat')} in-process EVM`],
        ['anvil', `${input.anvil} (npm @foundry-rs/anvil ${version('@foundry-rs/anvil')})`],
      ],
      [0, 1],
    ),
    '',
    '## Hub: exchanges per second and latency',
    '',
    'The targets set for the hub on this 2-core machine, load generator included: at least 10,000 exchanges/s with 16 to 64 exchanges per request and a p99 of at most 50 ms per request; at least 4,000/s with one exchange per request and a p99 of at most 25 ms; the same within 10 % on empty books and on books of 10 million exchanges. Compare the figures below with them; the CPU tables say what bounds them.',
    '',
    booksLine(hub.books),
    '',
    `One hub process (\`hub/dist\`, built from the working tree; ${Object.entries(hub.hubSettings)
      .map(([k, v]) => `${k}=${v}`)
      .join(
        ', ',
      )}, other settings default) on anvil, Postgres and Redis as above. Each level seeds fresh consumer channels and has that many providers exchange in parallel, each one exchange after another (POST /v1/exchange, undici, promises signed beforehand). Latency is measured by the client, per request. The levels run in sequence on one stack${input.warmup ? `, after a warm-up of ${grouped(input.warmup.workers * input.warmup.exchangesPerWorker)} exchanges that is not counted` : ''}. "First / last quarter" is exchanges/s while the first and the last quarter of a level's exchanges were answered: the books grow as the level runs.`,
    '',
    `Whole table: \`${command}\`. One level on a stack of its own (the same bench, no earlier levels): the command in the last column.`,
    '',
    ...table(
      [
        'concurrent providers',
        'exchanges',
        'exchanges/s',
        'first / last quarter',
        'p50 ms',
        'p99 ms',
        'errors',
        'one level alone',
      ],
      input.levels.map((l) => [
        l.workers,
        grouped(l.exchanges),
        grouped(Math.round(l.exchangesPerSecond)),
        quarters(l),
        fixed(l.p50Ms),
        fixed(l.p99Ms),
        l.errors,
        `\`CHIT_BENCH_BATCH=1 CHIT_BENCH_WORKERS=${l.workers} CHIT_BENCH_EXCHANGES=${l.exchangesPerWorker} npm run bench:hub\``,
      ]),
      [7],
    ),
    '',
    'Where the CPU goes: CPU time (user + system, from /proc) per exchange of the hub process (and of its main thread alone, the one that serves HTTP and drives Postgres; the crypto runs on worker threads), of the Postgres backends serving the bench database, of the Redis server (INFO cpu: the hub counts every request there for its rate limits, and keeps its queues there), and of the load generator. These move much less than exchanges/s with what else the machine runs; two cores give 2,000,000 µs a second, so their sum bounds what this machine can do. Each transaction costs Postgres a WAL flush and a round of statements whatever its size, so its share per exchange falls as group commit puts more exchanges in one transaction.',
    '',
    ...table(
      [
        'concurrent providers',
        'exchanges per transaction',
        'hub µs',
        'of which main thread µs',
        'Postgres µs',
        'Redis µs',
        'load generator µs',
        'sum µs',
        'exchanges/s if the 2 cores did only this',
      ],
      input.levels
        .filter((l) => l.cpuUs)
        .map((l) => {
          const cpu = l.cpuUs!;
          const total = cpu.hub + cpu.postgres + (cpu.redis ?? 0) + cpu.loadGenerator;
          return [
            l.workers,
            l.exchangesPerTransaction === undefined ? '' : fixed(l.exchangesPerTransaction),
            grouped(cpu.hub),
            cpu.hubMainThread === undefined ? '' : grouped(cpu.hubMainThread),
            grouped(cpu.postgres),
            cpu.redis === undefined ? '' : grouped(cpu.redis),
            grouped(cpu.loadGenerator),
            grouped(total),
            grouped(Math.round((os.cpus().length * 1e6) / total)),
          ];
        }),
    ),
    '',
    ...(input.batched.length > 0
      ? [
          `### Batched: ${BATCH_SIZE} and ${WIDE_BATCH.size} exchanges per request`,
          '',
          `A provider with many consumers can send their exchanges together: \`POST /v1/exchanges\` answers each item as \`POST /v1/exchange\` would, and one request's items go into one transaction. The same bench with \`--batch ${BATCH_SIZE}\` (each provider sends ${BATCH_SIZE} exchanges, for ${BATCH_SIZE} consumers, per request), on the stack above; then with \`--batch ${WIDE_BATCH.size}\` on a stack of its own (the same books of 1,000,000 exchanges). Latency is per request.`,
          '',
          ...table(
            [
              'exchanges per request',
              'concurrent providers',
              'exchanges',
              'exchanges/s',
              'first / last quarter',
              'p50 ms per request',
              'p99 ms per request',
              'errors',
              'exchanges per transaction',
              'CPU µs per exchange: hub (main thread) / Postgres / Redis / load generator',
              'command',
            ],
            input.batched.map((l) => [
              perRequest(l),
              l.workers,
              grouped(l.exchanges),
              grouped(Math.round(l.exchangesPerSecond)),
              quarters(l),
              fixed(l.p50Ms),
              fixed(l.p99Ms),
              l.errors,
              l.exchangesPerTransaction === undefined ? '' : fixed(l.exchangesPerTransaction),
              l.cpuUs
                ? `${grouped(l.cpuUs.hub)}${l.cpuUs.hubMainThread === undefined ? '' : ` (${grouped(l.cpuUs.hubMainThread)})`} / ${grouped(l.cpuUs.postgres)} / ${l.cpuUs.redis === undefined ? 'n/a' : grouped(l.cpuUs.redis)} / ${grouped(l.cpuUs.loadGenerator)}`
                : '',
              `\`CHIT_BENCH_BATCH=${perRequest(l)} CHIT_BENCH_WORKERS=${l.workers} CHIT_BENCH_EXCHANGES=${l.exchangesPerWorker} npm run bench:hub\``,
            ]),
            [10],
          ),
          '',
        ]
      : []),
    '## Selling through the gateway (x402, the chit scheme)',
    '',
    `\`chit provide http\`'s gateway (\`startGateway\` of @chit/x402: @x402/core's HTTP resource server on node:http) in front of a node:http API answering ${input.gateway[0]!.bodyBytes}-byte bodies, on the same kind of stack as above (the hub as its own process, Postgres, Redis, anvil). The buyers pay at once, each its requests one after another, with chitFetch (@x402/fetch), in a Node process of their own, each first ${input.gateway[0]!.warmupPerBuyer ?? 0} paid requests that are not counted (its agreement's first payment and the JIT's warm-up, as the hub's bench warms up): a buyer's first request gets the 402 and is paid on the retry; each later one is paid at once with the invoice the seller handed in the last PAYMENT-RESPONSE (\`extra.nextInvoice\`), one round trip: the promise signed (nativeAccount, as \`chit pay\` signs), the seller's own checks (the hub's /x402/verify only for each agreement's first payment), the API, the exchange through the seller's ProviderLedger (exchanges waiting together in one POST /v1/exchanges; native signature checks, hashing and sealing). The seller keeps its meters and its ledger in a FileStore on disk, as \`chit provide http\` does: each paid request writes its agreement's meter once, before its exchange, and each exchange request the ledger's document before and after, each write on disk before it returns (the store's journal syncs the writes made together once). The gateway, the API and the buyers each run in a Node process of their own, on the same 2 cores as the hub and Postgres. Latency is a whole paid request as the buyer sees it, beside the same request sent straight to the API. CPU is per paid request, from /proc. Command: \`npm run bench:gateway\` (\`CHIT_BENCH_BUYERS\`, \`CHIT_BENCH_REQUESTS\`, \`CHIT_BENCH_WARMUP\`; \`CHIT_BENCH_STORE=memory\` keeps the seller's store in memory, \`CHIT_BENCH_TIMINGS=1\` breaks the latency down by call, \`CHIT_BENCH_PROFILE=DIR\` profiles the gateway, \`CHIT_BENCH_BUYERS_PROF=DIR\` the buyers, \`CHIT_BENCH_AGREEMENTS=N\` gives the seller N agreements it was paid on before, in its ledger's checkpoint). The first row is one buyer alone, whose requests never wait for another's: what a paid request adds to the same request sent straight to the API. For that row the bench also has another buyer pay the same requests to an app that answers the same bodies itself with the chit middleware (\`chitFastify\`, the middleware path of docs/sellers.md; \`CHIT_BENCH_MIDDLEWARE=1\`), to another seller whose ledger is kept the same way: a paid request's latency without the gateway, so that the gateway's own share is the difference. The last row is a seller already paid on 100,000 agreements, as one that has sold to many buyers for a while: the ledger's work per exchange does not grow with them.`,
    '',
    ...table(
      [
        'buyers at once',
        'agreements paid before',
        'paid requests',
        'paid requests/s',
        'p50 ms',
        'p99 ms',
        'straight to the API: p50 ms',
        'p99 ms',
        'paid to the app itself (chitFastify): p50 ms',
        'CPU µs: gateway',
        'API',
        'hub',
        'Postgres',
        'buyers',
        "seller's side: gateway, API, hub, Postgres",
        "paid requests/s if the 2 cores did only the seller's side",
        'exchanges per request to the hub',
      ],
      input.gateway.map((run) => [
        run.buyers,
        grouped(run.earlierAgreements ?? 0),
        grouped(run.paidRequests),
        grouped(Math.round(run.paidPerSecond)),
        fixed(run.p50Ms),
        fixed(run.p99Ms),
        fixed(run.directP50Ms),
        fixed(run.directP99Ms),
        run.middlewareP50Ms === undefined ? '' : fixed(run.middlewareP50Ms),
        run.cpuUs ? grouped(run.cpuUs.gateway) : 'n/a',
        run.cpuUs ? grouped(run.cpuUs.api) : 'n/a',
        run.cpuUs ? grouped(run.cpuUs.hub) : 'n/a',
        run.cpuUs ? grouped(run.cpuUs.postgres) : 'n/a',
        run.cpuUs ? grouped(run.cpuUs.buyers) : 'n/a',
        run.cpuUs ? grouped(sellerSide(run.cpuUs)) : 'n/a',
        run.cpuUs ? grouped(Math.round(2_000_000 / sellerSide(run.cpuUs))) : 'n/a',
        run.exchangesPerRequest === undefined ? 'n/a' : fixed(run.exchangesPerRequest),
      ]),
    ),
    '',
    "The target is at least 1,000 paid requests/s on these 2 cores with the hub on the same machine, the gateway adding a few milliseconds: at most 2,000 µs of CPU per paid request for the seller's side, the gateway, the API, the hub and Postgres together (the column before last). The buyers are the load generator: they run on the same 2 cores here because there is no other machine, so the paid requests/s measured are what is left to the seller's side after the buyers took their share; on a seller's machine they are elsewhere. What a paid request costs is in the CPU columns. The gateway's share is the HTTP work of two hops (serving the buyer's request and asking the API) and the x402 resource server's, one signature check and one box per payment, and its share of the batched exchange (one hub promise's signature check per request to the hub, `sign: 'latest'`); the API's is a node:http server answering; the buyers' is @x402/fetch and undici's fetch, and a signature. The hub's and Postgres's shares fall as more buyers wait together, because the seller's exchanges then travel in bigger batches. With one buyer alone, every process sleeps between its requests and is woken for each: on this virtual machine that costs each of them several times the CPU per request it spends when busy (compare the toy API's column across the rows), and a paid request takes the gateway, the hub and Postgres in turn, one after another.",
    '',
    ...tunnelSection(input.tunnel),
    '',
    '## Signature verification (SDK)',
    '',
    `Consumer promises verified per second on one core, ${sdk.seconds} s per figure after a warm-up: pure JavaScript (noble curves and hashes) against native libsecp256k1 and keccak. Command: \`npm run bench:sdk\`.`,
    '',
    ...table(
      ['verifier', 'recover/s', 'verify promise/s'],
      [
        ['JavaScript', grouped(sdk.js['recover/s']), grouped(sdk.js['verify promise/s'])],
        ['native', grouped(sdk.native['recover/s']), grouped(sdk.native['verify promise/s'])],
        ['native / JavaScript', `${fixed(sdk.ratio.recover)}x`, `${fixed(sdk.ratio.verifyPromise)}x`],
      ],
    ),
    '',
    '## Gas',
    '',
    'Every operation in `contracts/gas-snapshot.json`, as `npm run gas` (scripts/gas.ts) measured it: repeat settlements (each channel settled once before, each beneficiary already holding tokens), the steady state of a running hub; per-promise figures are the gas of a 50-promise batch divided by 50. Command: `npm run gas`.',
    '',
    ...table(
      ['operation', 'gas'],
      Object.entries(gas).map(([operation, value]) => [`\`${operation}\``, grouped(value)]),
    ),
    '',
    '### Batched against single settlement, per promise',
    '',
    `From the snapshot of \`npm run gas\` (ratios computed by \`npm run bench\`). A hub promise settled without a relayer fee (the provider submits itself) costs ${grouped(noFee)} gas per promise in a 50-promise batch (\`settleProvider.batch50.noRelayerFee.perPromise\`).`,
    '',
    ...table(
      ['settlement of', 'alone', 'per promise in a batch of 50', 'batched / alone'],
      variants.map((v) => [
        v.name,
        `${grouped(v.single)} (\`${v.singleKey}\`)`,
        `${grouped(v.perPromise)} (\`${v.batchKey}\`)`,
        `${fixed((100 * v.perPromise) / v.single)} %`,
      ]),
    ),
    '',
    '### Settlements per block',
    '',
    `How many promises one block settles at a block gas limit of ${BLOCK_GAS_LIMITS.map((l) => grouped(l)).join(' or ')} gas, if it held nothing else: alone = floor(limit / gas of one settlement); batched = floor(limit / gas of a 50-promise batch) x 50 (only whole batches). Computed by \`npm run bench\` from the snapshot of \`npm run gas\`.`,
    '',
    ...table(
      [
        'settlement of',
        ...BLOCK_GAS_LIMITS.flatMap((limit) => [
          `alone, ${grouped(limit / 1_000_000n)}M gas`,
          `batched, ${grouped(limit / 1_000_000n)}M gas`,
        ]),
      ],
      [
        ...variants.map((v) => [
          v.name,
          ...BLOCK_GAS_LIMITS.flatMap((limit) => [
            grouped(limit / BigInt(v.single)),
            grouped((limit / BigInt(v.batch)) * BigInt(BATCH)),
          ]),
        ]),
        [
          'hub promise to a provider, no relayer fee (batch gas taken as 50 x per promise)',
          ...BLOCK_GAS_LIMITS.flatMap((limit) => [
            'not measured',
            grouped((limit / BigInt(noFee * BATCH)) * BigInt(BATCH)),
          ]),
        ],
      ],
    ),
    '',
    '### Cost per promise',
    '',
    `Gas x gas price, in the gas coin (ETH or the chain's own) and in tokens at ${input.tokensPerWei} token unit per wei of the gas coin (RELAYER_TOKENS_PER_WEI, as the hub's relayer prices gas; its default \`1\` means a token with 18 decimals worth exactly as much as the gas coin, an assumption, not a market rate). The hub's relayer quotes this cost times RELAYER_FEE_MARGIN_BPS (1.2x by default). Computed by \`npm run bench\` from the snapshot of \`npm run gas\` (\`RELAYER_TOKENS_PER_WEI=<decimal> npm run bench\` for another token rate).`,
    '',
    ...table(
      [
        'settlement of',
        'gas',
        ...GAS_PRICES_GWEI.flatMap((gwei) => [`${gwei} gwei: gas coin`, `${gwei} gwei: tokens`]),
      ],
      [
        ...variants.flatMap((v) => [
          [`${v.name}, alone`, v.single],
          [`${v.name}, in a batch of 50`, v.perPromise],
        ]),
        ['hub promise to a provider, no relayer fee, in a batch of 50', noFee],
      ].map(([name, gasUsed]) => [
        name as string,
        grouped(gasUsed as number),
        ...GAS_PRICES_GWEI.flatMap((gwei) => [
          formatUnits(BigInt(gasUsed as number) * gwei * 10n ** 9n, 18),
          tokensFor(gasUsed as number, gwei),
        ]),
      ]),
    ),
    '',
  ];
  return `${lines.join('\n')}`;
}

main().catch((error) => {
  console.error(error?.message ?? error);
  process.exit(1);
});
