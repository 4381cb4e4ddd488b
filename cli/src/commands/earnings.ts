import { writeFile } from 'node:fs/promises';
import type { HistoryBucket } from '@chit/sdk';
import { Command, Option } from 'commander';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { type Row, table } from '../output.js';

interface EarningsOptions {
  from?: string;
  to?: string;
  bucket: HistoryBucket;
  csv?: boolean;
  settlements?: boolean;
  output?: string;
}

const DAY = 86_400_000;

/**
 * `chit earnings`: what the identity earned as a provider over time, the hub fee it costs, its
 * settlements, and CSV exports of either; read from the hub's history after signing in with the
 * identity (Sign-In with Ethereum).
 *
 * @example
 * program.addCommand(earningsCommand());
 */
export function earningsCommand(): Command {
  return new Command('earnings')
    .description("Show the identity's earnings as a provider over time, or export them (and its settlements) as CSV")
    .option('--from <date>', 'the first day (or instant, ISO 8601) of the range (default: 30 days before --to)')
    .option('--to <date>', 'the end of the range, exclusive (default: the end of today, UTC)')
    .addOption(new Option('--bucket <width>', 'hour or day buckets').choices(['hour', 'day']).default('day'))
    .option('--csv', 'print CSV (RFC 4180) instead of a table')
    .option('--settlements', 'the settlements in the range instead of the earnings')
    .option('-o, --output <file>', 'write the CSV to a file instead of stdout (with --csv)')
    .addHelpText(
      'after',
      "\nThe hub answers an identity's history only to that identity: the command signs a Sign-In with\n" +
        'Ethereum message with the identity key (nothing is sent on-chain). Amounts are before the hub fee;\n' +
        "the fee column is what settling them costs at the hub's fee now. See docs/history.md.",
    )
    .action(handler(runEarnings));
}

async function runEarnings(ctx: CliContext, options: EarningsOptions): Promise<void> {
  const hub = ctx.requireHubClient('chit earnings');
  const range = rangeOf(options);
  const { chainId } = await ctx.hubInfo();
  await ctx.token(); // amounts in the token's units
  const account = await ctx.account();
  ctx.out.progress(`signing in to ${hub.url} as ${account.address}…`);
  const session = await hub.history.signIn(account, { chainId });
  if (options.csv) {
    const kind = options.settlements ? 'settlements' : 'earnings';
    const csv = await hub.history.csv(kind, account.address, { ...range, bucket: options.bucket }, session);
    if (options.output) {
      await writeFile(options.output, csv);
      ctx.out.result({ file: options.output, kind, ...iso(range) }, [['Wrote', `${kind} to ${options.output}`]]);
    } else process.stdout.write(csv);
    return;
  }
  if (options.settlements) {
    const { settlements } = await hub.history.providerSettlements(account.address, range, session);
    const rows = [
      ['CREATED', 'STATUS', 'TOTAL', 'PAID OUT', 'HUB FEE', 'RELAYER FEE', 'TRANSACTION'],
      ...settlements.map((s) => [
        s.createdAt.slice(0, 19).replace('T', ' '),
        s.error ? `${s.status} (${s.error.code})` : s.status,
        ctx.format(s.total),
        s.payout === null ? '-' : ctx.format(s.payout),
        s.hubFee === null ? '-' : ctx.format(s.hubFee),
        ctx.format(s.relayerFee),
        s.txHash ?? '-',
      ]),
    ];
    ctx.out.result(
      { provider: account.address, ...iso(range), settlements },
      settlements.length > 0 ? table(rows) : ['No settlements in this range.'],
    );
    return;
  }
  const history = await hub.history.provider(account.address, { ...range, bucket: options.bucket }, session);
  const label = (start: string) =>
    options.bucket === 'day' ? start.slice(0, 10) : start.slice(0, 16).replace('T', ' ');
  const earning = history.buckets.filter((b) => b.exchanges > 0);
  const width = options.bucket === 'day' ? 'day' : 'hour';
  const lines: (Row | string)[] = [
    ...(earning.length > 0
      ? table([
          [options.bucket === 'day' ? 'DAY (UTC)' : 'HOUR (UTC)', 'EARNED', 'HUB FEE', 'EXCHANGES'],
          ...earning.map((b) => [label(b.start), ctx.format(b.amount), ctx.format(b.hubFee), String(b.exchanges)]),
        ])
      : [`No earnings from ${history.from} to ${history.to}.`]),
    ...(earning.length > 0 && earning.length < history.buckets.length
      ? [
          `(${history.buckets.length - earning.length} ${width}s without earnings are not shown; --json or --csv has them all)`,
        ]
      : []),
    '',
    ['Earned in the range', ctx.format(history.total.amount)],
    ['Hub fee at today’s fee', `${ctx.format(history.total.hubFee)} (${(history.fee / 100).toFixed(2)}%)`],
    ['Exchanges', String(history.total.exchanges)],
    '',
    ['Promised by the hub (all time)', ctx.format(history.books.promised)],
    ['Settled on-chain', ctx.format(history.books.settled)],
    ['Unsettled', ctx.format(history.books.unsettled)],
  ];
  ctx.out.result(history, lines);
}

/** The range of the options: --to defaults to the end of today (UTC), --from to 30 days before it. */
function rangeOf(options: EarningsOptions): { from: Date; to: Date } {
  const date = (value: string, flag: string) => {
    const at = new Date(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
    if (Number.isNaN(at.getTime())) {
      throw new CliError(
        'INVALID_OPTION',
        `${flag}: not a date: ${value}`,
        'Use YYYY-MM-DD (UTC) or an ISO 8601 instant.',
      );
    }
    return at;
  };
  const to = options.to ? date(options.to, '--to') : new Date(Math.floor(Date.now() / DAY) * DAY + DAY);
  const from = options.from ? date(options.from, '--from') : new Date(to.getTime() - 30 * DAY);
  if (from.getTime() >= to.getTime()) {
    throw new CliError('INVALID_OPTION', '--from must be before --to', 'Give a range that starts before it ends.');
  }
  return { from, to };
}

const iso = (range: { from: Date; to: Date }) => ({ from: range.from.toISOString(), to: range.to.toISOString() });
