import { loadFixture } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import { keccak256, Signature, toBeHex, Wallet } from 'ethers';
import { ethers, network } from 'hardhat';
import vectors from '../../sdk/test/vectors.json';
import type { Hub, Registry, TestToken } from '../../typechain-types';
import { PARAMETERS } from './helpers/fixtures';
import { compact } from './helpers/signing';

// The SDK's test vectors (sdk/test/vectors.json) against the contracts: the contracts accept exactly
// those signatures, and reject each one once any signed field, the chain or the hub changes.

const wallet = (name: keyof typeof vectors.keys) => new Wallet(vectors.keys[name].privateKey, ethers.provider);

async function vectorsFixture() {
  const deployer = wallet('deployer');
  const operator = wallet('operator');
  const consumer = wallet('consumer');
  const relayer = wallet('relayer');
  for (const account of [deployer, operator, consumer, wallet('provider'), relayer]) {
    await network.provider.send('hardhat_setBalance', [account.address, toBeHex(10n ** 20n)]);
  }
  if ((await ethers.provider.getTransactionCount(deployer.address)) !== 0) throw new Error('vector deployer was used');
  const token = (await (await ethers.getContractFactory('TestToken', deployer)).deploy()) as unknown as TestToken;
  const registry = (await (
    await ethers.getContractFactory('Registry', deployer)
  ).deploy(await token.getAddress(), PARAMETERS)) as unknown as Registry;
  await token.mint(operator.address, PARAMETERS.minStake);
  await token.connect(operator).approve(await registry.getAddress(), PARAMETERS.minStake);
  await registry.connect(operator).registerHub(PARAMETERS.minStake, 100, 'http://vectors');
  const hub = (await ethers.getContractAt('Hub', await registry.hubOf(operator.address))) as unknown as Hub;
  await token.mint(consumer.address, 10n ** 18n);
  await token.connect(consumer).approve(await hub.getAddress(), 10n ** 18n);
  await hub.connect(consumer).deposit(10n ** 18n);
  return { token, registry, hub, operator, consumer, relayer };
}

const cp = vectors.consumerPromise;
const consumerClaim = (overrides: Record<string, unknown> = {}) => ({
  consumer: cp.message.consumer,
  total: BigInt(cp.message.total),
  agreementHash: cp.agreementHash,
  preimage: cp.preimage,
  signature: compact(cp.signature),
  ...overrides,
});

const hp = vectors.hubPromise;
const providerClaim = (overrides: Record<string, unknown> = {}) => ({
  provider: hp.message.provider,
  total: BigInt(hp.message.total),
  preimage: hp.preimage,
  relayerFee: 0n,
  hubSignature: compact(hp.signature),
  providerSignature: { r: ethers.ZeroHash, vs: ethers.ZeroHash },
  ...overrides,
});

describe('SDK test vectors', () => {
  it('the contracts are deployed where the vectors say', async () => {
    const { registry, hub, token } = await loadFixture(vectorsFixture);
    expect(await token.getAddress()).to.equal(vectors.contracts.token);
    expect(await registry.getAddress()).to.equal(vectors.contracts.registry);
    expect(await registry.hubImplementation()).to.equal(vectors.contracts.hubImplementation);
    expect(await hub.getAddress()).to.equal(vectors.contracts.hub);
    expect(await hub.domainSeparator()).to.equal(vectors.hubDomainSeparator);
  });

  describe('ConsumerPromise', () => {
    it('is accepted as signed', async () => {
      const { hub } = await loadFixture(vectorsFixture);
      await expect(hub.settleConsumer(consumerClaim()))
        .to.emit(hub, 'ConsumerSettled')
        .withArgs(cp.message.consumer, cp.message.total, cp.message.total, cp.preimage);
    });

    const mutations: [string, Record<string, unknown>][] = [
      ['another total', { total: BigInt(cp.message.total) + 1n }],
      ['another consumer', { consumer: vectors.keys.provider.address }],
      ['another agreement', { agreementHash: keccak256(cp.agreementHash) }],
      ['another preimage', { preimage: keccak256(cp.preimage) }],
      ['a signature for another chain', { signature: compact(cp.otherChainSignature) }],
      ['a signature for another hub', { signature: compact(cp.otherHubSignature) }],
      ['a hub-promise signature', { signature: compact(hp.signature) }],
    ];
    for (const [name, overrides] of mutations) {
      it(`is rejected with ${name}`, async () => {
        const { hub } = await loadFixture(vectorsFixture);
        await expect(hub.settleConsumer(consumerClaim(overrides))).to.be.revertedWithCustomError(
          hub,
          'HubInvalidSignature',
        );
      });
    }
  });

  describe('HubPromise and SettlementAuthorization', () => {
    async function fundedFixture() {
      const f = await loadFixture(vectorsFixture);
      await f.hub.settleConsumer(consumerClaim());
      return f;
    }

    it('is accepted as signed, with the relayer fee the provider authorized to the relayer it names', async () => {
      const { hub, relayer } = await fundedFixture();
      expect(vectors.settlementAuthorization.relayer).to.equal(relayer.address);
      const claim = providerClaim({
        relayerFee: BigInt(vectors.settlementAuthorization.relayerFee),
        providerSignature: compact(vectors.settlementAuthorization.signature),
      });
      await expect(hub.connect(relayer).settleProvider(claim)).to.emit(hub, 'ProviderSettled');
      expect(await hub.providerSettled(hp.message.provider)).to.equal(BigInt(hp.message.total));
    });

    const mutations: [string, Record<string, unknown>][] = [
      ['another total', { total: BigInt(hp.message.total) + 1n }],
      ['another provider', { provider: vectors.keys.consumer.address }],
      ['another preimage', { preimage: keccak256(hp.preimage) }],
      ['a signature for another chain', { hubSignature: compact(hp.otherChainSignature) }],
      ['a signature for another hub', { hubSignature: compact(hp.otherHubSignature) }],
      ['a consumer-promise signature', { hubSignature: compact(cp.signature) }],
      [
        'another relayer fee',
        {
          relayerFee: BigInt(vectors.settlementAuthorization.relayerFee) + 1n,
          providerSignature: compact(vectors.settlementAuthorization.signature),
        },
      ],
    ];
    it('is rejected when another account than the named relayer submits it', async () => {
      const { hub, operator } = await fundedFixture();
      const claim = providerClaim({
        relayerFee: BigInt(vectors.settlementAuthorization.relayerFee),
        providerSignature: compact(vectors.settlementAuthorization.signature),
      });
      await expect(hub.connect(operator).settleProvider(claim)).to.be.revertedWithCustomError(
        hub,
        'HubInvalidSignature',
      );
    });

    for (const [name, overrides] of mutations) {
      it(`is rejected with ${name}`, async () => {
        const { hub, relayer } = await fundedFixture();
        await expect(hub.connect(relayer).settleProvider(providerClaim(overrides))).to.be.revertedWithCustomError(
          hub,
          'HubInvalidSignature',
        );
      });
    }
  });

  describe('InstantExit', () => {
    const exit = vectors.instantExit;
    it('is accepted as signed', async () => {
      const { hub, consumer } = await loadFixture(vectorsFixture);
      await expect(
        hub.connect(consumer).instantExit(exit.message.amount, exit.message.deadline, exit.signature),
      ).to.emit(hub, 'InstantExited');
    });

    it('is rejected for another amount', async () => {
      const { hub, consumer } = await loadFixture(vectorsFixture);
      await expect(
        hub.connect(consumer).instantExit(BigInt(exit.message.amount) + 1n, exit.message.deadline, exit.signature),
      ).to.be.revertedWithCustomError(hub, 'HubInvalidSignature');
    });

    it('is rejected with a high-s twin', async () => {
      const { hub, consumer } = await loadFixture(vectorsFixture);
      const sig = Signature.from(exit.signature);
      const n = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');
      const twin = ethers.concat([sig.r, toBeHex(n - BigInt(sig.s), 32), sig.v === 27 ? '0x1c' : '0x1b']);
      await expect(hub.connect(consumer).instantExit(exit.message.amount, exit.message.deadline, twin))
        .to.be.revertedWithCustomError(hub, 'HubInvalidSignature')
        .withArgs(vectors.keys.operator.address, ethers.ZeroAddress);
    });
  });

  describe('RegisterIdentity and SetBeneficiary', () => {
    it('are accepted as signed, in order, the registration from the relayer it names', async () => {
      const { registry, relayer } = await loadFixture(vectorsFixture);
      const r = vectors.registerIdentity.message;
      expect(r.relayer).to.equal(relayer.address);
      await expect(
        registry
          .connect(relayer)
          .registerIdentityFor(r.identity, r.beneficiary, r.relayerFee, vectors.registerIdentity.signature),
      )
        .to.emit(registry, 'IdentityRegistered')
        .withArgs(r.identity, r.beneficiary, relayer.address, r.relayerFee);
      const b = vectors.setBeneficiary.message;
      await expect(registry.setBeneficiaryFor(b.identity, b.beneficiary, vectors.setBeneficiary.signature))
        .to.emit(registry, 'BeneficiaryChanged')
        .withArgs(b.identity, b.beneficiary);
    });

    it('reject a registration sent by another account than the relayer it names', async () => {
      const { registry, operator } = await loadFixture(vectorsFixture);
      const r = vectors.registerIdentity.message;
      await expect(
        registry
          .connect(operator)
          .registerIdentityFor(r.identity, r.beneficiary, r.relayerFee, vectors.registerIdentity.signature),
      ).to.be.revertedWithCustomError(registry, 'RegistryInvalidSignature');
    });

    it('reject another beneficiary', async () => {
      const { registry, relayer } = await loadFixture(vectorsFixture);
      const r = vectors.registerIdentity.message;
      await expect(
        registry
          .connect(relayer)
          .registerIdentityFor(
            r.identity,
            vectors.keys.consumer.address,
            r.relayerFee,
            vectors.registerIdentity.signature,
          ),
      ).to.be.revertedWithCustomError(registry, 'RegistryInvalidSignature');
    });
  });
});
