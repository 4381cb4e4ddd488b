/**
 * A real chain for integration tests: anvil on a free port (@chit/devstack) with TestToken, Registry and
 * a first Hub deployed with viem from the Hardhat artifacts.
 *
 *   const chain = await startChain();
 *   after(() => chain.stop());
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startAnvil, testTokenAbi } from '@chit/devstack';
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
import { registryAbi } from '../../src/generated/abis.js';

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

function bytecode(artifact: string): Hex {
  const file = path.join(ARTIFACTS, artifact);
  if (!existsSync(file)) {
    throw new Error(`${path.relative(ROOT, file)} is missing: run \`npm run build:contracts\` at the repository root`);
  }
  return (JSON.parse(readFileSync(file, 'utf8')) as { bytecode: Hex }).bytecode;
}

/** Starts anvil and deploys TestToken, Registry and a first Hub (operated by account #0). */
export async function startChain(): Promise<TestChain> {
  const anvil = await startAnvil();
  const { url } = anvil;
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
      stop: () => anvil.stop(),
    };
  } catch (error) {
    await anvil.stop();
    throw error;
  }
}
