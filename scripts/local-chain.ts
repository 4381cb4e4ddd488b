/**
 * Starts a local chain (anvil, from the @foundry-rs/anvil npm package) with Chit deployed, prints the
 * addresses and funded demo accounts, and runs until interrupted.
 *
 *   npm run chain            # port 8545; CHIT_CHAIN_PORT to change it
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Contract, HDNodeWallet, JsonRpcProvider, NonceManager, parseEther } from 'ethers';
import { deployChit } from '../deploy/chit';

/** anvil's well-known development mnemonic: its accounts are funded with ETH on every start. */
const MNEMONIC = 'test test test test test test test test test test test junk';

export function anvilBinary(): string {
  const platform = `${process.platform === 'win32' ? 'win32' : process.platform}-${process.arch === 'x64' ? 'amd64' : process.arch}`;
  const suffix = process.platform === 'win32' ? '.exe' : '';
  return path.join(
    path.dirname(require.resolve(`@foundry-rs/anvil-${platform}/package.json`)),
    'bin',
    `anvil${suffix}`,
  );
}

/** Starts anvil on `port` and resolves once it answers JSON-RPC. */
export async function startAnvil(port: number): Promise<{ process: ChildProcess; url: string }> {
  const child = spawn(anvilBinary(), ['--port', String(port), '--chain-id', '31337', '--silent'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 100; attempt++) {
    if (child.exitCode !== null) throw new Error(`anvil exited (${child.exitCode}): ${stderr.trim()}`);
    try {
      const response = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      });
      if (response.ok) return { process: child, url };
    } catch {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
  child.kill();
  throw new Error(`anvil did not answer on ${url} within 10 s: ${stderr.trim()}`);
}

async function main(): Promise<void> {
  const port = Number(process.env.CHIT_CHAIN_PORT ?? 8545);
  const anvil = await startAnvil(port);
  const stop = () => {
    anvil.process.kill();
    process.exit(0);
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);

  const provider = new JsonRpcProvider(anvil.url, undefined, { staticNetwork: true, cacheTimeout: -1 });
  const deployer = new NonceManager(HDNodeWallet.fromPhrase(MNEMONIC, undefined, "m/44'/60'/0'/0/0").connect(provider));
  const deployment = await deployChit(deployer, {
    deploymentsDir: mkdtempSync(path.join(tmpdir(), 'chit-chain-')),
    log: (line) => console.log(line),
  });
  console.log(`\nChain ${deployment.chainId} at ${anvil.url}`);
  console.log(
    `Registry ${deployment.registry.address}\nHub      ${deployment.hub.address}\nToken    ${deployment.token.address} (TestToken: anyone may call faucet())`,
  );
  console.log('\nDemo accounts (anvil mnemonic; each holds ETH and 10,000 test tokens; #0 runs the hub):');
  const token = new Contract(deployment.token.address, ['function mint(address,uint256)'], deployer);
  for (let i = 0; i < 4; i++) {
    const account = HDNodeWallet.fromPhrase(MNEMONIC, undefined, `m/44'/60'/0'/0/${i}`);
    await (await token.getFunction('mint')(account.address, parseEther('10000'))).wait();
    console.log(`  #${i} ${account.address}  key ${account.privateKey}`);
  }
  console.log('\nPress Ctrl-C to stop.');
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error?.shortMessage ?? error?.message ?? error);
    process.exit(1);
  });
}
