/**
 * A consumer takes tokens out of its channel: at once with the hub's co-signature (instant exit), and
 * alone after the exit delay (timelocked exit), which needs no hub at all.
 *
 *   node --import tsx examples/exits.ts
 *
 * Against the stack of `npm start`. To skip the 24-hour exit delay it moves the local chain's clock
 * forward (anvil's `evm_increaseTime`): run it on a local chain only. Environment: HUB_URL, RPC_URL,
 * FUNDER_KEY (demo account #1 by default), CONSUMER_KEY (a fresh key by default).
 */
import {
  ContractRevertError,
  chitTokenAbi,
  deposit,
  finalizeExit,
  getConsumerChannel,
  HubClient,
  instantExit,
  requestExit,
  signInstantExitRequest,
  waitForTransaction,
} from '@chit/sdk';
import { createPublicClient, createWalletClient, defineChain, formatEther, type Hex, http, parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';

const HUB_URL = process.env.HUB_URL ?? 'http://127.0.0.1:8080';
const RPC_URL = process.env.RPC_URL ?? 'http://127.0.0.1:8545';
const FUNDER_KEY = (process.env.FUNDER_KEY ??
  '0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d') as Hex;
const tokens = (amount: bigint) => `${formatEther(amount)} tokens`;

async function main(): Promise<void> {
  const hub = new HubClient({ url: HUB_URL });
  const info = await hub.info();
  const chain = defineChain({
    id: info.chainId,
    name: `chain ${info.chainId}`,
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [RPC_URL] } },
  });
  const client = createPublicClient({ chain, transport: http(RPC_URL), pollingInterval: 250 });
  const wallet = (key: Hex) =>
    createWalletClient({ account: privateKeyToAccount(key), chain, transport: http(RPC_URL) });
  const consumer = wallet((process.env.CONSUMER_KEY as Hex | undefined) ?? generatePrivateKey());
  const me = consumer.account.address;

  if (!process.env.CONSUMER_KEY) {
    const funder = wallet(FUNDER_KEY);
    await waitForTransaction(client, { hash: await funder.sendTransaction({ to: me, value: parseEther('1') }) });
    await waitForTransaction(client, {
      hash: await funder.writeContract({
        address: info.token,
        abi: chitTokenAbi,
        functionName: 'transfer',
        args: [me, parseEther('5')],
      }),
    });
  }

  // Deposit (approve, then deposit), and wait until the hub's follower has seen it.
  const deposited = await deposit(consumer, { hub: info.hub, amount: parseEther('5') });
  await waitForTransaction(client, { hash: deposited.hash });
  for (let i = 0; ; i++) {
    const account = await hub.consumer(me).catch(() => undefined);
    if (account && account.balance >= parseEther('5')) break;
    if (i === 120) throw new Error('the hub did not see the deposit');
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  console.log(`${me} deposited ${tokens(parseEther('5'))}`);

  // Instant exit: the consumer signs a request, the hub co-signs what it can spare, the consumer submits.
  // The hub's deadline follows its own clock; a chain whose clock an earlier run moved ahead would
  // refuse it as expired.
  const skew = Number((await client.getBlock()).timestamp) - Math.floor(Date.now() / 1000);
  if (skew > 300) {
    console.log(`instant exit skipped: the chain's clock is ${skew} s ahead (restart \`npm start\` for a fresh chain)`);
  } else {
    const request = await signInstantExitRequest(consumer.account, {
      hub: info.hub,
      chainId: info.chainId,
      consumer: me,
      amount: parseEther('1'),
      issuedAt: BigInt(Math.floor(Date.now() / 1000)),
    });
    const coSigned = await hub.instantExit(request);
    const instant = await instantExit(consumer, {
      hub: info.hub,
      amount: coSigned.amount,
      deadline: coSigned.deadline,
      signature: coSigned.signature,
    });
    await waitForTransaction(client, { hash: instant.hash });
    console.log(`instant exit of ${tokens(coSigned.amount)} (nonce ${coSigned.nonce}): ${instant.hash}`);
  }

  // Timelocked exit: request, wait the exit delay, finalize. The hub settles the consumer's promises
  // meanwhile; finalizeExit pays what is left, up to the amount asked.
  const requested = await requestExit(consumer, { hub: info.hub, amount: parseEther('2') });
  await waitForTransaction(client, { hash: requested.hash });
  const { exit } = await getConsumerChannel(client, { hub: info.hub, consumer: me });
  console.log(
    `exit of ${tokens(exit!.amount)} requested, ready at ${new Date(Number(exit!.readyAt) * 1000).toISOString()}`,
  );
  try {
    await finalizeExit(consumer, { hub: info.hub });
  } catch (error) {
    if (!(error instanceof ContractRevertError && error.is('HubExitNotReady'))) throw error;
    console.log(`finalizing now: ${error.errorName}`);
  }
  const { timestamp } = await client.getBlock();
  await client.request({ method: 'evm_increaseTime' as never, params: [Number(exit!.readyAt - timestamp)] as never });
  await client.request({ method: 'evm_mine' as never, params: [] as never });
  const finalized = await finalizeExit(consumer, { hub: info.hub });
  await waitForTransaction(client, { hash: finalized.hash });
  const channel = await getConsumerChannel(client, { hub: info.hub, consumer: me });
  console.log(`exit finalized after the delay: ${finalized.hash}; the channel holds ${tokens(channel.balance)}`);
}

main().catch((error: unknown) => {
  console.error((error as { shortMessage?: string }).shortMessage ?? error);
  process.exitCode = 1;
});
