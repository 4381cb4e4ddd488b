import { Command } from 'commander';
import { readContract } from 'viem/actions';
import { deposit } from '../../actions/deposit.js';
import { depositWithPermit } from '../../actions/depositWithPermit.js';
import { getConsumerChannel } from '../../actions/getConsumerChannel.js';
import { signDepositPermit } from '../../actions/signDepositPermit.js';
import { chitTokenAbi } from '../../generated/abis.js';
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
    .action(handler(runDeposit));
}

async function runDeposit(ctx: CliContext, text: string, options: { permit?: boolean }): Promise<void> {
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
  ctx.out.result(
    {
      hub,
      consumer,
      amount: formatAmount(amount, token.decimals),
      balance: formatAmount(channel.balance, token.decimals),
      transactions: { approval: approval ?? null, deposit: hash },
    },
    [
      `Deposited ${ctx.format(amount)} into the channel of ${consumer} at the hub ${hub}.`,
      ['Channel balance', ctx.format(channel.balance)],
      ['Transaction', hash],
    ],
  );
}
