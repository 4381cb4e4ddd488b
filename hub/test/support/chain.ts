import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAnvil } from '@chit/devstack';
import { HDNodeWallet, JsonRpcProvider, NonceManager } from 'ethers';
import { type Deployment, deployChit } from '../../../deploy/chit';

/** anvil's development mnemonic: account i is `m/44'/60'/0'/0/i`, funded with ETH. */
export const MNEMONIC = 'test test test test test test test test test test test junk';
export const accountKey = (i: number) =>
  HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`).privateKey as `0x${string}`;

/** anvil on a free port with Chit deployed by account 0, which runs the first hub. */
export async function startChain(): Promise<{
  url: string;
  deployment: Deployment;
  operatorKey: `0x${string}`;
  process: ChildProcess;
  stop(): void;
}> {
  const anvil = await startAnvil();
  const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
  const deployer = new NonceManager(HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0/0").connect(provider));
  const deployment = await deployChit(deployer, { deploymentsDir: mkdtempSync(path.join(tmpdir(), 'chit-hub-test-')) });
  provider.destroy();
  return {
    url: anvil.url,
    deployment,
    operatorKey: accountKey(0),
    process: anvil.process,
    stop: () => void anvil.stop(),
  };
}
