/**
 * Starts a local chain (anvil, from the @foundry-rs/anvil npm package, started by @chit/devstack) with
 * Chit deployed, prints the addresses and funded demo accounts, and runs until interrupted.
 *
 *   npm run chain            # port 8545; CHIT_CHAIN_PORT to change it
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startAnvil } from '@chit/devstack';
import { Contract, formatEther, HDNodeWallet, JsonRpcProvider, NonceManager, parseEther } from 'ethers';
import { deployChit } from '../deploy/chit';

/** anvil's well-known development mnemonic: its accounts are funded with ETH on every start. */
const MNEMONIC = 'test test test test test test test test test test test junk';

/** A demo account of anvil's mnemonic. */
export const demoAccount = (i: number) => HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`);

/**
 * The free funds `npm start` and `npm run chain` give the first hub: the liquidity that pays providers
 * until the hub collects from consumers, as large as the stake. Without them the first provider
 * settlement would come out of the stake and punish the hub.
 */
export const DEMO_FREE_FUNDS = parseEther('1000');

/**
 * anvil on `port` with Chit deployed by demo account #0 (which runs the first hub, at `hubUrl`), and
 * 10,000 test tokens minted to demo accounts #0 to #3. With `freeFunds`, #0 adds that many more test
 * tokens to the hub's free funds (`addFreeFunds`).
 */
export async function startLocalChain(
  port: number,
  hubUrl: string,
  log: (line: string) => void = () => {},
  options: { freeFunds?: bigint } = {},
) {
  const anvil = await startAnvil({ port, portVariable: 'CHIT_CHAIN_PORT' });
  try {
    const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
    const deployer = new NonceManager(demoAccount(0).connect(provider));
    const deployment = await deployChit(deployer, {
      deploymentsDir: mkdtempSync(path.join(tmpdir(), 'chit-chain-')),
      hub: { url: hubUrl },
      log,
    });
    const token = new Contract(deployment.token.address, ['function mint(address,uint256)'], deployer);
    const accounts = [0, 1, 2, 3].map(demoAccount);
    for (const account of accounts)
      await (await token.getFunction('mint')(account.address, parseEther('10000'))).wait();
    const freeFunds = options.freeFunds ?? 0n;
    if (freeFunds > 0n) {
      const operator = await deployer.getAddress();
      const hub = new Contract(deployment.hub.address, ['function addFreeFunds(uint256)'], deployer);
      const erc20 = new Contract(deployment.token.address, ['function approve(address,uint256)'], deployer);
      await (await token.getFunction('mint')(operator, freeFunds)).wait();
      await (await erc20.getFunction('approve')(deployment.hub.address, freeFunds)).wait();
      await (await hub.getFunction('addFreeFunds')(freeFunds)).wait();
    }
    provider.destroy();
    return { anvil, deployment, accounts, freeFunds };
  } catch (error) {
    anvil.process.kill();
    throw error;
  }
}

/** The lines that tell a user what runs where and which accounts to use. */
export function chainBanner(url: string, chain: Awaited<ReturnType<typeof startLocalChain>>): string[] {
  const { deployment, accounts, freeFunds } = chain;
  return [
    `Chain ${deployment.chainId} at ${url}`,
    `Registry ${deployment.registry.address}`,
    `Hub      ${deployment.hub.address} (stake ${tokens(BigInt(deployment.parameters.minStake))}, free funds ${tokens(freeFunds)}: providers are paid from the free funds first)`,
    `Token    ${deployment.token.address} (TestToken: anyone may call faucet())`,
    '',
    'Demo accounts (anvil mnemonic; each holds ETH and 10,000 test tokens; #0 runs the hub):',
    ...accounts.map((account, i) => `  #${i} ${account.address}  key ${account.privateKey}`),
  ];
}

/** Test tokens as the banner prints them: `1,000 tCHIT`. */
function tokens(amount: bigint): string {
  const [whole, fraction] = formatEther(amount).split('.');
  const grouped = BigInt(whole!).toLocaleString('en-US');
  return `${fraction && fraction !== '0' ? `${grouped}.${fraction}` : grouped} tCHIT`;
}

async function main(): Promise<void> {
  const port = Number(process.env.CHIT_CHAIN_PORT ?? 8545);
  const chain = await startLocalChain(port, 'http://127.0.0.1:8080', (line) => console.log(line), {
    freeFunds: DEMO_FREE_FUNDS,
  });
  const stop = () => {
    chain.anvil.process.kill();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  console.log(`\n${chainBanner(chain.anvil.url, chain).join('\n')}\n\nPress Ctrl-C to stop.`);
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error?.shortMessage ?? error?.message ?? error);
    process.exit(1);
  });
}
