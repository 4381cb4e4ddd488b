import { settleProvider, settleProviderWithBeneficiary, signSetBeneficiary } from '@chit/sdk';
import { Command } from 'commander';
import type { Address } from 'viem';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { formatAmount, parseAddress } from '../output.js';
import { confirm } from '../prompt.js';
import { loadProviderClaim } from '../provider-claim.js';
import { fromStakeClause, nothingOwed, paidLine, paidOut, summary, takenFromStake, warnIfFromStake } from './settle.js';

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
        '`chit beneficiary set <address>` registers one). Like `chit settle`, it reads the latest hub\n' +
        "promise from the hub, or from the provider's store (--store) when no hub URL is set or the hub\n" +
        'does not answer.',
    )
    .action(handler(runWithdraw));
}

async function runWithdraw(ctx: CliContext, options: { to?: string; yes?: boolean }): Promise<void> {
  const to = options.to === undefined ? undefined : parseAddress(options.to, '--to');
  const claim = await loadProviderClaim(ctx);
  const token = await ctx.token();
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
  const fromStake = warnIfFromStake(ctx, claim);
  if (
    !options.yes &&
    !(await confirm(`Withdraw ${ctx.format(payout)} to ${beneficiary}${fromStakeClause(ctx, fromStake)}?`))
  ) {
    throw new CliError('NOT_CONFIRMED', 'Not withdrawn', 'Nothing was sent. Run the command again to withdraw.');
  }

  const wallet = await ctx.walletClient();
  const { promise, preimage } = claim;
  const { hash, payout: simulated } = to
    ? await settleProviderWithBeneficiary(wallet, {
        promise,
        preimage,
        beneficiary: await signSetBeneficiary(wallet, { registry: await ctx.registry(), beneficiary: to }),
      })
    : await settleProvider(wallet, { promise, preimage });
  const receipt = await ctx.confirmation(hash, to ? 'settlement to the new beneficiary' : 'settlement');
  const paid = paidOut(receipt, claim) ?? { owed: claim.owed, hubFee: claim.hubFee, payout: simulated };
  ctx.out.result(
    {
      source: claim.source,
      hub: claim.hub,
      provider: claim.provider,
      beneficiary,
      beneficiaryChanged: to !== undefined,
      total: formatAmount(claim.promise.total, token.decimals),
      owed: formatAmount(paid.owed, token.decimals),
      hubFee: formatAmount(paid.hubFee, token.decimals),
      payout: formatAmount(paid.payout, token.decimals),
      fromStake: formatAmount(takenFromStake(receipt, claim) ?? fromStake, token.decimals),
      transaction: hash,
    },
    [paidLine(to ? 'Withdrawn to the new beneficiary' : 'Withdrawn', ctx, paid, beneficiary), ['Transaction', hash]],
  );
}
