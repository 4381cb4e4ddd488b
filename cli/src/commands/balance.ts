import { getConsumerChannel, getProviderChannel, type HubClient, HubError } from '@chit/sdk';
import { Command } from 'commander';
import { type CliContext, handler } from '../context.js';
import { toErrorReport } from '../errors.js';
import { formatAmount, type Row } from '../output.js';

/**
 * `chit balance`: the identity's channel as a consumer (on-chain, and what the hub says) and what it
 * earned as a provider.
 *
 * @example
 * program.addCommand(balanceCommand());
 */
export function balanceCommand(): Command {
  return new Command('balance')
    .description("Show the identity's channel (on-chain and at the hub) and its earnings as a provider")
    .addHelpText(
      'after',
      "\nWith a hub URL set, the hub's view is shown too: what the consumer promised and may still spend,\n" +
        'and what the hub owes the provider (earned, settled, unsettled).',
    )
    .action(handler(runBalance));
}

const time = (seconds: bigint) => new Date(Number(seconds) * 1000).toISOString();

async function runBalance(ctx: CliContext): Promise<void> {
  const client = await ctx.publicClient();
  const hub = await ctx.hub();
  const token = await ctx.token();
  const address = await ctx.address();
  const registry = await ctx.registry();
  const [channel, provider] = await Promise.all([
    getConsumerChannel(client, { hub, consumer: address }),
    getProviderChannel(client, { hub, provider: address, registry }),
  ]);
  const hubClient = ctx.hubClient();
  const [consumerAtHub, providerAtHub] = hubClient
    ? await Promise.all([
        fromHub(ctx, hubClient, 'UNKNOWN_CONSUMER', () => hubClient.consumer(address)),
        fromHub(ctx, hubClient, 'UNKNOWN_PROVIDER', () => hubClient.provider(address)),
      ])
    : [undefined, undefined];
  const amount = (value: bigint) => formatAmount(value, token.decimals);
  const exit = (pending: { amount: bigint; readyAt: bigint } | null) =>
    pending ? { amount: amount(pending.amount), readyAt: Number(pending.readyAt) } : null;

  const data = {
    address,
    hub,
    token,
    consumer: {
      onChain: { balance: amount(channel.balance), settled: amount(channel.settled), pendingExit: exit(channel.exit) },
      hub: consumerAtHub
        ? {
            balance: amount(consumerAtHub.balance),
            promised: amount(consumerAtHub.promised),
            credited: amount(consumerAtHub.credited),
            available: amount(consumerAtHub.available),
            pendingExit: exit(consumerAtHub.pendingExit),
          }
        : null,
    },
    provider: {
      onChain: {
        settled: amount(provider.settled),
        beneficiary: provider.beneficiary,
        registered: provider.registered,
      },
      hub: providerAtHub
        ? {
            earned: amount(providerAtHub.earned),
            settled: amount(providerAtHub.settled),
            unsettled: amount(providerAtHub.unsettled),
          }
        : null,
    },
  };

  const pendingExit = (pending: { amount: bigint; readyAt: bigint } | null) =>
    pending ? `${ctx.format(pending.amount)}, ready at ${time(pending.readyAt)}` : 'none';
  const rows: (Row | string)[] = [
    ['Identity', address],
    ['Hub', hub],
    '',
    'As a consumer, on-chain:',
    ['  balance', ctx.format(channel.balance)],
    ['  settled', ctx.format(channel.settled)],
    ['  pending exit', pendingExit(channel.exit)],
  ];
  if (hubClient) {
    rows.push('As a consumer, at the hub:');
    if (consumerAtHub) {
      rows.push(
        ['  promised', ctx.format(consumerAtHub.promised)],
        ['  credited', ctx.format(consumerAtHub.credited)],
        ['  available', ctx.format(consumerAtHub.available)],
        ['  pending exit', pendingExit(consumerAtHub.pendingExit)],
      );
    } else rows.push(consumerAtHub === null ? '  (no channel known to the hub)' : '  (unavailable: see the warning)');
  }
  rows.push(
    '',
    'As a provider:',
    ['  settled on-chain', ctx.format(provider.settled)],
    ['  beneficiary', provider.beneficiary === address ? `${provider.beneficiary} (itself)` : provider.beneficiary],
  );
  if (providerAtHub) {
    rows.push(
      ['  earned (hub)', ctx.format(providerAtHub.earned)],
      ['  settled (hub)', ctx.format(providerAtHub.settled)],
      ['  unsettled (hub)', ctx.format(providerAtHub.unsettled)],
    );
  } else if (hubClient)
    rows.push(providerAtHub === null ? '  (no earnings known to the hub)' : '  (unavailable: see the warning)');
  if (!hubClient) rows.push('', "Set --hub-url (or CHIT_HUB_URL) to see the hub's view too.");
  ctx.out.result(data, rows);
}

/** The hub's answer; null when it does not know the address (`unknownCode`); undefined, with a warning, when it failed. */
async function fromHub<T>(
  ctx: CliContext,
  hubClient: HubClient,
  unknownCode: string,
  ask: () => Promise<T>,
): Promise<T | null | undefined> {
  try {
    return await ask();
  } catch (error) {
    if (error instanceof HubError && error.code === unknownCode) return null;
    const report = toErrorReport(error);
    ctx.out.warn(`the hub at ${hubClient.url} did not say (${report.message}); showing on-chain figures only`);
    return undefined;
  }
}
