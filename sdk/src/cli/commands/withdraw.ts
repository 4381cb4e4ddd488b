import { Command } from 'commander';
import type { Address } from 'viem';
import { settleProvider } from '../../actions/settleProvider.js';
import { settleProviderWithBeneficiary } from '../../actions/settleProviderWithBeneficiary.js';
import { signSetBeneficiary } from '../../actions/signSetBeneficiary.js';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { formatAmount, parseAddress } from '../output.js';
import { confirm } from '../prompt.js';
import { fetchProviderClaim } from '../provider-claim.js';
import { nothingOwed, summary } from './settle.js';

/**
 * `chit withdraw [--to <address>]`: a provider settles everything owed now, to its beneficiary or to a
 * new beneficiary in the same transaction.
 *
 * @example
 * program.addCommand(withdrawCommand());
 */
export function withdrawCommand(): Command {
  return new Command('withdraw')
    .description('Provider: settle everything the hub owes now, to the beneficiary or (--to) to a new one')
    .option('--to <address>', 'make <address> the beneficiary and pay it, in one transaction')
    .option('-y, --yes', 'do not ask for confirmation')
    .addHelpText(
      'after',
      '\n--to changes the beneficiary in the Registry for good (it needs a registered identity:\n' +
        '`chit beneficiary set <address>` registers one).',
    )
    .action(handler(runWithdraw));
}

async function runWithdraw(ctx: CliContext, options: { to?: string; yes?: boolean }): Promise<void> {
  const to = options.to === undefined ? undefined : parseAddress(options.to, '--to');
  ctx.requireHubClient('withdrawing');
  const token = await ctx.token();
  const claim = await fetchProviderClaim(ctx);
  if (!claim || claim.owed === 0n) {
    if (to) ctx.out.warn(`the beneficiary is unchanged; \`chit beneficiary set ${to}\` changes it without settling`);
    return nothingOwed(ctx, claim);
  }
  if (to && !claim.channel.registered) {
    throw new CliError(
      'NOT_REGISTERED',
      `${claim.provider} is not registered, so it has no beneficiary to change`,
      `Register it with \`chit beneficiary set ${to}\`, then run \`chit withdraw\`.`,
    );
  }
  const beneficiary: Address = to ?? claim.channel.beneficiary;
  const payout = claim.owed - claim.hubFee;
  ctx.out.notice(
    summary(ctx, claim, 0n, payout, false, undefined).map((row) =>
      typeof row !== 'string' && row[0] === 'You receive' && to
        ? ['You receive', `${ctx.format(payout)} at ${to} (the new beneficiary)`]
        : row,
    ),
  );
  if (!options.yes && !(await confirm(`Withdraw ${ctx.format(payout)} to ${beneficiary}?`))) {
    throw new CliError('NOT_CONFIRMED', 'Not withdrawn', 'Nothing was sent. Run the command again to withdraw.');
  }

  const wallet = await ctx.walletClient();
  const { promise, preimage } = claim;
  const { hash, payout: paid } = to
    ? await settleProviderWithBeneficiary(wallet, {
        promise,
        preimage,
        beneficiary: await signSetBeneficiary(wallet, { registry: await ctx.registry(), beneficiary: to }),
      })
    : await settleProvider(wallet, { promise, preimage });
  await ctx.confirmation(hash, to ? 'settlement to the new beneficiary' : 'settlement');
  ctx.out.result(
    {
      hub: claim.hub,
      provider: claim.provider,
      beneficiary,
      beneficiaryChanged: to !== undefined,
      owed: formatAmount(claim.owed, token.decimals),
      hubFee: formatAmount(claim.hubFee, token.decimals),
      payout: formatAmount(paid, token.decimals),
      transaction: hash,
    },
    [
      `Withdrawn: ${ctx.format(paid)} paid to ${beneficiary}${to ? ', now the beneficiary' : ''}.`,
      ['Transaction', hash],
    ],
  );
}
