import { ethers } from 'hardhat';
import type { Hub, Registry, TestToken } from '../../../typechain-types';

export const PARAMETERS = {
  minStake: ethers.parseEther('1000'),
  maxFee: 2_000, // 20 %
  exitDelay: 24n * 3600n,
  feeDelay: 7n * 24n * 3600n,
  closeDelay: 14n * 24n * 3600n,
} as const;

export const HUB_FEE = 100; // 1 %
export const STAKE = ethers.parseEther('5000');
export const HUB_URL = 'https://hub.example.org';
export const DEPOSIT = ethers.parseEther('100');

/** The token and the Registry, with nothing registered. */
export async function deployRegistryFixture() {
  const signers = await ethers.getSigners();
  const [deployer, operator, consumer, provider, beneficiary, relayer, stranger, otherOperator] = signers;
  const token = (await (await ethers.getContractFactory('TestToken')).deploy()) as unknown as TestToken;
  const registry = (await (
    await ethers.getContractFactory('Registry')
  ).deploy(await token.getAddress(), PARAMETERS)) as unknown as Registry;
  const { chainId } = await ethers.provider.getNetwork();
  for (const account of [operator, consumer, provider, relayer, stranger, otherOperator]) {
    await token.mint(account.address, ethers.parseEther('1000000'));
  }
  return {
    signers,
    deployer,
    operator,
    consumer,
    provider,
    beneficiary,
    relayer,
    stranger,
    otherOperator,
    token,
    registry,
    chainId,
    registryAddress: await registry.getAddress(),
  };
}

/** A Registry with one registered hub. */
export async function deployHubFixture() {
  const base = await deployRegistryFixture();
  const { operator, token, registry, registryAddress } = base;
  await token.connect(operator).approve(registryAddress, STAKE);
  await registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL);
  const hubAddress = await registry.hubOf(operator.address);
  const hub = (await ethers.getContractAt('Hub', hubAddress)) as unknown as Hub;
  return { ...base, hub, hubAddress };
}

/** A hub where `consumer` has deposited DEPOSIT and `provider` registered with `beneficiary`. */
export async function fundedHubFixture() {
  const base = await deployHubFixture();
  const { consumer, provider, beneficiary, token, hub, hubAddress, registry } = base;
  await token.connect(consumer).approve(hubAddress, DEPOSIT);
  await hub.connect(consumer).deposit(DEPOSIT);
  await registry.connect(provider).registerIdentity(beneficiary.address);
  return base;
}
