import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { Contract, ContractFactory, type ContractRunner, type Provider, parseEther, type Signer } from 'ethers';

/** Chain ids treated as local development chains: the test token is deployed only there. */
export const LOCAL_CHAIN_IDS = new Set([31337n, 1337n]);

export interface DeployOptions {
  /** The token hubs hold. Required on non-local chains; on local chains a TestToken is deployed. */
  token?: string;
  minStake?: bigint;
  /** Fee cap in basis points. */
  maxFee?: number;
  exitDelay?: bigint;
  feeDelay?: bigint;
  closeDelay?: bigint;
  /** The first hub, registered by the deployer. */
  hub?: { stake?: bigint; fee?: number; url?: string };
  /** Folder of `<chainId>.json` files. */
  deploymentsDir?: string;
  log?: (line: string) => void;
}

export interface Deployment {
  chainId: number;
  token: { address: string; block: number; test: boolean };
  registry: { address: string; block: number };
  hub: { address: string; block: number; operator: string };
  parameters: { minStake: string; maxFee: number; exitDelay: string; feeDelay: string; closeDelay: string };
}

const ARTIFACTS = path.join(__dirname, '..', 'artifacts', 'contracts');

function factory(artifact: string, runner: Signer): ContractFactory {
  const { abi, bytecode } = JSON.parse(readFileSync(path.join(ARTIFACTS, artifact), 'utf8'));
  return new ContractFactory(abi, bytecode, runner);
}

function contract(artifact: string, address: string, runner: ContractRunner): Contract {
  const { abi } = JSON.parse(readFileSync(path.join(ARTIFACTS, artifact), 'utf8'));
  return new Contract(address, abi, runner);
}

async function hasCode(provider: Provider, address: string): Promise<boolean> {
  return (await provider.getCode(address)) !== '0x';
}

/** The deployment recorded for `chainId`, if its contracts are still on the chain. */
export async function readDeployment(provider: Provider, dir: string): Promise<Deployment | undefined> {
  const { chainId } = await provider.getNetwork();
  const file = path.join(dir, `${chainId}.json`);
  if (!existsSync(file)) return undefined;
  const deployment = JSON.parse(readFileSync(file, 'utf8')) as Deployment;
  const live = await Promise.all(
    [deployment.token.address, deployment.registry.address, deployment.hub.address].map((a) => hasCode(provider, a)),
  );
  return live.every(Boolean) ? deployment : undefined;
}

/**
 * Deploys the test token (local chains only), the Registry and a first Hub run by the deployer, and
 * writes `<deploymentsDir>/<chainId>.json`. Idempotent: when that file names contracts that exist on
 * the chain, nothing is sent and the recorded deployment is returned.
 */
export async function deployChit(deployer: Signer, options: DeployOptions = {}): Promise<Deployment> {
  const log = options.log ?? (() => {});
  const provider = deployer.provider;
  if (!provider) throw new Error('the deployer signer has no provider');
  const dir = options.deploymentsDir ?? path.join(__dirname, '..', 'deployments');
  const existing = await readDeployment(provider, dir);
  if (existing) {
    log(`already deployed on chain ${existing.chainId}: registry ${existing.registry.address}, nothing to do`);
    return existing;
  }

  const { chainId } = await provider.getNetwork();
  const operator = await deployer.getAddress();
  const local = LOCAL_CHAIN_IDS.has(chainId);
  const parameters = {
    minStake: options.minStake ?? parseEther('1000'),
    maxFee: options.maxFee ?? 2_000,
    exitDelay: options.exitDelay ?? 24n * 3600n,
    feeDelay: options.feeDelay ?? 7n * 24n * 3600n,
    closeDelay: options.closeDelay ?? 14n * 24n * 3600n,
  };

  let token: Deployment['token'];
  if (options.token) {
    if (!(await hasCode(provider, options.token))) throw new Error(`no contract at token address ${options.token}`);
    token = { address: options.token, block: 0, test: false };
  } else if (local) {
    const testToken = await factory('mocks/TestToken.sol/TestToken.json', deployer).deploy();
    const receipt = await testToken.deploymentTransaction()!.wait();
    token = { address: await testToken.getAddress(), block: receipt!.blockNumber, test: true };
    log(`TestToken ${token.address}`);
  } else {
    throw new Error(`chain ${chainId} is not a local chain: set TOKEN_ADDRESS to the token hubs will hold`);
  }

  const registry = await factory('src/Registry.sol/Registry.json', deployer).deploy(token.address, parameters);
  const registryReceipt = await registry.deploymentTransaction()!.wait();
  const registryAddress = await registry.getAddress();
  log(`Registry ${registryAddress}`);

  const stake = options.hub?.stake ?? parameters.minStake;
  const tokenContract = contract('mocks/TestToken.sol/TestToken.json', token.address, deployer);
  if (token.test) await (await tokenContract.mint(operator, stake)).wait();
  await (await tokenContract.approve(registryAddress, stake)).wait();
  const registration = await (
    await registry.getFunction('registerHub')(
      stake,
      options.hub?.fee ?? 100,
      options.hub?.url ?? 'http://127.0.0.1:8080',
    )
  ).wait();
  const hubAddress: string = await registry.getFunction('hubOf')(operator);
  log(`Hub ${hubAddress} (operator ${operator})`);

  const deployment: Deployment = {
    chainId: Number(chainId),
    token,
    registry: { address: registryAddress, block: registryReceipt!.blockNumber },
    hub: { address: hubAddress, block: registration!.blockNumber, operator },
    parameters: {
      minStake: parameters.minStake.toString(),
      maxFee: parameters.maxFee,
      exitDelay: parameters.exitDelay.toString(),
      feeDelay: parameters.feeDelay.toString(),
      closeDelay: parameters.closeDelay.toString(),
    },
  };
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${chainId}.json`);
  writeFileSync(file, `${JSON.stringify(deployment, null, 2)}\n`);
  log(`wrote ${path.relative(process.cwd(), file)}`);
  return deployment;
}
