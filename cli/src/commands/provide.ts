import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { SettlementPolicy } from '@chit/sdk';
import { Command, Option } from 'commander';
import { bytesToHex, type Hex } from 'viem';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { formatAmount, parseAmount } from '../output.js';
import { type GatewayEvent, loadX402, providerLedger, type RoutePrices } from '../x402-module.js';

interface ProvideHttpOptions {
  upstream: string;
  pricePerRequest: string;
  pricePerMib: string;
  routes?: string;
  port: string;
  host: string;
  settleAt?: string;
  maxFeeBps: string;
  corsOrigin: string[];
}

/**
 * `chit provide http`: sells an HTTP API through a paid reverse proxy (x402 with the chit scheme).
 *
 * @example
 * program.addCommand(provideCommand());
 */
export function provideCommand(): Command {
  return new Command('provide').description('Provider: sell a service for Chit payments').addCommand(
    new Command('http')
      .description('Sell an HTTP API: a reverse proxy that answers 402 until a request is paid, then forwards it')
      .requiredOption('--upstream <url>', 'the API to sell (requests are forwarded to it)')
      .requiredOption('--price-per-request <tokens>', 'the price of one request')
      .addOption(new Option('--price-per-mib <tokens>', 'the price per MiB of response body').default('0'))
      .option(
        '--routes <file>',
        'JSON prices by route: { "GET /weather": { "pricePerRequest": "0.01", "pricePerMiB": "0" } }',
      )
      .addOption(new Option('--port <port>', 'where buyers reach the gateway').default('8402'))
      .addOption(new Option('--host <host>', 'the address to listen on').default('127.0.0.1'))
      .option('--settle-at <tokens>', 'settle through the hub relayer once this much is unsettled (default: never)')
      .addOption(
        new Option('--max-fee-bps <bps>', 'with --settle-at: the most the fees may take, in basis points').default(
          '200',
        ),
      )
      .addHelpText(
        'after',
        '\nBuyers pay with x402 (PAYMENT-SIGNATURE, the chit scheme): `chit pay URL`, or @chit/x402 with\n' +
          '@x402/fetch. Earnings are kept in the store (--store) and can be settled with `chit settle`\n' +
          'at any time, even when the hub is gone. An upstream answer of 400 or more is not charged.\n' +
          'Stop with Ctrl-C.',
      )
      .action(handler(runProvideHttp)),
  );
}

async function runProvideHttp(ctx: CliContext, options: ProvideHttpOptions): Promise<void> {
  const { startGateway } = await loadX402();
  const token = await ctx.token();
  const amount = (text: string, what: string, allowZero = false) => {
    try {
      return parseAmount(text, token.decimals, { allowZero });
    } catch (error) {
      throw new CliError('BAD_AMOUNT', `${what}: ${(error as Error).message}`, `Give ${what} in tokens, such as 0.01.`);
    }
  };
  const pricePerRequest = amount(options.pricePerRequest, '--price-per-request');
  const pricePerMiB = amount(options.pricePerMib, '--price-per-mib', true);
  const routes = options.routes
    ? await readRoutes(options.routes, (text, what) => amount(text, what, true))
    : undefined;
  const port = Number(options.port);
  if (!Number.isInteger(port) || port < 0 || port > 65_535) {
    throw new CliError('BAD_PORT', `--port: ${options.port} is not a port`, 'Give a port from 0 to 65535.');
  }
  const policy = options.settleAt
    ? new SettlementPolicy({
        threshold: amount(options.settleAt, '--settle-at'),
        maxFeeShareBps: Number(options.maxFeeBps),
      })
    : undefined;
  const ledger = await providerLedger(ctx, policy);
  const secret = await sellerSecret(ctx, ledger.key);
  const format = (value: bigint) => `${formatAmount(value, token.decimals)} ${token.symbol}`;
  const gateway = await startGateway({
    upstream: options.upstream,
    hubUrl: ctx.requireHubClient('selling').url,
    ledger,
    secret,
    pricePerRequest,
    pricePerMiB,
    ...(routes ? { routes } : {}),
    port,
    host: options.host,
    corsOrigins: options.corsOrigin,
    onEvent: (event) => report(ctx, event),
  });
  ctx.out.result(
    {
      url: gateway.url,
      upstream: options.upstream,
      provider: ledger.provider,
      hub: ledger.info.hub,
      pricePerRequest: formatAmount(pricePerRequest, token.decimals),
      pricePerMiB: formatAmount(pricePerMiB, token.decimals),
    },
    [
      `Selling ${options.upstream} at ${gateway.url}`,
      ['Price', `${format(pricePerRequest)} per request, ${format(pricePerMiB)} per MiB of response`],
      ['Provider', ledger.provider],
      ['Hub', `${ledger.info.hub} (${ctx.requireHubClient('selling').url})`],
      [
        'Settlement',
        policy ? `through the hub relayer from ${options.settleAt} ${token.symbol} unsettled` : 'by hand: chit settle',
      ],
      'Press Ctrl-C to stop.',
    ],
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void gateway.close().finally(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}

function report(ctx: CliContext, event: GatewayEvent): void {
  if (ctx.out.json) {
    process.stderr.write(
      `${JSON.stringify(event, (_key, value) => (typeof value === 'bigint' ? value.toString() : value))}\n`,
    );
    return;
  }
  if (event.type === 'forwarded')
    ctx.out.progress(`${event.method} ${event.path} → ${event.status}, ${event.bytes} bytes`);
  else if (event.type === 'upstream-error')
    ctx.out.warn(`${event.method} ${event.path}: the API failed, not charged (${event.message})`);
  else if (event.type === 'cut-off')
    ctx.out.warn(`${event.method} ${event.path} → ${event.status}: cut off after ${event.bytes} bytes (metered)`);
  else if (event.type === 'settlement-error') ctx.out.warn(`settlement: ${event.message}`);
  else ctx.out.progress('settlement requested through the hub relayer');
}

/** Prices by route from a JSON file, in tokens. */
async function readRoutes(
  file: string,
  amount: (text: string, what: string) => bigint,
): Promise<Record<string, RoutePrices>> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await readFile(file, 'utf8'));
  } catch (error) {
    throw new CliError(
      'BAD_ROUTES',
      `--routes ${file}: ${(error as Error).message}`,
      'Give a JSON file of prices by route.',
    );
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new CliError(
      'BAD_ROUTES',
      `--routes ${file}: expected an object of routes`,
      'Example: { "GET /weather": { "pricePerRequest": "0.01" } }',
    );
  }
  const routes: Record<string, RoutePrices> = {};
  for (const [route, prices] of Object.entries(parsed)) {
    const { pricePerRequest, pricePerMiB, ...rest } = (prices ?? {}) as Record<string, unknown>;
    if (
      Object.keys(rest).length > 0 ||
      (pricePerRequest !== undefined && typeof pricePerRequest !== 'string') ||
      (pricePerMiB !== undefined && typeof pricePerMiB !== 'string')
    ) {
      throw new CliError(
        'BAD_ROUTES',
        `--routes ${file}: ${route} must be { "pricePerRequest"?: "tokens", "pricePerMiB"?: "tokens" }`,
        'Give the prices as strings of tokens, such as "0.01".',
      );
    }
    routes[route] = {
      ...(pricePerRequest !== undefined
        ? { pricePerRequest: amount(pricePerRequest, `${route} pricePerRequest`) }
        : {}),
      ...(pricePerMiB !== undefined ? { pricePerMiB: amount(pricePerMiB, `${route} pricePerMiB`) } : {}),
    };
  }
  return routes;
}

/**
 * The seller's invoice secret (R = HMAC(secret, nonce)), made once and kept in the store beside the
 * ledger, so that invoices issued before a restart can still be paid.
 */
async function sellerSecret(ctx: CliContext, ledgerKey: string): Promise<Hex> {
  const store = ctx.store();
  const key = ledgerKey.replace(/^chit\/provider\//, 'chit/x402/seller-secret/');
  const stored = await store.get(key);
  if (typeof stored === 'string' && /^0x[0-9a-f]{64}$/.test(stored)) return stored as Hex;
  if (stored !== undefined) {
    throw new CliError(
      'STORE_DAMAGED',
      `The seller secret ${key} in the store is not 32 bytes of hex`,
      'Remove it to make a new one (invoices not yet paid will be refused).',
    );
  }
  const secret = bytesToHex(randomBytes(32));
  await store.put(key, secret);
  return secret;
}
