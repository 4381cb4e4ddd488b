import { SettlementPolicy } from '@chit/sdk';
import { nativeVerifier } from '@chit/sdk/node';
import { Command, Option } from 'commander';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { formatAmount, parseAmount } from '../output.js';
import { loadTunnel, type TunnelEvent, type TunnelProviderEvent, type TunnelStatus } from '../tunnel-module.js';
import { consumerLedger, providerLedger } from '../x402-module.js';

interface ProvideProxyOptions {
  pricePerMinute: string;
  pricePerGib: string;
  port: string;
  host: string;
  interval: string;
  grace?: string;
  allowPrivateTargets?: boolean;
  settleAt?: string;
  maxFeeBps: string;
}

interface ConnectOptions {
  maxPricePerMinute: string;
  maxPricePerGib: string;
  port: string;
  host: string;
  reconnect: string;
}

/**
 * `chit provide proxy`: sells bandwidth per minute and per GiB through a metered SOCKS5 / HTTP CONNECT
 * tunnel (@chit/tunnel). Added under `chit provide`.
 *
 * @example
 * provideCommand().addCommand(provideProxyCommand());
 */
export function provideProxyCommand(): Command {
  return new Command('proxy')
    .description('Sell bandwidth: a SOCKS5 / HTTP CONNECT tunnel paid per minute connected and per GiB carried')
    .requiredOption('--price-per-minute <tokens>', 'the price of a minute connected')
    .requiredOption('--price-per-gib <tokens>', 'the price of a GiB carried, both directions')
    .addOption(new Option('--port <port>', 'where consumers reach the tunnel').default('1080'))
    .addOption(new Option('--host <host>', 'the address to listen on').default('127.0.0.1'))
    .addOption(new Option('--interval <seconds>', 'an invoice at least this often').default('60'))
    .option(
      '--grace <seconds>',
      'how long an invoice may stay unpaid before the consumer is cut off (default: two intervals)',
    )
    .option('--allow-private-targets', 'let consumers reach loopback and private addresses (your own network)')
    .option('--settle-at <tokens>', 'settle through the hub relayer once this much is unsettled (default: never)')
    .addOption(
      new Option('--max-fee-bps <bps>', 'with --settle-at: the most the fees may take, in basis points').default('200'),
    )
    .addHelpText(
      'after',
      '\nConsumers connect with `chit connect tcp://HOST:PORT`. Earnings are kept in the store (--store):\n' +
        'a restart on the same store loses nothing; `chit settle` settles them at any time. Stop with Ctrl-C.',
    )
    .action(handler(runProvideProxy));
}

/**
 * `chit connect PROVIDER`: buys bandwidth from a `chit provide proxy` node through a local SOCKS5 /
 * HTTP CONNECT proxy, paying each invoice its own measure of time and traffic justifies.
 *
 * @example
 * program.addCommand(connectCommand());
 */
export function connectCommand(): Command {
  return new Command('connect')
    .description('Consumer: connect to a bandwidth provider and open a local SOCKS5 / HTTP proxy for your apps')
    .argument('<provider>', "the provider's tunnel, tcp://host:port")
    .requiredOption('--max-price-per-minute <tokens>', 'the most a minute may cost; a dearer provider is refused')
    .requiredOption('--max-price-per-gib <tokens>', 'the most a GiB may cost')
    .addOption(new Option('--port <port>', 'the local proxy port (SOCKS5 and HTTP CONNECT)').default('1081'))
    .addOption(new Option('--host <host>', 'the local proxy address').default('127.0.0.1'))
    .addOption(
      new Option('--reconnect <seconds>', 'how long to try to reach a provider that went away (0: never)').default(
        '30',
      ),
    )
    .addHelpText(
      'after',
      '\nPoint your apps at socks5h://127.0.0.1:PORT or http://127.0.0.1:PORT. Every invoice is checked\n' +
        'against the time and bytes measured here; an overcharging provider is paid nothing and dropped.\n' +
        'A status line shows on a terminal; --json prints one JSON event per line on stdout. Ctrl-C disconnects.',
    )
    .action(handler(runConnect));
}

async function runProvideProxy(ctx: CliContext, options: ProvideProxyOptions): Promise<void> {
  const { startTunnelProvider } = await loadTunnel();
  const token = await ctx.token();
  const amount = amountParser(token.decimals);
  const prices = {
    perMinute: amount(options.pricePerMinute, '--price-per-minute', true),
    perGiB: amount(options.pricePerGib, '--price-per-gib', true),
  };
  const port = parsePort(options.port);
  const intervalMs = seconds(options.interval, '--interval');
  const graceMs = options.grace === undefined ? undefined : seconds(options.grace, '--grace', true);
  const policy = options.settleAt
    ? new SettlementPolicy({
        threshold: amount(options.settleAt, '--settle-at'),
        maxFeeShareBps: Number(options.maxFeeBps),
      })
    : undefined;
  const ledger = await providerLedger(ctx, policy);
  const hubUrl = ctx.requireHubClient('selling').url;
  const format = (value: bigint) => `${formatAmount(value, token.decimals)} ${token.symbol}`;
  const provider = await startTunnelProvider({
    ledger,
    hubUrl,
    prices,
    intervalMs,
    ...(graceMs !== undefined ? { graceMs } : {}),
    port,
    host: options.host,
    allowPrivateTargets: options.allowPrivateTargets ?? false,
    verifier: nativeVerifier(),
    onEvent: (event) => reportProvider(ctx, event, format),
  });
  ctx.out.result(
    {
      url: provider.url,
      provider: ledger.provider,
      hub: ledger.info.hub,
      pricePerMinute: formatAmount(prices.perMinute, token.decimals),
      pricePerGiB: formatAmount(prices.perGiB, token.decimals),
      intervalSeconds: intervalMs / 1000,
    },
    [
      `Selling bandwidth at ${provider.url}`,
      ['Price', `${format(prices.perMinute)} per minute, ${format(prices.perGiB)} per GiB`],
      ['Invoices', `every ${intervalMs / 1000} s`],
      ['Provider', ledger.provider],
      ['Hub', `${ledger.info.hub} (${hubUrl})`],
      `Consumers: chit connect ${provider.url} --max-price-per-minute ${options.pricePerMinute} --max-price-per-gib ${options.pricePerGib}`,
      'Press Ctrl-C to stop.',
    ],
  );
  await untilSignal();
  await provider.close();
}

function reportProvider(ctx: CliContext, event: TunnelProviderEvent, format: (value: bigint) => string): void {
  if (ctx.out.json) {
    process.stderr.write(
      `${JSON.stringify(event, (_key, value) => (typeof value === 'bigint' ? value.toString() : value))}\n`,
    );
    return;
  }
  const who = `session ${event.session?.slice(0, 8) ?? '-'}`;
  if (event.type === 'session') ctx.out.progress(`${who}: ${event.consumer} connected`);
  else if (event.type === 'paid') ctx.out.progress(`${who}: paid, ${format(event.total)} in all`);
  else if (event.type === 'stopped') ctx.out.warn(`${who}: ${event.unpaidInvoices} invoices unpaid, cut off`);
  else if (event.type === 'resumed') ctx.out.progress(`${who}: paid up, served again`);
  else if (event.type === 'closed')
    ctx.out.progress(`${who}: closed, ${event.up + event.down} bytes, ${format(event.paid)} paid`);
  else if (event.type === 'refused') ctx.out.warn(`${who}: the consumer refused an invoice (${event.code})`);
  else if (event.type === 'error') ctx.out.warn(`${who}: ${event.message}`);
}

async function runConnect(ctx: CliContext, providerUrl: string, options: ConnectOptions): Promise<void> {
  const { connectTunnel } = await loadTunnel();
  const token = await ctx.token();
  const amount = amountParser(token.decimals);
  const maxPrices = {
    perMinute: amount(options.maxPricePerMinute, '--max-price-per-minute', true),
    perGiB: amount(options.maxPricePerGib, '--max-price-per-gib', true),
  };
  const { ledger } = await consumerLedger(ctx);
  const tunnel = await connectTunnel({
    provider: providerUrl,
    ledger,
    maxPrices,
    port: parsePort(options.port),
    host: options.host,
    reconnectMs: seconds(options.reconnect, '--reconnect', true),
  });
  const format = (value: bigint) => `${roundAmount(value, token.decimals)} ${token.symbol}`;
  const json = (event: TunnelEvent) =>
    process.stdout.write(
      `${JSON.stringify(event, (key, value) =>
        // The session's password stays in this process.
        key === 'token' ? undefined : typeof value === 'bigint' ? formatAmount(value, token.decimals) : value,
      )}\n`,
    );
  const tty = !ctx.out.json && process.stderr.isTTY === true;
  const show = () => {
    const line = statusLine(tunnel.status(), format);
    if (tty) process.stderr.write(`\r\x1b[2K${line}`);
    else if (!ctx.out.json) process.stderr.write(`${line}\n`);
  };
  const local = { socks5: `socks5h://${options.host}:${tunnel.port}`, http: `http://${options.host}:${tunnel.port}` };
  const status = tunnel.status();
  if (ctx.out.json) json({ type: 'listening', ...local, provider: status.provider, agreementId: status.agreementId });
  else {
    process.stderr.write(
      `Connected to ${status.provider} at ${providerUrl}\nLocal proxy: ${local.socks5} (SOCKS5), ${local.http} (HTTP CONNECT)\n`,
    );
  }
  for (const name of ['connected', 'invoice', 'paid', 'stopped', 'resumed', 'overcharge', 'warning', 'reconnecting']) {
    tunnel.on(name, (event) => {
      if (ctx.out.json) json(event);
      else if (name === 'paid' && !tty) show();
      else if (name !== 'paid' && name !== 'invoice') {
        if (tty) process.stderr.write('\n');
        ctx.out.progress(`${name}: ${String(event.message ?? event.type)}`);
      }
    });
  }
  tunnel.on('traffic', (event) => {
    if (ctx.out.json) json(event);
    else if (tty) show();
  });
  const interrupted = untilSignal().then(() => 'signal' as const);
  const outcome = await Promise.race([interrupted, tunnel.done]);
  if (outcome === 'signal') await tunnel.close();
  const done = await tunnel.done;
  if (ctx.out.json) json(done);
  else {
    if (tty) process.stderr.write('\n');
    process.stderr.write(`Disconnected. ${statusLine({ ...tunnel.status(), connected: true }, format)}\n`);
  }
  if (done.code !== 'CLOSED') {
    throw new CliError(
      done.code,
      `The tunnel closed: ${done.message}`,
      'Nothing more was paid; connect again or choose another provider.',
    );
  }
}

/** `0x1234…abcd  00:01:05  ↑ 1.2 MiB ↓ 30.5 MiB  spent 0.0123 tCHIT  0.011 tCHIT/min` */
function statusLine(status: TunnelStatus, format: (value: bigint) => string): string {
  const total = Math.floor(status.elapsedMs / 1000);
  const clock = [Math.floor(total / 3600), Math.floor(total / 60) % 60, total % 60]
    .map((part) => String(part).padStart(2, '0'))
    .join(':');
  const provider = `${status.provider.slice(0, 6)}…${status.provider.slice(-4)}`;
  return `${provider}  ${clock}  ↑ ${mib(status.up)} ↓ ${mib(status.down)}  spent ${format(status.spent)}  ${format(status.ratePerMinute)}/min${status.connected ? '' : '  (reconnecting)'}`;
}

/** An amount for the status line: at most 6 decimals, rounded down. */
function roundAmount(value: bigint, decimals: number): string {
  const unit = decimals > 6 ? 10n ** BigInt(decimals - 6) : 1n;
  return formatAmount((value / unit) * unit, decimals);
}

function mib(bytes: number): string {
  return `${(bytes / 2 ** 20).toFixed(1)} MiB`;
}

function amountParser(decimals: number) {
  return (text: string, what: string, allowZero = false) => {
    try {
      return parseAmount(text, decimals, { allowZero });
    } catch (error) {
      throw new CliError('BAD_AMOUNT', `${what}: ${(error as Error).message}`, `Give ${what} in tokens, such as 0.01.`);
    }
  };
}

function parsePort(text: string): number {
  const port = Number(text);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CliError('BAD_PORT', `--port: ${text} is not a port`, 'Give a port from 0 to 65535.');
  }
  return port;
}

function seconds(text: string, what: string, allowZero = false): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value < 0 || (!allowZero && value === 0)) {
    throw new CliError(
      'BAD_DURATION',
      `${what}: ${text} is not a number of seconds`,
      `Give ${what} in seconds, such as 60 or 0.5.`,
    );
  }
  return Math.max(allowZero ? 0 : 1, Math.round(value * 1000));
}

function untilSignal(): Promise<void> {
  return new Promise((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      resolve();
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
