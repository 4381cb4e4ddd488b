import { chitTokenAbi, deposit, depositWithPermit, getConsumerChannel, HubError, signDepositPermit } from '@chit/sdk';
import { Command, Option } from 'commander';
import type { Address } from 'viem';
import { readContract } from 'viem/actions';
import { type CliContext, handler } from '../context.js';
import { formatAmount, parseAmount } from '../output.js';

/**
 * `chit deposit <amount>`: moves tokens into the identity's channel at the hub (approve and deposit,
 * or one transaction with `--permit`).
 *
 * @example
 * program.addCommand(depositCommand());
 */
export function depositCommand(): Command {
  return new Command('deposit')
    .description("Deposit tokens into the identity's channel at the hub")
    .argument('<amount>', 'tokens, with decimals: 12.5')
    .option('--permit', 'sign an EIP-2612 permit and deposit in one transaction instead of approve + deposit')
    .addOption(
      new Option(
        '--wait <seconds>',
        'with a hub URL: how long to wait for the hub to see the deposit (0: do not)',
      ).default('120'),
    )
    .action(handler(runDeposit));
}

async function runDeposit(ctx: CliContext, text: string, options: { permit?: boolean; wait: string }): Promise<void> {
  const client = await ctx.publicClient();
  const hub = await ctx.hub();
  const token = await ctx.token();
  const amount = parseAmount(text, token.decimals);
  const wallet = await ctx.walletClient();
  const consumer = wallet.account.address;

  let approval: string | undefined;
  let hash: `0x${string}`;
  if (options.permit) {
    ctx.out.progress(`signing a permit for ${ctx.format(amount)}…`);
    const permit = await signDepositPermit(wallet, { hub, amount, token: token.address });
    ({ hash } = await depositWithPermit(wallet, { permit }));
    await ctx.confirmation(hash, 'deposit with permit');
  } else {
    const allowance = await readContract(client, {
      address: token.address,
      abi: chitTokenAbi,
      functionName: 'allowance',
      args: [consumer, hub],
    });
    const steps = allowance < amount ? 2 : 1;
    if (steps === 2)
      ctx.out.progress(`approving the hub for ${ctx.format(amount)}, then depositing: waiting for confirmation (1/2)…`);
    const result = await deposit(wallet, { hub, amount, token: token.address });
    approval = result.approvalHash;
    hash = result.hash;
    await ctx.confirmation(hash, 'deposit', steps, steps);
  }
  const channel = await getConsumerChannel(client, { hub, consumer });
  const seen = await hubSees(ctx, consumer, channel.balance, Number(options.wait));
  ctx.out.result(
    {
      hub,
      consumer,
      amount: formatAmount(amount, token.decimals),
      balance: formatAmount(channel.balance, token.decimals),
      hubBalance: seen === undefined ? null : formatAmount(seen, token.decimals),
      transactions: { approval: approval ?? null, deposit: hash },
    },
    [
      `Deposited ${ctx.format(amount)} into the channel of ${consumer} at the hub ${hub}.`,
      ['Channel balance', ctx.format(channel.balance)],
      ...(seen === undefined ? [] : ([['At the hub', ctx.format(seen)]] as [string, string][])),
      ['Transaction', hash],
    ],
  );
}

/**
 * With a hub URL set, waits (at most `seconds`) until the hub's books show the channel's balance: the
 * hub credits a deposit once its follower has seen it, after the hub's confirmations, and refuses
 * payments beyond what it has seen. The hub's balance, or undefined without a hub URL or on time-out.
 */
async function hubSees(
  ctx: CliContext,
  consumer: Address,
  balance: bigint,
  seconds: number,
): Promise<bigint | undefined> {
  const hub = ctx.hubClient();
  if (!hub || !(seconds > 0)) return undefined;
  const deadline = Date.now() + seconds * 1000;
  let told = false;
  for (;;) {
    const atHub = await hub.consumer(consumer).then(
      (books) => books.balance,
      (error: unknown) => {
        if (error instanceof HubError && error.code === 'UNKNOWN_CONSUMER') return 0n;
        throw error;
      },
    );
    if (atHub >= balance) return atHub;
    if (Date.now() > deadline) {
      ctx.out.warn(`the hub has not seen the deposit after ${seconds} s; \`chit balance\` shows when it has`);
      return undefined;
    }
    if (!told) ctx.out.progress('waiting for the hub to see the deposit (it follows the chain)…');
    told = true;
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}
