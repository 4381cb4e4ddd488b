import {
  cancelExit,
  finalizeExit,
  getConsumerChannel,
  instantExit,
  requestExit,
  signInstantExitRequest,
} from '@chit/sdk';
import { Command } from 'commander';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { formatAmount, parseAmount } from '../output.js';

/**
 * `chit exit request|finalize|cancel|instant`: takes tokens out of the identity's channel, after the
 * exit delay or at once with the hub's co-signature.
 *
 * @example
 * program.addCommand(exitCommand());
 */
export function exitCommand(): Command {
  const exit = new Command('exit').description("Take tokens out of the identity's channel at the hub");
  exit
    .command('request')
    .description('Ask to take <amount> out once the exit delay has passed (replaces a pending request)')
    .argument('<amount>', 'tokens, with decimals: 12.5')
    .action(handler(runRequest));
  exit.command('finalize').description('Pay out a requested exit whose delay has passed').action(handler(runFinalize));
  exit.command('cancel').description('Withdraw a pending exit request').action(handler(runCancel));
  exit
    .command('instant')
    .description("Take <amount> out now, co-signed by the hub (needs the hub's service)")
    .argument('<amount>', 'tokens, with decimals: 12.5')
    .action(handler(runInstant));
  return exit;
}

const time = (seconds: bigint) => new Date(Number(seconds) * 1000).toISOString();

async function runRequest(ctx: CliContext, text: string): Promise<void> {
  const client = await ctx.publicClient();
  const hub = await ctx.hub();
  const token = await ctx.token();
  const amount = parseAmount(text, token.decimals);
  const wallet = await ctx.walletClient();
  const { hash } = await requestExit(wallet, { hub, amount });
  await ctx.confirmation(hash, 'exit request');
  const { exit } = await getConsumerChannel(client, { hub, consumer: wallet.account.address });
  const readyAt = exit?.readyAt ?? 0n;
  ctx.out.result({ hub, amount: formatAmount(amount, token.decimals), readyAt: Number(readyAt), transaction: hash }, [
    `Exit of ${ctx.format(amount)} requested.`,
    ['Ready at', time(readyAt)],
    ['Transaction', hash],
    '',
    'Run `chit exit finalize` after that time to receive it.',
  ]);
}

async function runFinalize(ctx: CliContext): Promise<void> {
  const hub = await ctx.hub();
  const token = await ctx.token();
  const wallet = await ctx.walletClient();
  const { hash, amount } = await finalizeExit(wallet, { hub });
  await ctx.confirmation(hash, 'exit');
  ctx.out.result({ hub, amount: formatAmount(amount, token.decimals), transaction: hash }, [
    `Exit finalized: ${ctx.format(amount)} paid to ${wallet.account.address}.`,
    ['Transaction', hash],
  ]);
}

async function runCancel(ctx: CliContext): Promise<void> {
  const hub = await ctx.hub();
  const wallet = await ctx.walletClient();
  const { hash } = await cancelExit(wallet, { hub });
  await ctx.confirmation(hash, 'exit cancellation');
  ctx.out.result({ hub, transaction: hash }, ['Exit request cancelled.', ['Transaction', hash]]);
}

async function runInstant(ctx: CliContext, text: string): Promise<void> {
  const hubClient = ctx.requireHubClient('an instant exit');
  const client = await ctx.publicClient();
  const hub = await ctx.hub();
  const token = await ctx.token();
  const amount = parseAmount(text, token.decimals);
  const wallet = await ctx.walletClient();
  const consumer = wallet.account.address;
  ctx.out.progress(`asking the hub at ${hubClient.url} to co-sign an exit of ${ctx.format(amount)}…`);
  const request = await signInstantExitRequest(wallet, {
    hub,
    chainId: client.chain.id,
    consumer,
    amount,
    issuedAt: BigInt(Math.floor(Date.now() / 1000)),
  });
  const signed = await hubClient.instantExit(request);
  if (signed.consumer !== consumer || signed.amount !== amount) {
    throw new CliError(
      'BAD_HUB_ANSWER',
      `The hub co-signed an exit of ${signed.amount} for ${signed.consumer}, not ${amount} for ${consumer}`,
      'Nothing was sent. Try again, or use `chit exit request <amount>` without the hub.',
    );
  }
  const { hash } = await instantExit(wallet, { hub, amount, deadline: signed.deadline, signature: signed.signature });
  await ctx.confirmation(hash, 'instant exit');
  ctx.out.result({ hub, amount: formatAmount(amount, token.decimals), transaction: hash }, [
    `Instant exit: ${ctx.format(amount)} paid to ${consumer}.`,
    ['Transaction', hash],
  ]);
}
