import {
  chitTokenAbi,
  type HubClient,
  registerIdentity,
  registryAbi,
  setBeneficiary,
  signDepositPermit,
  signRegisterIdentity,
  signSetBeneficiary,
} from '@chit/sdk';
import { Command, Option } from 'commander';
import { type Address, getAddress } from 'viem';
import { readContract } from 'viem/actions';
import { type CliContext, handler } from '../context.js';
import { CliError } from '../errors.js';
import { waitForHubJob } from '../hub-job.js';
import { parseAddress } from '../output.js';

/**
 * `chit beneficiary set <address>`: where the identity's earnings are paid, set in the Registry
 * directly or through the hub's relayer. An identity that is not registered yet is registered with it.
 *
 * @example
 * program.addCommand(beneficiaryCommand());
 */
export function beneficiaryCommand(): Command {
  const beneficiary = new Command('beneficiary').description("Where the identity's earnings are paid");
  beneficiary
    .command('set')
    .description('Set the beneficiary in the Registry (registers the identity if it is not yet)')
    .argument('<address>', 'the new beneficiary')
    .option('--relayed', "sign only, and let the hub's relayer send the transaction (no gas needed)")
    .addOption(new Option('--timeout <seconds>', 'with --relayed: how long to wait for the relayer').default('300'))
    .action(handler(runSet));
  return beneficiary;
}

/**
 * The relayer fee of a relayed change and the hub's relayer, from the hub's quote (a registration names the
 * relayer, so that no one else can submit it and take the fee). A registration pays it from the identity's
 * tokens, through an allowance to the Registry, or without one through an EIP-2612 permit the identity
 * signs and the relayer submits first (`permit`: quoted as `identity-permit`, one transaction more); a
 * beneficiary change carries no fee, so a hub relays it only while it costs nothing. Says what cannot be
 * paid before anything is signed, rather than letting the hub refuse.
 */
async function relayerFeeOf(
  ctx: CliContext,
  hubClient: HubClient,
  { registry, identity, registered }: { registry: Address; identity: Address; registered: boolean },
): Promise<{ relayerFee: bigint; relayer: Address; permit: boolean }> {
  const { relayerFee, relayer } = await hubClient.relayQuote(registered ? 'beneficiary' : 'identity');
  if (relayerFee === 0n) return { relayerFee, relayer, permit: false };
  if (registered) {
    throw new CliError(
      'RELAYER_FEE_TOO_LOW',
      `A beneficiary change carries no relayer fee, and relaying one costs the hub ${ctx.format(relayerFee)} now`,
      'Send it yourself: `chit beneficiary set <address>` without --relayed (needs ETH for gas).',
    );
  }
  const token = await ctx.token();
  const client = await ctx.publicClient();
  const [balance, allowance] = await Promise.all([
    readContract(client, { address: token.address, abi: chitTokenAbi, functionName: 'balanceOf', args: [identity] }),
    readContract(client, {
      address: token.address,
      abi: chitTokenAbi,
      functionName: 'allowance',
      args: [identity, registry],
    }),
  ]);
  const permit = allowance < relayerFee;
  const quote = permit ? await hubClient.relayQuote('identity-permit') : { relayerFee, relayer };
  const fee = quote.relayerFee;
  if (balance < fee) {
    throw new CliError(
      'RELAYER_FEE_UNPAYABLE',
      `The relayer's fee, ${ctx.format(fee)}, is paid from this identity's tokens: it holds ${ctx.format(balance)} and allows the Registry ${ctx.format(allowance)}`,
      `Get at least ${ctx.format(fee)} into ${identity} (on a local chain, \`chit identity fund\`), or register without --relayed (needs ETH for gas).`,
    );
  }
  ctx.out.progress(
    `relayer fee: ${ctx.format(fee)}, from this identity's tokens${permit ? ', with a permit that the relayer submits first' : ''}`,
  );
  return { relayerFee: fee, relayer: quote.relayer, permit };
}

async function runSet(ctx: CliContext, text: string, options: { relayed?: boolean; timeout: string }): Promise<void> {
  const beneficiary = parseAddress(text, 'The beneficiary');
  const timeoutMs = Number(options.timeout) * 1000;
  if (!(timeoutMs > 0)) {
    throw new CliError('INVALID_OPTION', `--timeout ${options.timeout} is not a number of seconds`, 'Give, say, 300.');
  }
  const hubClient = options.relayed ? ctx.requireHubClient('--relayed') : undefined;
  const client = await ctx.publicClient();
  const registry = await ctx.registry();
  const wallet = await ctx.walletClient();
  const identity = wallet.account.address;
  const registered = await readContract(client, {
    address: registry,
    abi: registryAbi,
    functionName: 'isRegistered',
    args: [identity],
  });

  let transaction: `0x${string}` | null;
  if (hubClient) {
    const { relayerFee, relayer, permit } = await relayerFeeOf(ctx, hubClient, { registry, identity, registered });
    ctx.out.progress(`asking the hub at ${hubClient.url} to relay the change…`);
    const job = registered
      ? await hubClient.relayBeneficiary(await signSetBeneficiary(wallet, { registry, beneficiary }))
      : await hubClient.relayIdentity({
          ...(await signRegisterIdentity(wallet, { registry, beneficiary, relayerFee, relayer })),
          // An EIP-2612 permit like a deposit's, with the Registry as the spender.
          permit: permit
            ? await signDepositPermit(wallet, { hub: registry, token: (await ctx.token()).address, amount: relayerFee })
            : undefined,
        });
    const done = await waitForHubJob(ctx, hubClient, job.id, timeoutMs, {
      failedHint: 'Send it yourself instead: `chit beneficiary set <address>` without --relayed (needs ETH for gas).',
    });
    transaction = done.txHash;
  } else {
    const { hash } = registered
      ? await setBeneficiary(wallet, { registry, beneficiary })
      : await registerIdentity(wallet, { registry, beneficiary });
    await ctx.confirmation(hash, registered ? 'beneficiary change' : 'registration');
    transaction = hash;
  }
  const now = getAddress(
    await readContract(client, {
      address: registry,
      abi: registryAbi,
      functionName: 'beneficiaryOf',
      args: [identity],
    }),
  );
  if (now !== beneficiary) {
    throw new CliError(
      'BENEFICIARY_UNCHANGED',
      `The Registry still pays ${now}, not ${beneficiary}`,
      'Run `chit identity show` in a moment; if it persists, run the command again without --relayed.',
    );
  }
  ctx.out.result({ identity, registry, beneficiary, registered: !registered, transaction }, [
    registered
      ? `The beneficiary of ${identity} is now ${beneficiary}.`
      : `${identity} is registered, with ${beneficiary} as its beneficiary.`,
    ['Transaction', transaction ?? undefined],
  ]);
}
