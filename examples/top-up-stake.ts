/**
 * The operator ends its hub's punishment: it puts back into the stake what provider claims took from
 * it (`stakeOwed`), and optionally adds free funds so that the next claims are paid without touching
 * the stake. See docs/operators.md, "When the hub is punished".
 *
 *   OPERATOR_KEY=0x... node --import tsx examples/top-up-stake.ts
 *
 * Environment: RPC_URL, HUB_ADDRESS (default: the hub of `npm start` on a fresh anvil), OPERATOR_KEY
 * (default: demo account #0, which runs that hub), FREE_FUNDS (tokens to add to the free funds, e.g. 50).
 */
import { chitTokenAbi, getHubInfo, hubAbi, waitForTransaction } from '@chit/sdk';
import { createPublicClient, createWalletClient, defineChain, formatEther, type Hex, http, parseEther } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

const RPC_URL = process.env.RPC_URL ?? 'http://127.0.0.1:8545';
const HUB = (process.env.HUB_ADDRESS ?? '0xd8FC5e1bC1649fE55004b606a92a2501D603fC4d') as Hex;
/** anvil's first development key, the operator of the hub `npm start` deploys: local chains only. */
const OPERATOR_KEY = (process.env.OPERATOR_KEY ??
  '0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80') as Hex;
const FREE_FUNDS = parseEther(process.env.FREE_FUNDS ?? '0');

async function main(): Promise<void> {
  const probe = createPublicClient({ transport: http(RPC_URL) });
  const chain = defineChain({
    id: await probe.getChainId(),
    name: 'chain',
    nativeCurrency: { name: 'Ether', symbol: 'ETH', decimals: 18 },
    rpcUrls: { default: { http: [RPC_URL] } },
  });
  const client = createPublicClient({ chain, transport: http(RPC_URL), pollingInterval: 250 });
  const operator = createWalletClient({
    account: privateKeyToAccount(OPERATOR_KEY),
    chain,
    transport: http(RPC_URL),
  });
  const before = await getHubInfo(client, { hub: HUB });
  console.log(
    `Hub ${HUB}: ${before.status}, stake ${formatEther(before.stake)}, owed to the stake ${formatEther(before.stakeOwed)}, free funds ${formatEther(before.freeFunds)}`,
  );
  if (before.operator !== operator.account.address) throw new Error(`${operator.account.address} is not the operator`);

  const send = async (what: string, hash: Hex) => {
    await waitForTransaction(client, { hash });
    console.log(`${what}: ${hash}`);
  };
  const total = before.stakeOwed + FREE_FUNDS;
  if (total === 0n) {
    console.log('Nothing to do: the stake is whole and no free funds were asked for.');
    return;
  }
  // Both calls take the tokens from the operator with transferFrom: approve them first.
  await send(
    'approve',
    await operator.writeContract({
      address: before.token,
      abi: chitTokenAbi,
      functionName: 'approve',
      args: [HUB, total],
    }),
  );
  if (before.stakeOwed > 0n) {
    await send(
      `increaseStake(${formatEther(before.stakeOwed)})`,
      await operator.writeContract({
        address: HUB,
        abi: hubAbi,
        functionName: 'increaseStake',
        args: [before.stakeOwed],
      }),
    );
  }
  if (FREE_FUNDS > 0n) {
    await send(
      `addFreeFunds(${formatEther(FREE_FUNDS)})`,
      await operator.writeContract({ address: HUB, abi: hubAbi, functionName: 'addFreeFunds', args: [FREE_FUNDS] }),
    );
  }
  const after = await getHubInfo(client, { hub: HUB });
  console.log(
    `Hub ${HUB}: ${after.status}, stake ${formatEther(after.stake)}, free funds ${formatEther(after.freeFunds)}`,
  );
}

main().catch((error: unknown) => {
  console.error((error as { shortMessage?: string }).shortMessage ?? error);
  process.exitCode = 1;
});
