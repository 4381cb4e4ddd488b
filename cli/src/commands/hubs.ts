import { type HubListing, listHubs } from '@chit/sdk';
import { Command } from 'commander';
import { type CliContext, handler } from '../context.js';
import { formatAmount, table } from '../output.js';

/**
 * `chit hubs`: every hub of the Registry with its URL, fee, stake and status.
 *
 * @example
 * program.addCommand(hubsCommand());
 */
export function hubsCommand(): Command {
  return new Command('hubs')
    .description('List the hubs registered in the Registry: URL, fee, stake and status')
    .addHelpText(
      'after',
      '\nThe Registry is --registry (CHIT_REGISTRY), or the one that created the configured hub.\n' +
        'Pick a hub and set its URL with --hub-url or CHIT_HUB_URL.',
    )
    .action(handler(runHubs));
}

async function runHubs(ctx: CliContext): Promise<void> {
  const client = await ctx.publicClient();
  const registry = await ctx.registry();
  const token = await ctx.token();
  const hubs: HubListing[] = [];
  for (let offset: number | null = 0; offset !== null; ) {
    const page = await listHubs(client, { registry, offset });
    hubs.push(...page.hubs);
    offset = page.nextOffset;
  }
  const percent = (fee: number) => `${(fee / 100).toFixed(2)}%`;
  ctx.out.result(
    {
      registry,
      token,
      hubs: hubs.map((hub) => ({
        hub: hub.hub,
        operator: hub.operator,
        url: hub.url,
        fee: hub.fee,
        stake: formatAmount(hub.stake, token.decimals),
        status: hub.status,
      })),
    },
    hubs.length === 0
      ? [`No hubs are registered in the Registry ${registry}.`]
      : table([
          ['HUB', 'URL', 'FEE', `STAKE (${token.symbol})`, 'STATUS'],
          ...hubs.map((hub) => [
            hub.hub,
            hub.url,
            percent(hub.fee),
            formatAmount(hub.stake, token.decimals),
            hub.status,
          ]),
        ]),
  );
}
