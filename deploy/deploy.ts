/**
 * Deploys Chit to the selected Hardhat network and writes deployments/<chainId>.json.
 *
 *   npm run deploy                                     # the in-process network
 *   RPC_URL=http://127.0.0.1:8545 DEPLOYER_KEY=0x... npm run deploy -- --network custom
 *
 * Optional environment: TOKEN_ADDRESS (required off local chains), HUB_URL, HUB_FEE (basis points),
 * HUB_STAKE (tokens, in wei). Running it again on the same chain changes nothing.
 */
import { ethers } from 'hardhat';
import { deployChit } from './chit';

async function main(): Promise<void> {
  const [deployer] = await ethers.getSigners();
  if (!deployer) throw new Error('no deployer account: set DEPLOYER_KEY for --network custom');
  await deployChit(deployer, {
    token: process.env.TOKEN_ADDRESS || undefined,
    hub: {
      url: process.env.HUB_URL || undefined,
      fee: process.env.HUB_FEE ? Number(process.env.HUB_FEE) : undefined,
      stake: process.env.HUB_STAKE ? BigInt(process.env.HUB_STAKE) : undefined,
    },
    log: (line) => console.log(line),
  });
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exitCode = 1;
});
