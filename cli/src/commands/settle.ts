import {
  type HubClient,
  type HubSettlementQuote,
  hubAbi,
  settleProvider,
  signSettlementAuthorization,
} from '@chit/sdk';
import { Command, Option } from 'commander';
import { type Address, isAddressEqual, parseEventLogs, type TransactionReceipt } from 'viem';
import { type CliContext, handler } from '../context.js';
import { CliError, toErrorReport } from '../errors.js';
import { waitForHubJob } from '../hub-job.js';
import { formatAmount, type Row } from '../output.js';
import { confirm } from '../prompt.js';
import { fetchProviderClaim, loadProviderClaim, type ProviderClaim } from '../provider-claim.js';

interface SettleOptions {
  relayer?: boolean;
  yes?: boolean;
  timeout: string;
}

/**
 * `chit settle`: a provider collects what the hub owes it, directly on-chain or through the hub's
 * relayer, after seeing the fees.
 *
 * @example
 * program.addCommand(settleCommand());
 */
export function settleCommand(): Command {
  return new Command('settle')
    .description("Provider: settle the hub's latest promise on-chain and get paid to the beneficiary")
    .option('--relayer', "let the hub's relayer send the transaction (pays its relayer fee instead of gas)")
    .option('-y, --yes', 'do not ask for confirmation')
    .addOption(
      new Option('--timeout <seconds>', "with --relayer: how long to wait for the relayer's transaction").default(
        '300',
      ),
    )
    .addHelpText(
      'after',
      '\nThe latest hub promise and its R are fetched from the hub (a recovery request signed with the\n' +
        'identity key), checked, and settled; the hub fee and any relayer fee are shown first. With no hub\n' +
        "URL set, or a hub that does not answer, they are read from the provider's store (--store) and\n" +
        'settled directly: that needs only the RPC URL.',
    )
    .action(handler(runSettle));
}

async function runSettle(ctx: CliContext, options: SettleOptions): Promise<void> {
  const timeoutMs = Number(options.timeout) * 1000;
  if (!(timeoutMs > 0)) {
    throw new CliError('INVALID_OPTION', `--timeout ${options.timeout} is not a number of seconds`, 'Give, say, 300.');
  }
  const relayer = options.relayer === true;
  // The relayer is the hub's: without an answering hub there is only the direct way.
  const hubClient = relayer ? ctx.requireHubClient("settling through the hub's relayer") : ctx.hubClient();
  const claim = relayer ? await fetchProviderClaim(ctx, hubClient!) : await loadProviderClaim(ctx);
  await ctx.token();
  if (!claim || claim.owed === 0n) return nothingOwed(ctx, claim);

  const quote = claim.source === 'hub' ? await settlementQuote(ctx, hubClient!, claim, relayer) : undefined;
  const relayerFee = relayer ? quote!.relayerFee : 0n;
  if (relayer && relayerFee >= claim.owed - claim.hubFee) {
    throw new CliError(
      'RELAYER_FEE_TOO_HIGH',
      `The relayer fee ${ctx.format(relayerFee)} takes all of the ${ctx.format(claim.owed - claim.hubFee)} owed after the hub fee`,
      'Settle directly (without --relayer), or wait until more is owed.',
    );
  }
  const payout = claim.owed - claim.hubFee - relayerFee;
  ctx.out.notice(summary(ctx, claim, relayerFee, payout, relayer, quote));
  const fromStake = warnIfFromStake(ctx, claim);
  if (
    !options.yes &&
    !(await confirm(
      `Settle, paying ${ctx.format(payout)} to ${claim.channel.beneficiary}${fromStakeClause(ctx, fromStake)}?`,
    ))
  ) {
    throw new CliError('NOT_CONFIRMED', 'Not settled', 'Nothing was sent. Run the command again to settle.');
  }

  const decimals = ctx.tokenInfo!.decimals;
  if (!relayer) {
    const wallet = await ctx.walletClient();
    const settled = await settleProvider(wallet, { promise: claim.promise, preimage: claim.preimage });
    const receipt = await ctx.confirmation(settled.hash, 'settlement');
    // What the transaction paid, from its ProviderSettled event: it includes a fee change that took
    // effect since the figures above were read.
    const paid = paidOut(receipt, claim) ?? { owed: claim.owed, hubFee: claim.hubFee, payout: settled.payout };
    ctx.out.result(
      {
        source: claim.source,
        hub: claim.hub,
        provider: claim.provider,
        beneficiary: claim.channel.beneficiary,
        total: formatAmount(claim.promise.total, decimals),
        owed: formatAmount(paid.owed, decimals),
        hubFee: formatAmount(paid.hubFee, decimals),
        relayerFee: '0',
        payout: formatAmount(paid.payout, decimals),
        fromStake: formatAmount(takenFromStake(receipt, claim) ?? fromStake, decimals),
        transaction: settled.hash,
      },
      [paidLine('Settled', ctx, paid, claim.channel.beneficiary), ['Transaction', settled.hash]],
    );
    return;
  }

  const account = await ctx.account();
  // The authorization names the hub's relayer (from its quote): no one else can submit it and take the fee.
  const authorization = await signSettlementAuthorization(account, claim.promise, relayerFee, quote!.relayer);
  const job = await hubClient!.requestSettlement({ provider: claim.provider, relayerFee, authorization });
  const settlement = await waitForHubJob(ctx, hubClient!, job.id, timeoutMs, {
    failedHint: 'Settle directly instead: `chit settle` without --relayer.',
  });
  ctx.out.result(
    {
      source: claim.source,
      hub: claim.hub,
      provider: claim.provider,
      beneficiary: claim.channel.beneficiary,
      total: formatAmount(claim.promise.total, decimals),
      owed: formatAmount(claim.owed, decimals),
      hubFee: formatAmount(claim.hubFee, decimals),
      relayerFee: formatAmount(relayerFee, decimals),
      payout: formatAmount(payout, decimals),
      fromStake: formatAmount(fromStake, decimals),
      settlement: settlement.id,
      transaction: settlement.txHash,
    },
    [
      `Settled by the hub's relayer: ${ctx.format(payout)} paid to ${claim.channel.beneficiary}.`,
      ['Settlement', settlement.id],
      ['Transaction', settlement.txHash ?? undefined],
    ],
  );
}

/** What a settlement paid: the amount settled before fees, the hub fee, and the payout to the beneficiary. */
export interface PaidOut {
  owed: bigint;
  hubFee: bigint;
  payout: bigint;
}

/**
 * What a mined settlement of `claim` paid, from its `ProviderSettled` event; undefined without one.
 *
 * @example
 * const paid = paidOut(await ctx.confirmation(hash, 'settlement'), claim);
 */
export function paidOut(receipt: TransactionReceipt, claim: ProviderClaim): PaidOut | undefined {
  const [event] = parseEventLogs({
    abi: hubAbi,
    eventName: 'ProviderSettled',
    logs: receipt.logs,
    args: { provider: claim.provider },
  }).filter((log) => isAddressEqual(log.address, claim.hub));
  if (!event) return undefined;
  const { amount, hubFee, relayerFee } = event.args;
  return { owed: amount, hubFee, payout: amount - hubFee - relayerFee };
}

/**
 * What of settling `claim` the hub's stake would pay: the part of the outflow (payout and relayer fee,
 * that is the amount settled less the hub fee) that its free funds cannot. When it is not zero, says
 * so on stderr, with or without --yes: paying a claim from the stake punishes the hub.
 *
 * @example
 * const fromStake = warnIfFromStake(ctx, claim); // 0n when the free funds pay it all
 */
export function warnIfFromStake(ctx: CliContext, claim: ProviderClaim): bigint {
  const outflow = claim.owed - claim.hubFee;
  const { freeFunds, stake } = claim.info;
  if (outflow <= freeFunds) return 0n;
  const fromStake = outflow - freeFunds;
  ctx.out.warn(
    fromStake > stake
      ? `the hub's free funds and stake hold ${ctx.format(freeFunds + stake)}, less than the ${ctx.format(outflow)} this settlement pays out: the Hub contract will refuse it (HubInsufficientFunds)`
      : `the hub's free funds hold ${ctx.format(freeFunds)}, so ${ctx.format(fromStake)} of the ${ctx.format(outflow)} this settlement pays out comes from its stake: that marks the hub punished until its operator tops the stake up. You are paid in full all the same.`,
  );
  return fromStake;
}

/**
 * The confirmation question's mention of the stake: `, 6.93 CHIT of it from the hub's stake (…)`, or nothing.
 *
 * @example
 * await confirm(`Settle, paying ${amount} to ${beneficiary}${fromStakeClause(ctx, fromStake)}?`);
 */
export function fromStakeClause(ctx: CliContext, fromStake: bigint): string {
  return fromStake > 0n ? `, ${ctx.format(fromStake)} of it from the hub's stake (which punishes the hub)` : '';
}

/**
 * What a mined settlement of `claim` took from the hub's stake, from its `HubPunished` event: 0n without one,
 * undefined for a receipt that is not the settlement's.
 *
 * @example
 * const fromStake = takenFromStake(receipt, claim) ?? estimate;
 */
export function takenFromStake(receipt: TransactionReceipt, claim: ProviderClaim): bigint | undefined {
  const ours = (log: { address: Address }) => isAddressEqual(log.address, claim.hub);
  const settled = parseEventLogs({ abi: hubAbi, eventName: 'ProviderSettled', logs: receipt.logs }).some(ours);
  if (!settled) return undefined;
  const [punished] = parseEventLogs({ abi: hubAbi, eventName: 'HubPunished', logs: receipt.logs }).filter(ours);
  return punished ? punished.args.fromStake : 0n;
}

/**
 * The line that says what a settlement paid: `Settled: 6.93 CHIT paid to 0x… (7 CHIT settled, less the hub fee of 0.07 CHIT).`
 *
 * @example
 * paidLine('Withdrawn', ctx, paid, beneficiary);
 */
export function paidLine(what: string, ctx: CliContext, paid: PaidOut, beneficiary: Address): string {
  return `${what}: ${ctx.format(paid.payout)} paid to ${beneficiary} (${ctx.format(paid.owed)} settled, less the hub fee of ${ctx.format(paid.hubFee)}).`;
}

/**
 * Reports that nothing is owed (the command then exits 0): the hub holds no promise, or it is settled.
 *
 * @example
 * if (!claim || claim.owed === 0n) return nothingOwed(ctx, claim);
 */
export function nothingOwed(ctx: CliContext, claim: ProviderClaim | undefined): void {
  const settled = claim ? formatAmount(claim.channel.settled, ctx.tokenInfo!.decimals) : '0';
  ctx.out.result({ source: claim?.source ?? 'hub', owed: '0', settled }, [
    claim
      ? `Nothing to settle: the latest hub promise (${ctx.format(claim.promise.total)}) is settled.`
      : 'Nothing to settle: the hub holds no promise to this identity.',
  ]);
}

/** The hub's quote; required with --relayer (it names the relayer fee), else only shown when available. */
async function settlementQuote(
  ctx: CliContext,
  hubClient: HubClient,
  claim: ProviderClaim,
  relayer: boolean,
): Promise<HubSettlementQuote | undefined> {
  try {
    const quote = await hubClient.settlementQuote(claim.provider);
    if (quote.amount !== claim.owed) {
      ctx.out.warn(
        `the hub quotes ${ctx.format(quote.amount)}, but its latest promise leaves ${ctx.format(claim.owed)} to settle on-chain; the on-chain figures apply`,
      );
    }
    return quote;
  } catch (error) {
    if (relayer) throw error;
    ctx.out.warn(`the hub gave no fee quote (${toErrorReport(error).message}); the fees below are read on-chain`);
    return undefined;
  }
}

/**
 * The figures shown before settling: amount owed, hub fee, relayer fee, payout and beneficiary.
 *
 * @example
 * ctx.out.notice(summary(ctx, claim, 0n, payout, false, quote));
 */
export function summary(
  ctx: CliContext,
  claim: ProviderClaim,
  relayerFee: bigint,
  payout: bigint,
  relayer: boolean,
  quote: HubSettlementQuote | undefined,
): (Row | string)[] {
  const percent = `${(claim.info.fee / 100).toFixed(2)}%`;
  return [
    ['Hub promise', `${ctx.format(claim.promise.total)} in total, ${ctx.format(claim.channel.settled)} settled before`],
    ['To settle', ctx.format(claim.owed)],
    ['Hub fee', `${ctx.format(claim.hubFee)} (${percent})`],
    [
      'Relayer fee',
      relayer
        ? ctx.format(relayerFee)
        : `none: you send the transaction and pay its gas${quote ? ` (--relayer would cost ${ctx.format(quote.relayerFee)})` : ''}`,
    ],
    ['You receive', `${ctx.format(payout)} at ${claim.channel.beneficiary}`],
    ['Quote valid until', quote && relayer ? new Date(Number(quote.validUntil) * 1000).toISOString() : undefined],
  ];
}
