/**
 * A real chain for integration tests: anvil on a free port with TestToken, Registry and a first Hub
 * deployed with viem from the Hardhat artifacts.
 *
 *   const chain = await startChain();
 *   after(() => chain.stop());
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type Abi,
  type Account,
  type Address,
  type Chain,
  createPublicClient,
  createTestClient,
  createWalletClient,
  getAddress,
  type Hex,
  http,
  type PublicClient,
  parseEther,
  type TestClient,
  type Transport,
  type WalletClient,
} from 'viem';
import { type HDAccount, mnemonicToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { registryAbi, testTokenAbi } from '../../src/generated/abis.js';

/** anvil's development mnemonic: its first accounts hold 10,000 ETH on every start. */
export const MNEMONIC = 'test test test test test test test test test test test junk';

/** The Registry parameters every test chain is deployed with. */
export const PARAMETERS = {
  minStake: parseEther('1000'),
  maxFee: 2_000,
  exitDelay: 86_400n,
  feeDelay: 604_800n,
  closeDelay: 1_209_600n,
} as const;

/** The first hub's fee in basis points and URL. */
export const FIRST_HUB = { fee: 100, url: 'http://127.0.0.1:8080' } as const;

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const ARTIFACTS = path.join(ROOT, 'artifacts', 'contracts');

export type ChainWalletClient = WalletClient<Transport, Chain, Account>;

export interface TestChain {
  url: string;
  chain: Chain;
  publicClient: PublicClient<Transport, Chain>;
  testClient: TestClient<'anvil', Transport, Chain>;
  /** Account `index` of the anvil mnemonic. */
  account(index: number): HDAccount;
  /** A wallet client that signs with `account` (any viem account, funded or not). */
  wallet(account: Account): ChainWalletClient;
  /** Account #0: deployed everything and operates the first hub. */
  deployer: ChainWalletClient;
  token: Address;
  registry: Address;
  hub: Address;
  /** Mints test tokens to `to` and waits for the receipt. */
  mint(to: Address, amount: bigint): Promise<void>;
  /** Stops anvil. */
  stop(): Promise<void>;
}

function anvilBinary(): string {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const require = createRequire(path.join(ROOT, 'package.json'));
  const pkg = require.resolve(`@foundry-rs/anvil-${process.platform}-${arch}/package.json`);
  return path.join(path.dirname(pkg), 'bin', 'anvil');
}

function bytecode(artifact: string): Hex {
  const file = path.join(ARTIFACTS, artifact);
  if (!existsSync(file)) {
    throw new Error(`${path.relative(ROOT, file)} is missing: run \`npm run build:contracts\` at the repository root`);
  }
  return (JSON.parse(readFileSync(file, 'utf8')) as { bytecode: Hex }).bytecode;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function answers(url: string): Promise<boolean> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
    });
    return response.ok;
  } catch {
    return false;
  }
}

async function startAnvil(): Promise<{ child: ChildProcess; url: string }> {
  const port = await freePort();
  const child = spawn(anvilBinary(), ['--port', String(port), '--chain-id', String(foundry.id), '--silent'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk) => {
    stderr += chunk;
  });
  // Never leave anvil behind, even when the test process exits without calling stop().
  const kill = () => child.kill('SIGKILL');
  process.once('exit', kill);
  child.once('exit', () => process.off('exit', kill));
  const url = `http://127.0.0.1:${port}`;
  for (let attempt = 0; attempt < 200; attempt++) {
    if (child.exitCode !== null) throw new Error(`anvil exited (${child.exitCode}): ${stderr.trim()}`);
    if (await answers(url)) return { child, url };
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill();
  throw new Error(`anvil did not answer on ${url} within 10 s: ${stderr.trim()}`);
}

function stopAnvil(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once('exit', () => resolve());
    child.kill('SIGTERM');
  });
}

/** Starts anvil and deploys TestToken, Registry and a first Hub (operated by account #0). */
export async function startChain(): Promise<TestChain> {
  const { child, url } = await startAnvil();
  try {
    const chain = foundry;
    const transport = http(url);
    const publicClient = createPublicClient({ chain, transport, pollingInterval: 50 });
    const testClient = createTestClient({ chain, transport, mode: 'anvil' });
    const accounts = new Map<number, HDAccount>();
    const account = (index: number) => {
      let hd = accounts.get(index);
      if (!hd) {
        hd = mnemonicToAccount(MNEMONIC, { addressIndex: index });
        accounts.set(index, hd);
      }
      return hd;
    };
    const wallet = (signer: Account): ChainWalletClient =>
      createWalletClient({ account: signer, chain, transport, pollingInterval: 50 });
    const deployer = wallet(account(0));

    const deploy = async (abi: Abi, artifact: string, args: readonly unknown[]): Promise<Address> => {
      const hash = await deployer.deployContract({ abi, bytecode: bytecode(artifact), args });
      const receipt = await publicClient.waitForTransactionReceipt({ hash });
      if (!receipt.contractAddress) throw new Error(`deploying ${artifact} failed`);
      return getAddress(receipt.contractAddress);
    };
    const send = async (hash: Promise<Hex>) => {
      const receipt = await publicClient.waitForTransactionReceipt({ hash: await hash });
      if (receipt.status !== 'success') throw new Error(`transaction ${receipt.transactionHash} reverted`);
    };

    const token = await deploy(testTokenAbi, 'mocks/TestToken.sol/TestToken.json', []);
    const registry = await deploy(registryAbi, 'src/Registry.sol/Registry.json', [token, PARAMETERS]);
    const mint = (to: Address, amount: bigint) =>
      send(deployer.writeContract({ address: token, abi: testTokenAbi, functionName: 'mint', args: [to, amount] }));
    await mint(deployer.account.address, PARAMETERS.minStake);
    await send(
      deployer.writeContract({
        address: token,
        abi: testTokenAbi,
        functionName: 'approve',
        args: [registry, PARAMETERS.minStake],
      }),
    );
    await send(
      deployer.writeContract({
        address: registry,
        abi: registryAbi,
        functionName: 'registerHub',
        args: [PARAMETERS.minStake, FIRST_HUB.fee, FIRST_HUB.url],
      }),
    );
    const hub = await publicClient.readContract({
      address: registry,
      abi: registryAbi,
      functionName: 'hubOf',
      args: [deployer.account.address],
    });

    return {
      url,
      chain,
      publicClient,
      testClient,
      account,
      wallet,
      deployer,
      token,
      registry,
      hub,
      mint,
      stop: () => stopAnvil(child),
    };
  } catch (error) {
    await stopAnvil(child);
    throw error;
  }
}
