import { loadFixture, time } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import {
  type BaseWallet,
  concat,
  dataSlice,
  getAddress,
  getCreate2Address,
  id,
  keccak256,
  MaxUint256,
  recoverAddress,
  Signature,
  type Signer,
  TypedDataEncoder,
  toBeHex,
  toUtf8Bytes,
  Wallet,
  ZeroAddress,
  zeroPadValue,
} from 'ethers';
import { ethers } from 'hardhat';
import type { Hub, IRegistry, ReentrantToken, Registry, TestToken } from '../../typechain-types';
import { deployHubFixture, deployRegistryFixture, HUB_FEE, HUB_URL, PARAMETERS, STAKE } from './helpers/fixtures';
import { compact, registerIdentitySignature, registryDomain, registryTypes, signTyped } from './helpers/signing';

// ---------------------------------------------------------------- local helpers

const RELAYER_FEE = ethers.parseEther('2');
const NEW_URL = 'https://hub.example.net/v2';
const SECP256K1_N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
const HUB_STATUS = { Uninitialized: 0n, Active: 1n, Closed: 4n } as const;

type Primary = keyof typeof registryTypes;

/** The fields of either relayed message; `relayerFee` and `relayer` are ignored by `SetBeneficiary`. */
interface RelayedValue {
  identity: string;
  beneficiary: string;
  relayerFee: bigint;
  /** The only account that may submit a `RegisterIdentity`: the Registry signs it in as `msg.sender`. */
  relayer?: string;
  nonce: bigint;
}

const fieldsOf = (primary: Primary, value: RelayedValue): Record<string, unknown> => {
  const all: Record<string, unknown> = { ...value };
  return Object.fromEntries(registryTypes[primary].map(({ name }) => [name, all[name]]));
};

const typesOf = (primary: Primary) => ({ [primary]: [...registryTypes[primary]] });

/** Signs `value` as `primary` for the Registry at `registry` on `chainId`. */
const signRelayed = (
  signer: Signer | BaseWallet,
  registry: string,
  chainId: bigint,
  primary: Primary,
  value: RelayedValue,
): Promise<string> =>
  signTyped(signer, registryDomain(registry, chainId), registryTypes, primary, fieldsOf(primary, value));

/** The EIP-712 digest the Registry at `registry` computes for `value` as `primary`. */
const digestOf = (registry: string, chainId: bigint, primary: Primary, value: RelayedValue): string =>
  TypedDataEncoder.hash(registryDomain(registry, chainId), typesOf(primary), fieldsOf(primary, value));

/** The address the Registry recovers from `signature` over `value`: the second argument of RegistryInvalidSignature. */
const recoveredFrom = (registry: string, chainId: bigint, primary: Primary, value: RelayedValue, signature: string) =>
  recoverAddress(digestOf(registry, chainId, primary, value), signature);

/** Submits a relayed message the way a relayer would. */
const submitRelayed = (primary: Primary, registry: Registry, sender: Signer, value: RelayedValue, signature: string) =>
  primary === 'RegisterIdentity'
    ? registry.connect(sender).registerIdentityFor(value.identity, value.beneficiary, value.relayerFee, signature)
    : registry.connect(sender).setBeneficiaryFor(value.identity, value.beneficiary, signature);

/** The same ECDSA signature with s replaced by n - s and v flipped: valid for ecrecover, malleable. */
const toHighS = (signature: string): string => {
  const s = BigInt(dataSlice(signature, 32, 64));
  const v = Number(dataSlice(signature, 64, 65));
  return concat([dataSlice(signature, 0, 32), toBeHex(SECP256K1_N - s, 32), toBeHex(v === 27 ? 28 : 27, 1)]);
};

/** The raw ecrecover precompile, which (unlike OpenZeppelin's ECDSA) accepts a high s. */
const ecrecover = async (digest: string, signature: string): Promise<string> => {
  const data = concat([
    digest,
    zeroPadValue(dataSlice(signature, 64, 65), 32),
    dataSlice(signature, 0, 32),
    dataSlice(signature, 32, 64),
  ]);
  const output = await ethers.provider.call({ to: '0x0000000000000000000000000000000000000001', data });
  return getAddress(dataSlice(output, 12));
};

/** EIP-1167 creation code of a minimal proxy to `implementation`, as OpenZeppelin's Clones deploys it. */
const cloneCreationCode = (implementation: string): string =>
  concat(['0x3d602d80600a3d3981f3363d3d373d3d3d363d73', implementation, '0x5af43d82803e903d91602b57fd5bf3']);

/** EIP-1167 runtime code of a minimal proxy to `implementation`. */
const cloneRuntimeCode = (implementation: string): string =>
  concat(['0x363d3d373d3d3d363d73', implementation, '0x5af43d82803e903d91602b57fd5bf3']);

/** An EIP-2612 permit signed by `owner`, ready for `token.permit`. */
const signPermit = async (token: TestToken, owner: Signer | BaseWallet, spender: string, value: bigint) => {
  const ownerAddress = await owner.getAddress();
  const deadline = BigInt(await time.latest()) + 3600n;
  const { chainId } = await ethers.provider.getNetwork();
  const domain = { name: await token.name(), version: '1', chainId, verifyingContract: await token.getAddress() };
  const types = {
    Permit: [
      { name: 'owner', type: 'address' },
      { name: 'spender', type: 'address' },
      { name: 'value', type: 'uint256' },
      { name: 'nonce', type: 'uint256' },
      { name: 'deadline', type: 'uint256' },
    ],
  };
  const nonce = await token.nonces(ownerAddress);
  const { v, r, s } = Signature.from(
    await owner.signTypedData(domain, types, { owner: ownerAddress, spender, value, nonce, deadline }),
  );
  return { owner: ownerAddress, spender, value, deadline, v, r, s };
};

const deployRegistry = async (token: string, parameters: IRegistry.ParametersStruct) =>
  (await (await ethers.getContractFactory('Registry')).deploy(token, parameters)) as unknown as Registry;

const hubRecords = async (registry: Registry, offset: bigint | number, limit: bigint | number) =>
  (await registry.listHubs(offset, limit)).map((record) => [record.hub, record.operator, record.url]);

// ---------------------------------------------------------------- fixtures

/** The Registry plus a signer with nothing to do yet, used as a second beneficiary. */
async function registryFixture() {
  const base = await deployRegistryFixture();
  const newBeneficiary = base.signers[8];
  const hubInterface = (await ethers.getContractFactory('Hub')).interface;
  return { ...base, newBeneficiary, hubInterface };
}

/** A Registry with one hub and the extra signers of {registryFixture}. */
async function hubFixture() {
  const base = await deployHubFixture();
  return { ...base, newBeneficiary: base.signers[8] };
}

/** Three hubs registered in the order operator, otherOperator, stranger. */
async function threeHubsFixture() {
  const base = await deployRegistryFixture();
  const { token, registry, registryAddress } = base;
  const operators = [base.operator, base.otherOperator, base.stranger];
  const urls = ['https://a.example', 'https://b.example', 'https://c.example'];
  for (const [i, operator] of operators.entries()) {
    await token.connect(operator).approve(registryAddress, STAKE);
    await registry.connect(operator).registerHub(STAKE, HUB_FEE, urls[i]);
  }
  const hubs = await Promise.all(operators.map((operator) => registry.hubOf(operator.address)));
  const records = hubs.map((hub, i) => [hub, operators[i].address, urls[i]]);
  return { ...base, operators, hubs, records };
}

/** An operator who approved the stake but registered nothing yet. */
async function approvedOperatorFixture() {
  const base = await registryFixture();
  await base.token.connect(base.operator).approve(base.registryAddress, MaxUint256);
  return base;
}

/** `provider` registered directly with `beneficiary`. */
async function registeredIdentityFixture() {
  const base = await registryFixture();
  await base.registry.connect(base.provider).registerIdentity(base.beneficiary.address);
  return { ...base, identity: base.provider };
}

/** A second Registry on the same token, to sign for by mistake. */
const deployOtherRegistry = async (token: TestToken) => {
  const otherRegistry = await deployRegistry(await token.getAddress(), PARAMETERS);
  return { otherRegistry, otherRegistryAddress: await otherRegistry.getAddress() };
};

/**
 * `provider` signed a relayed registration paying RELAYER_FEE to `relayer`, the only account that may
 * submit it, and approved both Registries for the fee. Nothing is submitted yet.
 */
async function signedRegistrationFixture() {
  const base = await registryFixture();
  const { token, registryAddress, chainId, provider: identity, beneficiary } = base;
  const other = await deployOtherRegistry(token);
  await token.connect(identity).approve(registryAddress, RELAYER_FEE);
  await token.connect(identity).approve(other.otherRegistryAddress, RELAYER_FEE);
  const value: RelayedValue = {
    identity: identity.address,
    beneficiary: beneficiary.address,
    relayerFee: RELAYER_FEE,
    relayer: base.relayer.address,
    nonce: 0n,
  };
  const signature = await signRelayed(identity, registryAddress, chainId, 'RegisterIdentity', value);
  return { ...base, ...other, identity, primary: 'RegisterIdentity' as Primary, value, signature };
}

/** Like {signedRegistrationFixture} with a zero relayer fee, a zero beneficiary and no allowance. */
async function signedFreeRegistrationFixture() {
  const base = await registryFixture();
  const { registryAddress, chainId, provider: identity } = base;
  const value: RelayedValue = {
    identity: identity.address,
    beneficiary: ZeroAddress,
    relayerFee: 0n,
    relayer: base.relayer.address,
    nonce: 0n,
  };
  const signature = await signRelayed(identity, registryAddress, chainId, 'RegisterIdentity', value);
  return { ...base, identity, value, signature };
}

/** A fresh identity that holds tokens but no ETH, so it can only act through signatures. */
async function gaslessIdentityFixture() {
  const base = await registryFixture();
  const identity = new Wallet(id('chit registry test: gasless identity'), ethers.provider);
  await base.token.mint(identity.address, ethers.parseEther('10'));
  return { ...base, identity };
}

/** A gasless identity with no tokens at all: a permit can give the Registry an allowance it cannot cover. */
async function brokeIdentityFixture() {
  const base = await registryFixture();
  const identity = new Wallet(id('chit registry test: broke identity'), ethers.provider);
  return { ...base, identity };
}

/**
 * `provider` registered directly with `beneficiary` on both Registries (which used up its nonce on each),
 * and signed a relayed change to `newBeneficiary` with its current nonce. Nothing is submitted yet.
 */
async function signedBeneficiaryChangeFixture() {
  const base = await registryFixture();
  const { token, registry, registryAddress, chainId, provider: identity, beneficiary, newBeneficiary } = base;
  const other = await deployOtherRegistry(token);
  await registry.connect(identity).registerIdentity(beneficiary.address);
  await other.otherRegistry.connect(identity).registerIdentity(beneficiary.address);
  const nonce = await registry.nonces(identity.address);
  expect(await other.otherRegistry.nonces(identity.address)).to.equal(nonce);
  const value: RelayedValue = {
    identity: identity.address,
    beneficiary: newBeneficiary.address,
    relayerFee: 0n,
    relayer: base.relayer.address,
    nonce,
  };
  const signature = await signRelayed(identity, registryAddress, chainId, 'SetBeneficiary', value);
  return { ...base, ...other, identity, primary: 'SetBeneficiary' as Primary, value, signature };
}

/** A Registry on a token that calls back into a chosen target on every transfer. */
async function reentrantTokenFixture() {
  const [, operator, identity, relayer] = await ethers.getSigners();
  const token = (await (await ethers.getContractFactory('ReentrantToken')).deploy()) as unknown as ReentrantToken;
  const tokenAddress = await token.getAddress();
  const registry = await deployRegistry(tokenAddress, PARAMETERS);
  const registryAddress = await registry.getAddress();
  const { chainId } = await ethers.provider.getNetwork();
  await token.mint(operator.address, STAKE);
  await token.mint(identity.address, RELAYER_FEE);
  await token.connect(operator).approve(registryAddress, STAKE);
  await token.connect(identity).approve(registryAddress, RELAYER_FEE);
  const hub = (await ethers.getContractAt('Hub', await registry.predictHubAddress(operator.address))) as unknown as Hub;
  return { token, tokenAddress, registry, registryAddress, chainId, operator, identity, relayer, hub };
}

// ---------------------------------------------------------------- shared behaviour

type RelayedFixture = () =>
  | ReturnType<typeof signedRegistrationFixture>
  | ReturnType<typeof signedBeneficiaryChangeFixture>;

/** Every way to pass off a signature the identity did not give for this exact call on this Registry. */
function shouldRejectForeignSignatures(fixture: RelayedFixture) {
  describe('when the signature is replayed by the relayer that submitted it', () => {
    it('reverts with RegistryInvalidSignature, the nonce having moved on', async () => {
      const f = await loadFixture(fixture);
      await submitRelayed(f.primary, f.registry, f.relayer, f.value, f.signature);
      expect(await f.registry.nonces(f.identity.address)).to.equal(f.value.nonce + 1n);
      const recovered = recoveredFrom(
        f.registryAddress,
        f.chainId,
        f.primary,
        { ...f.value, nonce: f.value.nonce + 1n },
        f.signature,
      );
      expect(recovered).not.to.equal(f.identity.address);
      await expect(submitRelayed(f.primary, f.registry, f.relayer, f.value, f.signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.identity.address, recovered);
    });
  });

  describe('when the signature was made for another chain id', () => {
    it('reverts with RegistryInvalidSignature', async () => {
      const f = await loadFixture(fixture);
      const signature = await signRelayed(f.identity, f.registryAddress, f.chainId + 1n, f.primary, f.value);
      const recovered = recoveredFrom(f.registryAddress, f.chainId, f.primary, f.value, signature);
      expect(recovered).not.to.equal(f.identity.address);
      await expect(submitRelayed(f.primary, f.registry, f.relayer, f.value, signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.identity.address, recovered);
    });
  });

  describe('when the signature was made for another Registry', () => {
    it('reverts with RegistryInvalidSignature', async () => {
      const f = await loadFixture(fixture);
      const signature = await signRelayed(f.identity, f.otherRegistryAddress, f.chainId, f.primary, f.value);
      const recovered = recoveredFrom(f.registryAddress, f.chainId, f.primary, f.value, signature);
      expect(recovered).not.to.equal(f.identity.address);
      await expect(submitRelayed(f.primary, f.registry, f.relayer, f.value, signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.identity.address, recovered);
    });

    it('is accepted by the Registry it was made for', async () => {
      const f = await loadFixture(fixture);
      const signature = await signRelayed(f.identity, f.otherRegistryAddress, f.chainId, f.primary, f.value);
      await submitRelayed(f.primary, f.otherRegistry, f.relayer, f.value, signature);
      expect(await f.otherRegistry.beneficiaryOf(f.identity.address)).to.equal(f.value.beneficiary);
    });
  });

  describe('when the signature was made for the other message type', () => {
    it('reverts with RegistryInvalidSignature', async () => {
      const f = await loadFixture(fixture);
      const otherType: Primary = f.primary === 'RegisterIdentity' ? 'SetBeneficiary' : 'RegisterIdentity';
      const signature = await signRelayed(f.identity, f.registryAddress, f.chainId, otherType, f.value);
      const recovered = recoveredFrom(f.registryAddress, f.chainId, f.primary, f.value, signature);
      expect(recovered).not.to.equal(f.identity.address);
      await expect(submitRelayed(f.primary, f.registry, f.relayer, f.value, signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.identity.address, recovered);
    });
  });

  describe('when the signature is malleated to a high s', () => {
    it('reverts with RegistryInvalidSignature and a zero recovered address', async () => {
      const f = await loadFixture(fixture);
      const malleated = toHighS(f.signature);
      // The malleated signature is a valid ECDSA signature of the identity: only the low-s rule rejects it.
      expect(await ecrecover(digestOf(f.registryAddress, f.chainId, f.primary, f.value), malleated)).to.equal(
        f.identity.address,
      );
      await expect(submitRelayed(f.primary, f.registry, f.relayer, f.value, malleated))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.identity.address, ZeroAddress);
    });
  });

  describe('when the signature is in the 64-byte EIP-2098 form', () => {
    it('reverts with RegistryInvalidSignature and a zero recovered address', async () => {
      const f = await loadFixture(fixture);
      const { r, vs } = compact(f.signature);
      await expect(submitRelayed(f.primary, f.registry, f.relayer, f.value, concat([r, vs])))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.identity.address, ZeroAddress);
    });
  });

  describe('when another account signed the message', () => {
    it('reverts with RegistryInvalidSignature naming that account', async () => {
      const f = await loadFixture(fixture);
      const signature = await signRelayed(f.stranger, f.registryAddress, f.chainId, f.primary, f.value);
      await expect(submitRelayed(f.primary, f.registry, f.relayer, f.value, signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.identity.address, f.stranger.address);
    });
  });

  describe('when the relayer swaps in its own beneficiary', () => {
    it('reverts with RegistryInvalidSignature', async () => {
      const f = await loadFixture(fixture);
      const tampered = { ...f.value, beneficiary: f.relayer.address };
      const recovered = recoveredFrom(f.registryAddress, f.chainId, f.primary, tampered, f.signature);
      expect(recovered).not.to.equal(f.identity.address);
      await expect(submitRelayed(f.primary, f.registry, f.relayer, tampered, f.signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.identity.address, recovered);
    });
  });
}

// ---------------------------------------------------------------- tests

describe('Registry', () => {
  describe('constructor', () => {
    describe('when the token is the zero address', () => {
      it('reverts with RegistryZeroAddress', async () => {
        const factory = await ethers.getContractFactory('Registry');
        await expect(factory.deploy(ZeroAddress, PARAMETERS)).to.be.revertedWithCustomError(
          factory,
          'RegistryZeroAddress',
        );
      });
    });

    describe('when maxFee is above 10000 basis points', () => {
      it('reverts with RegistryInvalidParameters("maxFee above 10000")', async () => {
        const { token } = await loadFixture(registryFixture);
        const factory = await ethers.getContractFactory('Registry');
        await expect(factory.deploy(await token.getAddress(), { ...PARAMETERS, maxFee: 10_001 }))
          .to.be.revertedWithCustomError(factory, 'RegistryInvalidParameters')
          .withArgs('maxFee above 10000');
      });
    });

    describe('when maxFee is exactly 10000 basis points and minStake is 1', () => {
      it('deploys with those parameters', async () => {
        const { token } = await loadFixture(registryFixture);
        const registry = await deployRegistry(await token.getAddress(), {
          ...PARAMETERS,
          maxFee: 10_000,
          minStake: 1n,
        });
        const parameters = await registry.parameters();
        expect(parameters.maxFee).to.equal(10_000n);
        expect(parameters.minStake).to.equal(1n);
      });
    });

    describe('when minStake is zero', () => {
      it('reverts with RegistryInvalidParameters("minStake is zero")', async () => {
        const { token } = await loadFixture(registryFixture);
        const factory = await ethers.getContractFactory('Registry');
        await expect(factory.deploy(await token.getAddress(), { ...PARAMETERS, minStake: 0n }))
          .to.be.revertedWithCustomError(factory, 'RegistryInvalidParameters')
          .withArgs('minStake is zero');
      });
    });

    describe('when exitDelay is zero', () => {
      it('reverts with RegistryInvalidParameters("exitDelay is zero")', async () => {
        const { token } = await loadFixture(registryFixture);
        const factory = await ethers.getContractFactory('Registry');
        await expect(factory.deploy(await token.getAddress(), { ...PARAMETERS, exitDelay: 0n }))
          .to.be.revertedWithCustomError(factory, 'RegistryInvalidParameters')
          .withArgs('exitDelay is zero');
      });
    });

    describe('when feeDelay is zero', () => {
      it('reverts with RegistryInvalidParameters("feeDelay is zero")', async () => {
        const { token } = await loadFixture(registryFixture);
        const factory = await ethers.getContractFactory('Registry');
        await expect(factory.deploy(await token.getAddress(), { ...PARAMETERS, feeDelay: 0n }))
          .to.be.revertedWithCustomError(factory, 'RegistryInvalidParameters')
          .withArgs('feeDelay is zero');
      });
    });

    describe('when closeDelay is zero', () => {
      it('reverts with RegistryInvalidParameters("closeDelay is zero")', async () => {
        const { token } = await loadFixture(registryFixture);
        const factory = await ethers.getContractFactory('Registry');
        await expect(factory.deploy(await token.getAddress(), { ...PARAMETERS, closeDelay: 0n }))
          .to.be.revertedWithCustomError(factory, 'RegistryInvalidParameters')
          .withArgs('closeDelay is zero');
      });
    });

    describe('when the parameters are valid', () => {
      it('stores the token and the parameters', async () => {
        const { registry, token } = await loadFixture(registryFixture);
        expect(await registry.token()).to.equal(await token.getAddress());
        // minStake, maxFee, exitDelay, feeDelay, closeDelay
        expect(await registry.parameters()).to.deep.equal([
          PARAMETERS.minStake,
          BigInt(PARAMETERS.maxFee),
          PARAMETERS.exitDelay,
          PARAMETERS.feeDelay,
          PARAMETERS.closeDelay,
        ]);
      });

      it('starts with no hubs', async () => {
        const { registry, operator } = await loadFixture(registryFixture);
        expect(await registry.hubCount()).to.equal(0n);
        expect(await registry.listHubs(0, 10)).to.deep.equal([]);
        expect(await registry.hubOf(operator.address)).to.equal(ZeroAddress);
      });

      it('deploys a Hub implementation bound to this Registry, its token and its parameters', async () => {
        const { registry, registryAddress, token } = await loadFixture(registryFixture);
        const implementationAddress = await registry.hubImplementation();
        expect(await ethers.provider.getCode(implementationAddress)).not.to.equal('0x');
        const implementation = (await ethers.getContractAt('Hub', implementationAddress)) as unknown as Hub;
        expect(await implementation.registry()).to.equal(registryAddress);
        expect(await implementation.token()).to.equal(await token.getAddress());
        expect(await implementation.parameters()).to.deep.equal([
          PARAMETERS.minStake,
          BigInt(PARAMETERS.maxFee),
          PARAMETERS.exitDelay,
          PARAMETERS.feeDelay,
          PARAMETERS.closeDelay,
        ]);
        expect(await implementation.status()).to.equal(HUB_STATUS.Uninitialized);
        expect(await implementation.operator()).to.equal(ZeroAddress);
        expect(await registry.isHub(implementationAddress)).to.equal(false);
      });
    });
  });

  describe('Hub initialize', () => {
    describe('when anyone calls it on the implementation', () => {
      it('reverts with InvalidInitialization', async () => {
        const { registry, stranger } = await loadFixture(registryFixture);
        const implementation = (await ethers.getContractAt(
          'Hub',
          await registry.hubImplementation(),
        )) as unknown as Hub;
        await expect(
          implementation.connect(stranger).initialize(stranger.address, HUB_FEE, STAKE),
        ).to.be.revertedWithCustomError(implementation, 'InvalidInitialization');
      });
    });

    describe('when its operator calls it again on a registered hub', () => {
      it('reverts with InvalidInitialization and leaves the hub as it was', async () => {
        const { hub, operator, stranger } = await loadFixture(hubFixture);
        await expect(hub.connect(operator).initialize(stranger.address, 0, 1n)).to.be.revertedWithCustomError(
          hub,
          'InvalidInitialization',
        );
        expect(await hub.operator()).to.equal(operator.address);
        expect(await hub.stake()).to.equal(STAKE);
      });
    });

    describe('when a stranger calls it on an uninitialized clone of the implementation', () => {
      it('reverts with HubOnlyRegistry', async () => {
        const { registry, stranger } = await loadFixture(registryFixture);
        // Anyone can deploy an EIP-1167 clone of the implementation outside the Registry: it stays
        // uninitialized, so only the registry check stands between it and a stranger.
        const deployment = await stranger.sendTransaction({
          data: cloneCreationCode(await registry.hubImplementation()),
        });
        const cloneAddress = (await deployment.wait())!.contractAddress!;
        const clone = (await ethers.getContractAt('Hub', cloneAddress)) as unknown as Hub;
        expect(await clone.status()).to.equal(HUB_STATUS.Uninitialized);
        await expect(clone.connect(stranger).initialize(stranger.address, HUB_FEE, STAKE))
          .to.be.revertedWithCustomError(clone, 'HubOnlyRegistry')
          .withArgs(stranger.address);
        expect(await registry.isHub(cloneAddress)).to.equal(false);
      });
    });

    describe('when the token calls it on the new clone in the middle of registerHub', () => {
      it('reverts with HubOnlyRegistry and the registration completes for the operator', async () => {
        const { token, tokenAddress, registry, operator, hub } = await loadFixture(reentrantTokenFixture);
        // The clone exists but is not yet initialized while the stake is transferred.
        await token.arm(await hub.getAddress(), hub.interface.encodeFunctionData('initialize', [tokenAddress, 0, 1n]));
        await registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL);
        expect(await token.lastReturnData()).to.equal(
          hub.interface.encodeErrorResult('HubOnlyRegistry', [tokenAddress]),
        );
        expect(await token.lastCallSucceeded()).to.equal(false);
        expect(await hub.operator()).to.equal(operator.address);
        expect(await hub.stake()).to.equal(STAKE);
      });
    });
  });

  describe('registerHub', () => {
    describe('when the stake, fee and URL are valid', () => {
      it('returns the hub at predictHubAddress(operator)', async () => {
        const { registry, registryAddress, operator } = await loadFixture(approvedOperatorFixture);
        const predicted = await registry.predictHubAddress(operator.address);
        const salt = zeroPadValue(operator.address, 32);
        const initCodeHash = keccak256(cloneCreationCode(await registry.hubImplementation()));
        expect(predicted).to.equal(getCreate2Address(registryAddress, salt, initCodeHash));
        expect(await registry.connect(operator).registerHub.staticCall(STAKE, HUB_FEE, HUB_URL)).to.equal(predicted);
      });

      it('emits HubRegistered', async () => {
        const { registry, operator } = await loadFixture(approvedOperatorFixture);
        const predicted = await registry.predictHubAddress(operator.address);
        await expect(registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL))
          .to.emit(registry, 'HubRegistered')
          .withArgs(operator.address, predicted, STAKE, HUB_FEE, HUB_URL);
      });

      it('moves the stake from the operator to the new hub', async () => {
        const { registry, registryAddress, token, operator } = await loadFixture(approvedOperatorFixture);
        const predicted = await registry.predictHubAddress(operator.address);
        const tx = registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL);
        await expect(tx).to.emit(token, 'Transfer').withArgs(operator.address, predicted, STAKE);
        await expect(tx).to.changeTokenBalances(token, [operator, predicted, registryAddress], [-STAKE, STAKE, 0n]);
      });

      it('deploys an EIP-1167 clone of the implementation', async () => {
        const { registry, operator } = await loadFixture(approvedOperatorFixture);
        await registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL);
        const hub = await registry.hubOf(operator.address);
        expect(await ethers.provider.getCode(hub)).to.equal(cloneRuntimeCode(await registry.hubImplementation()));
      });

      it('lists the hub', async () => {
        const { registry, operator, stranger } = await loadFixture(approvedOperatorFixture);
        await registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL);
        const hub = await registry.predictHubAddress(operator.address);
        expect(await registry.hubOf(operator.address)).to.equal(hub);
        expect(await registry.hubOf(stranger.address)).to.equal(ZeroAddress);
        expect(await registry.isHub(hub)).to.equal(true);
        expect(await registry.isHub(operator.address)).to.equal(false);
        expect(await registry.isHub(ZeroAddress)).to.equal(false);
        expect(await registry.hubCount()).to.equal(1n);
        expect(await hubRecords(registry, 0, 10)).to.deep.equal([[hub, operator.address, HUB_URL]]);
      });

      it('initializes the hub as active with the operator, fee and stake', async () => {
        const { registry, registryAddress, token, operator, chainId } = await loadFixture(approvedOperatorFixture);
        await registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL);
        const hubAddress = await registry.hubOf(operator.address);
        const hub = (await ethers.getContractAt('Hub', hubAddress)) as unknown as Hub;
        expect(await hub.operator()).to.equal(operator.address);
        // operator, status, consumersPaused, fee, pendingFee, pendingFeeAt
        expect(await hub.config()).to.deep.equal([
          operator.address,
          HUB_STATUS.Active,
          false,
          BigInt(HUB_FEE),
          BigInt(HUB_FEE),
          0n,
        ]);
        expect(await hub.status()).to.equal(HUB_STATUS.Active);
        expect(await hub.isPunished()).to.equal(false);
        expect(await hub.currentFee()).to.equal(BigInt(HUB_FEE));
        expect(await hub.stake()).to.equal(STAKE);
        expect(await hub.stakeOwed()).to.equal(0n);
        expect(await hub.freeFunds()).to.equal(0n);
        expect(await hub.closesAt()).to.equal(0n);
        expect(await hub.registry()).to.equal(registryAddress);
        expect(await hub.token()).to.equal(await token.getAddress());
        expect(await hub.domainSeparator()).to.equal(
          TypedDataEncoder.hashDomain({ name: 'Chit Hub', version: '1', chainId, verifyingContract: hubAddress }),
        );
      });
    });

    describe('when the stake is exactly the minimum and the fee exactly the cap', () => {
      it('registers the hub', async () => {
        const { registry, operator } = await loadFixture(approvedOperatorFixture);
        await expect(registry.connect(operator).registerHub(PARAMETERS.minStake, PARAMETERS.maxFee, HUB_URL))
          .to.emit(registry, 'HubRegistered')
          .withArgs(
            operator.address,
            await registry.predictHubAddress(operator.address),
            PARAMETERS.minStake,
            PARAMETERS.maxFee,
            HUB_URL,
          );
        const hub = (await ethers.getContractAt('Hub', await registry.hubOf(operator.address))) as unknown as Hub;
        expect(await hub.stake()).to.equal(PARAMETERS.minStake);
        expect(await hub.currentFee()).to.equal(BigInt(PARAMETERS.maxFee));
      });
    });

    describe('when the fee is zero', () => {
      it('registers a hub that charges nothing', async () => {
        const { registry, operator } = await loadFixture(approvedOperatorFixture);
        await registry.connect(operator).registerHub(STAKE, 0, HUB_URL);
        const hub = (await ethers.getContractAt('Hub', await registry.hubOf(operator.address))) as unknown as Hub;
        expect(await hub.currentFee()).to.equal(0n);
      });
    });

    describe('when the stake is below the minimum', () => {
      it('reverts with RegistryStakeTooLow', async () => {
        const { registry, operator } = await loadFixture(approvedOperatorFixture);
        await expect(registry.connect(operator).registerHub(PARAMETERS.minStake - 1n, HUB_FEE, HUB_URL))
          .to.be.revertedWithCustomError(registry, 'RegistryStakeTooLow')
          .withArgs(PARAMETERS.minStake - 1n, PARAMETERS.minStake);
      });
    });

    describe('when the stake is zero', () => {
      it('reverts with RegistryStakeTooLow', async () => {
        const { registry, operator } = await loadFixture(approvedOperatorFixture);
        await expect(registry.connect(operator).registerHub(0n, HUB_FEE, HUB_URL))
          .to.be.revertedWithCustomError(registry, 'RegistryStakeTooLow')
          .withArgs(0n, PARAMETERS.minStake);
      });
    });

    describe('when the fee is above the cap', () => {
      it('reverts with RegistryFeeTooHigh', async () => {
        const { registry, operator } = await loadFixture(approvedOperatorFixture);
        await expect(registry.connect(operator).registerHub(STAKE, PARAMETERS.maxFee + 1, HUB_URL))
          .to.be.revertedWithCustomError(registry, 'RegistryFeeTooHigh')
          .withArgs(PARAMETERS.maxFee + 1, PARAMETERS.maxFee);
      });
    });

    describe('when the URL is empty', () => {
      it('reverts with RegistryEmptyUrl', async () => {
        const { registry, operator } = await loadFixture(approvedOperatorFixture);
        await expect(registry.connect(operator).registerHub(STAKE, HUB_FEE, '')).to.be.revertedWithCustomError(
          registry,
          'RegistryEmptyUrl',
        );
      });
    });

    describe('when the operator already runs a hub', () => {
      it('reverts with RegistryHubAlreadyRegistered', async () => {
        const { registry, registryAddress, token, operator, hubAddress } = await loadFixture(hubFixture);
        await token.connect(operator).approve(registryAddress, STAKE);
        await expect(registry.connect(operator).registerHub(STAKE, HUB_FEE, 'https://second.example'))
          .to.be.revertedWithCustomError(registry, 'RegistryHubAlreadyRegistered')
          .withArgs(operator.address, hubAddress);
      });
    });

    describe("when the operator's hub was closed", () => {
      it('still reverts with RegistryHubAlreadyRegistered and keeps the closed hub listed', async () => {
        const { registry, registryAddress, token, operator, hub, hubAddress } = await loadFixture(hubFixture);
        await hub.connect(operator).requestClose();
        await time.increase(PARAMETERS.closeDelay);
        await hub.connect(operator).close();
        expect(await hub.status()).to.equal(HUB_STATUS.Closed);
        await token.connect(operator).approve(registryAddress, STAKE);
        await expect(registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL))
          .to.be.revertedWithCustomError(registry, 'RegistryHubAlreadyRegistered')
          .withArgs(operator.address, hubAddress);
        expect(await registry.isHub(hubAddress)).to.equal(true);
        expect(await hubRecords(registry, 0, 10)).to.deep.equal([[hubAddress, operator.address, HUB_URL]]);
      });
    });

    describe('when the operator has not approved the stake', () => {
      it('reverts with the token error ERC20InsufficientAllowance', async () => {
        const { registry, registryAddress, token, operator } = await loadFixture(registryFixture);
        await expect(registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL))
          .to.be.revertedWithCustomError(token, 'ERC20InsufficientAllowance')
          .withArgs(registryAddress, 0n, STAKE);
      });
    });

    describe('when the operator does not hold the stake', () => {
      it('reverts with the token error ERC20InsufficientBalance', async () => {
        const { registry, registryAddress, token, beneficiary } = await loadFixture(registryFixture);
        await token.connect(beneficiary).approve(registryAddress, STAKE);
        await expect(registry.connect(beneficiary).registerHub(STAKE, HUB_FEE, HUB_URL))
          .to.be.revertedWithCustomError(token, 'ERC20InsufficientBalance')
          .withArgs(beneficiary.address, 0n, STAKE);
        expect(await registry.hubCount()).to.equal(0n);
        expect(await ethers.provider.getCode(await registry.predictHubAddress(beneficiary.address))).to.equal('0x');
      });
    });

    describe('when the stake does not fit in 128 bits', () => {
      it('reverts with the hub error SafeCastOverflowedUintDowncast', async () => {
        const { registry, token, operator, hubInterface } = await loadFixture(approvedOperatorFixture);
        const stake = 2n ** 128n;
        await token.mint(operator.address, stake);
        await expect(registry.connect(operator).registerHub(stake, HUB_FEE, HUB_URL))
          .to.be.revertedWithCustomError({ interface: hubInterface }, 'SafeCastOverflowedUintDowncast')
          .withArgs(128, stake);
      });
    });

    describe('when the token re-enters registerHub during the stake transfer', () => {
      it('blocks the inner call with ReentrancyGuardReentrantCall and completes the outer one', async () => {
        const { token, registry, registryAddress, operator } = await loadFixture(reentrantTokenFixture);
        await token.arm(
          registryAddress,
          registry.interface.encodeFunctionData('registerHub', [STAKE, HUB_FEE, 'https://reentrant.example']),
        );
        await registry.connect(operator).registerHub(STAKE, HUB_FEE, HUB_URL);
        expect(await token.lastReturnData()).to.equal(
          registry.interface.encodeErrorResult('ReentrancyGuardReentrantCall', []),
        );
        expect(await token.lastCallSucceeded()).to.equal(false);
        expect(await registry.hubCount()).to.equal(1n);
      });
    });
  });

  describe('predictHubAddress', () => {
    describe('when several operators register', () => {
      it('gives each operator its own address, where its hub is', async () => {
        const { registry, operators, hubs } = await loadFixture(threeHubsFixture);
        expect(new Set(hubs).size).to.equal(3);
        for (const [i, operator] of operators.entries()) {
          expect(await registry.predictHubAddress(operator.address)).to.equal(hubs[i]);
        }
      });
    });
  });

  describe('listHubs', () => {
    describe('when the page covers every hub', () => {
      it('returns the hubs in registration order', async () => {
        const { registry, records } = await loadFixture(threeHubsFixture);
        expect(await registry.hubCount()).to.equal(3n);
        expect(await hubRecords(registry, 0, 3)).to.deep.equal(records);
      });
    });

    describe('when the page is inside the list', () => {
      it('returns exactly that page', async () => {
        const { registry, records } = await loadFixture(threeHubsFixture);
        expect(await hubRecords(registry, 1, 1)).to.deep.equal([records[1]]);
      });
    });

    describe('when the limit is larger than what remains', () => {
      it('returns the rest of the list', async () => {
        const { registry, records } = await loadFixture(threeHubsFixture);
        expect(await hubRecords(registry, 1, 10)).to.deep.equal(records.slice(1));
      });
    });

    describe('when the limit is the largest uint256', () => {
      it('returns the rest of the list without overflowing', async () => {
        const { registry, records } = await loadFixture(threeHubsFixture);
        expect(await hubRecords(registry, 2, MaxUint256)).to.deep.equal(records.slice(2));
      });
    });

    describe('when the offset is the end of the list', () => {
      it('returns nothing', async () => {
        const { registry } = await loadFixture(threeHubsFixture);
        expect(await hubRecords(registry, 3, 10)).to.deep.equal([]);
      });
    });

    describe('when the offset is beyond the end of the list', () => {
      it('returns nothing', async () => {
        const { registry } = await loadFixture(threeHubsFixture);
        expect(await hubRecords(registry, MaxUint256, 10)).to.deep.equal([]);
      });
    });

    describe('when the limit is zero', () => {
      it('returns nothing', async () => {
        const { registry } = await loadFixture(threeHubsFixture);
        expect(await hubRecords(registry, 0, 0)).to.deep.equal([]);
      });
    });
  });

  describe('updateHubUrl', () => {
    describe('when the caller runs a hub', () => {
      it('emits HubUrlUpdated', async () => {
        const { registry, operator, hubAddress } = await loadFixture(hubFixture);
        await expect(registry.connect(operator).updateHubUrl(NEW_URL))
          .to.emit(registry, 'HubUrlUpdated')
          .withArgs(operator.address, hubAddress, NEW_URL);
      });

      it('lists the hub at the new URL, in the same place', async () => {
        const { registry, records, operators, hubs } = await loadFixture(threeHubsFixture);
        await registry.connect(operators[1]).updateHubUrl(NEW_URL);
        expect(await hubRecords(registry, 0, 3)).to.deep.equal([
          records[0],
          [hubs[1], operators[1].address, NEW_URL],
          records[2],
        ]);
        expect(await registry.hubOf(operators[1].address)).to.equal(hubs[1]);
      });
    });

    describe('when the caller runs no hub', () => {
      it('reverts with RegistryHubNotRegistered', async () => {
        const { registry, stranger } = await loadFixture(hubFixture);
        await expect(registry.connect(stranger).updateHubUrl(NEW_URL))
          .to.be.revertedWithCustomError(registry, 'RegistryHubNotRegistered')
          .withArgs(stranger.address);
      });
    });

    describe('when the URL is empty', () => {
      it('reverts with RegistryEmptyUrl', async () => {
        const { registry, operator } = await loadFixture(hubFixture);
        await expect(registry.connect(operator).updateHubUrl('')).to.be.revertedWithCustomError(
          registry,
          'RegistryEmptyUrl',
        );
      });
    });
  });

  describe('registerIdentity', () => {
    describe('before registration', () => {
      it('reads as unregistered and paid to itself, with nonce 0', async () => {
        const { registry, provider } = await loadFixture(registryFixture);
        expect(await registry.isRegistered(provider.address)).to.equal(false);
        expect(await registry.beneficiaryOf(provider.address)).to.equal(provider.address);
        expect(await registry.nonces(provider.address)).to.equal(0n);
      });
    });

    describe('when a beneficiary is given', () => {
      it('emits IdentityRegistered with the caller as relayer and no fee', async () => {
        const { registry, provider, beneficiary } = await loadFixture(registryFixture);
        await expect(registry.connect(provider).registerIdentity(beneficiary.address))
          .to.emit(registry, 'IdentityRegistered')
          .withArgs(provider.address, beneficiary.address, provider.address, 0n);
      });

      it('registers the identity paying out to the beneficiary, and uses up its nonce', async () => {
        const { registry, provider, beneficiary } = await loadFixture(registeredIdentityFixture);
        expect(await registry.isRegistered(provider.address)).to.equal(true);
        expect(await registry.beneficiaryOf(provider.address)).to.equal(beneficiary.address);
        expect(await registry.isRegistered(beneficiary.address)).to.equal(false);
        expect(await registry.nonces(provider.address)).to.equal(1n);
      });
    });

    describe('when the beneficiary is the zero address', () => {
      it('registers the identity paying out to itself', async () => {
        const { registry, provider } = await loadFixture(registryFixture);
        await expect(registry.connect(provider).registerIdentity(ZeroAddress))
          .to.emit(registry, 'IdentityRegistered')
          .withArgs(provider.address, provider.address, provider.address, 0n);
        expect(await registry.isRegistered(provider.address)).to.equal(true);
        expect(await registry.beneficiaryOf(provider.address)).to.equal(provider.address);
      });
    });

    describe('when the identity is already registered', () => {
      it('reverts with RegistryIdentityAlreadyRegistered', async () => {
        const { registry, identity, newBeneficiary } = await loadFixture(registeredIdentityFixture);
        await expect(registry.connect(identity).registerIdentity(newBeneficiary.address))
          .to.be.revertedWithCustomError(registry, 'RegistryIdentityAlreadyRegistered')
          .withArgs(identity.address);
      });
    });
  });

  describe('registerIdentityFor', () => {
    describe('when the identity approved the relayer fee', () => {
      it('emits IdentityRegistered with the relayer and its fee', async () => {
        const { registry, relayer, value, signature } = await loadFixture(signedRegistrationFixture);
        await expect(submitRelayed('RegisterIdentity', registry, relayer, value, signature))
          .to.emit(registry, 'IdentityRegistered')
          .withArgs(value.identity, value.beneficiary, relayer.address, RELAYER_FEE);
      });

      it('registers the identity with its beneficiary and uses its nonce', async () => {
        const { registry, relayer, identity, beneficiary, value, signature } =
          await loadFixture(signedRegistrationFixture);
        await submitRelayed('RegisterIdentity', registry, relayer, value, signature);
        expect(await registry.isRegistered(identity.address)).to.equal(true);
        expect(await registry.beneficiaryOf(identity.address)).to.equal(beneficiary.address);
        expect(await registry.nonces(identity.address)).to.equal(1n);
      });

      it('pays the relayer fee from the identity to the caller', async () => {
        const { registry, registryAddress, token, relayer, identity, value, signature } =
          await loadFixture(signedRegistrationFixture);
        const tx = submitRelayed('RegisterIdentity', registry, relayer, value, signature);
        await expect(tx).to.emit(token, 'Transfer').withArgs(identity.address, relayer.address, RELAYER_FEE);
        await expect(tx).to.changeTokenBalances(
          token,
          [identity, relayer, registryAddress],
          [-RELAYER_FEE, RELAYER_FEE, 0n],
        );
        expect(await token.allowance(identity.address, registryAddress)).to.equal(0n);
      });
    });

    describe('when the relayer fee is paid through a permit the relayer submits', () => {
      it('registers an identity that never sends a transaction', async () => {
        const { registry, registryAddress, token, chainId, identity, relayer, beneficiary } =
          await loadFixture(gaslessIdentityFixture);
        const permit = await signPermit(token, identity, registryAddress, RELAYER_FEE);
        const value = {
          identity: identity.address,
          beneficiary: beneficiary.address,
          relayerFee: RELAYER_FEE,
          relayer: relayer.address,
          nonce: 0n,
        };
        const signature = await registerIdentitySignature(identity, registryAddress, chainId, value);

        await token
          .connect(relayer)
          .permit(permit.owner, permit.spender, permit.value, permit.deadline, permit.v, permit.r, permit.s);
        const tx = submitRelayed('RegisterIdentity', registry, relayer, value, signature);
        await expect(tx)
          .to.emit(registry, 'IdentityRegistered')
          .withArgs(identity.address, beneficiary.address, relayer.address, RELAYER_FEE);
        await expect(tx).to.changeTokenBalances(token, [identity, relayer], [-RELAYER_FEE, RELAYER_FEE]);

        expect(await registry.beneficiaryOf(identity.address)).to.equal(beneficiary.address);
        expect(await registry.nonces(identity.address)).to.equal(1n);
        expect(await token.nonces(identity.address)).to.equal(1n);
        expect(await ethers.provider.getTransactionCount(identity.address)).to.equal(0);
        expect(await ethers.provider.getBalance(identity.address)).to.equal(0n);
      });
    });

    describe('when the relayer fee is zero and the beneficiary is the zero address', () => {
      it('registers the identity paying out to itself, without moving tokens or needing an allowance', async () => {
        const { registry, registryAddress, token, relayer, identity, value, signature } =
          await loadFixture(signedFreeRegistrationFixture);
        expect(await token.allowance(identity.address, registryAddress)).to.equal(0n);
        await expect(submitRelayed('RegisterIdentity', registry, relayer, value, signature))
          .to.emit(registry, 'IdentityRegistered')
          .withArgs(identity.address, identity.address, relayer.address, 0n)
          .and.not.to.emit(token, 'Transfer');
        expect(await registry.isRegistered(identity.address)).to.equal(true);
        expect(await registry.beneficiaryOf(identity.address)).to.equal(identity.address);
        expect(await registry.nonces(identity.address)).to.equal(1n);
      });
    });

    describe('when the identity is already registered', () => {
      it('reverts with RegistryIdentityAlreadyRegistered', async () => {
        const { registry, registryAddress, chainId, relayer, identity, value } =
          await loadFixture(signedRegistrationFixture);
        await registry.connect(identity).registerIdentity(ZeroAddress);
        const current = { ...value, nonce: await registry.nonces(identity.address) };
        const signature = await signRelayed(identity, registryAddress, chainId, 'RegisterIdentity', current);
        await expect(submitRelayed('RegisterIdentity', registry, relayer, current, signature))
          .to.be.revertedWithCustomError(registry, 'RegistryIdentityAlreadyRegistered')
          .withArgs(identity.address);
      });
    });

    describe('when a signed registration is submitted after the identity registered directly', () => {
      // A direct registration uses up the identity's nonce, voiding signed registrations it handed out earlier.
      it('reverts with RegistryInvalidSignature and keeps the direct choice', async () => {
        const { registry, registryAddress, chainId, token, relayer, identity, value, signature } =
          await loadFixture(signedRegistrationFixture);
        await registry.connect(identity).registerIdentity(ZeroAddress);
        expect(await registry.nonces(identity.address)).to.equal(value.nonce + 1n);
        const recovered = recoveredFrom(
          registryAddress,
          chainId,
          'RegisterIdentity',
          { ...value, nonce: value.nonce + 1n },
          signature,
        );
        expect(recovered).not.to.equal(identity.address);
        await expect(submitRelayed('RegisterIdentity', registry, relayer, value, signature))
          .to.be.revertedWithCustomError(registry, 'RegistryInvalidSignature')
          .withArgs(identity.address, recovered);
        expect(await registry.beneficiaryOf(identity.address)).to.equal(identity.address);
        expect(await registry.nonces(identity.address)).to.equal(value.nonce + 1n);
        expect(await token.allowance(identity.address, registryAddress)).to.equal(RELAYER_FEE);
      });
    });

    describe('when the identity has not approved the relayer fee', () => {
      it('reverts with the token error ERC20InsufficientAllowance', async () => {
        const { registry, registryAddress, token, relayer, identity, value, signature } =
          await loadFixture(signedRegistrationFixture);
        await token.connect(identity).approve(registryAddress, 0n);
        await expect(submitRelayed('RegisterIdentity', registry, relayer, value, signature))
          .to.be.revertedWithCustomError(token, 'ERC20InsufficientAllowance')
          .withArgs(registryAddress, 0n, RELAYER_FEE);
        expect(await registry.isRegistered(identity.address)).to.equal(false);
        expect(await registry.nonces(identity.address)).to.equal(0n);
      });
    });

    describe('when the identity cannot pay the relayer fee', () => {
      it('reverts with the token error ERC20InsufficientBalance', async () => {
        const { registry, registryAddress, token, chainId, identity, relayer } =
          await loadFixture(brokeIdentityFixture);
        const permit = await signPermit(token, identity, registryAddress, RELAYER_FEE);
        await token
          .connect(relayer)
          .permit(permit.owner, permit.spender, permit.value, permit.deadline, permit.v, permit.r, permit.s);
        const value = {
          identity: identity.address,
          beneficiary: ZeroAddress,
          relayerFee: RELAYER_FEE,
          relayer: relayer.address,
          nonce: 0n,
        };
        const signature = await registerIdentitySignature(identity, registryAddress, chainId, value);
        await expect(submitRelayed('RegisterIdentity', registry, relayer, value, signature))
          .to.be.revertedWithCustomError(token, 'ERC20InsufficientBalance')
          .withArgs(identity.address, 0n, RELAYER_FEE);
      });
    });

    describe('when the identity is the zero address', () => {
      it('reverts with RegistryInvalidSignature: a signature that recovers to nobody never passes', async () => {
        const { registry, relayer } = await loadFixture(registryFixture);
        const noSignature = `0x${'00'.repeat(65)}`;
        await expect(registry.connect(relayer).registerIdentityFor(ZeroAddress, ZeroAddress, 0n, noSignature))
          .to.be.revertedWithCustomError(registry, 'RegistryInvalidSignature')
          .withArgs(ZeroAddress, ZeroAddress);
      });
    });

    describe('when the relayer raises the relayer fee', () => {
      it('reverts with RegistryInvalidSignature', async () => {
        const { registry, registryAddress, chainId, token, relayer, identity, value, signature } =
          await loadFixture(signedRegistrationFixture);
        const tampered = { ...value, relayerFee: RELAYER_FEE * 2n };
        await token.connect(identity).approve(registryAddress, tampered.relayerFee);
        const recovered = recoveredFrom(registryAddress, chainId, 'RegisterIdentity', tampered, signature);
        expect(recovered).not.to.equal(identity.address);
        await expect(submitRelayed('RegisterIdentity', registry, relayer, tampered, signature))
          .to.be.revertedWithCustomError(registry, 'RegistryInvalidSignature')
          .withArgs(identity.address, recovered);
      });
    });

    describe("when an outside party copies the relayer's pending registration and sends it first", () => {
      it('reverts with RegistryInvalidSignature(identity, recovered), nothing moves, and the named relayer then registers and takes the fee', async () => {
        const f = await loadFixture(signedRegistrationFixture);
        const { registry, registryAddress, chainId, token, relayer, identity, beneficiary, value, signature } = f;
        // Its own keys and gas, no account of the fixture: what a mempool watcher has.
        const frontRunner = new Wallet(id('chit registry test: front-runner'), ethers.provider);
        await f.deployer.sendTransaction({ to: frontRunner.address, value: ethers.parseEther('1') });
        const pending = registry.interface.encodeFunctionData('registerIdentityFor', [
          value.identity,
          value.beneficiary,
          value.relayerFee,
          signature,
        ]);
        const recovered = recoveredFrom(
          registryAddress,
          chainId,
          'RegisterIdentity',
          { ...value, relayer: frontRunner.address },
          signature,
        );
        expect(recovered).not.to.equal(identity.address);
        const before = await Promise.all([identity, frontRunner, relayer].map((a) => token.balanceOf(a.address)));

        await expect(frontRunner.sendTransaction({ to: registryAddress, data: pending }))
          .to.be.revertedWithCustomError(registry, 'RegistryInvalidSignature')
          .withArgs(identity.address, recovered);
        expect(
          await Promise.all([identity, frontRunner, relayer].map((a) => token.balanceOf(a.address))),
        ).to.deep.equal(before);
        expect(await registry.isRegistered(identity.address)).to.equal(false);
        expect(await registry.nonces(identity.address)).to.equal(0n);
        expect(await token.allowance(identity.address, registryAddress)).to.equal(RELAYER_FEE);

        const tx = relayer.sendTransaction({ to: registryAddress, data: pending });
        await expect(tx)
          .to.emit(registry, 'IdentityRegistered')
          .withArgs(identity.address, beneficiary.address, relayer.address, RELAYER_FEE);
        await expect(tx).to.changeTokenBalances(
          token,
          [identity, relayer, frontRunner],
          [-RELAYER_FEE, RELAYER_FEE, 0n],
        );
        expect(await registry.beneficiaryOf(identity.address)).to.equal(beneficiary.address);
      });
    });

    describe('when the registration names another relayer than the caller', () => {
      it('reverts with RegistryInvalidSignature, and only the named relayer can submit it', async () => {
        const { registry, registryAddress, chainId, token, relayer, stranger, identity, value } =
          await loadFixture(signedRegistrationFixture);
        const forStranger = { ...value, relayer: stranger.address };
        const signature = await signRelayed(identity, registryAddress, chainId, 'RegisterIdentity', forStranger);
        const recovered = recoveredFrom(registryAddress, chainId, 'RegisterIdentity', value, signature);
        expect(recovered).not.to.equal(identity.address);
        await expect(submitRelayed('RegisterIdentity', registry, relayer, forStranger, signature))
          .to.be.revertedWithCustomError(registry, 'RegistryInvalidSignature')
          .withArgs(identity.address, recovered);
        expect(await registry.nonces(identity.address)).to.equal(0n);
        await expect(
          submitRelayed('RegisterIdentity', registry, stranger, forStranger, signature),
        ).to.changeTokenBalances(token, [identity, stranger, relayer], [-RELAYER_FEE, RELAYER_FEE, 0n]);
      });
    });

    describe('when the relayer fee is zero and another account than the named relayer submits it', () => {
      it('reverts with RegistryInvalidSignature: the registration is bound to its relayer whatever the fee', async () => {
        const { registry, registryAddress, chainId, stranger, identity, value, signature } =
          await loadFixture(signedFreeRegistrationFixture);
        const recovered = recoveredFrom(
          registryAddress,
          chainId,
          'RegisterIdentity',
          { ...value, relayer: stranger.address },
          signature,
        );
        await expect(submitRelayed('RegisterIdentity', registry, stranger, value, signature))
          .to.be.revertedWithCustomError(registry, 'RegistryInvalidSignature')
          .withArgs(identity.address, recovered);
        expect(await registry.isRegistered(identity.address)).to.equal(false);
      });
    });

    describe('when the token re-enters registerIdentityFor during the fee transfer', () => {
      it('blocks the inner call with ReentrancyGuardReentrantCall and completes the outer one', async () => {
        const { token, registry, registryAddress, chainId, identity, relayer } =
          await loadFixture(reentrantTokenFixture);
        const value = {
          identity: identity.address,
          beneficiary: ZeroAddress,
          relayerFee: RELAYER_FEE,
          relayer: relayer.address,
          nonce: 0n,
        };
        const signature = await registerIdentitySignature(identity, registryAddress, chainId, value);
        await token.arm(
          registryAddress,
          registry.interface.encodeFunctionData('registerIdentityFor', [
            value.identity,
            value.beneficiary,
            value.relayerFee,
            signature,
          ]),
        );
        await submitRelayed('RegisterIdentity', registry, relayer, value, signature);
        expect(await token.lastReturnData()).to.equal(
          registry.interface.encodeErrorResult('ReentrancyGuardReentrantCall', []),
        );
        expect(await token.lastCallSucceeded()).to.equal(false);
        expect(await token.balanceOf(relayer.address)).to.equal(RELAYER_FEE);
      });
    });

    shouldRejectForeignSignatures(signedRegistrationFixture);
  });

  describe('setBeneficiary', () => {
    describe('when the identity is registered', () => {
      it('emits BeneficiaryChanged', async () => {
        const { registry, identity, newBeneficiary } = await loadFixture(registeredIdentityFixture);
        await expect(registry.connect(identity).setBeneficiary(newBeneficiary.address))
          .to.emit(registry, 'BeneficiaryChanged')
          .withArgs(identity.address, newBeneficiary.address);
      });

      it('pays the identity out to the new beneficiary, and uses up its nonce', async () => {
        const { registry, identity, newBeneficiary } = await loadFixture(registeredIdentityFixture);
        const nonce = await registry.nonces(identity.address);
        await registry.connect(identity).setBeneficiary(newBeneficiary.address);
        expect(await registry.beneficiaryOf(identity.address)).to.equal(newBeneficiary.address);
        expect(await registry.isRegistered(identity.address)).to.equal(true);
        expect(await registry.nonces(identity.address)).to.equal(nonce + 1n);
      });
    });

    describe('when the identity is not registered', () => {
      it('reverts with RegistryIdentityNotRegistered', async () => {
        const { registry, stranger, newBeneficiary } = await loadFixture(registryFixture);
        await expect(registry.connect(stranger).setBeneficiary(newBeneficiary.address))
          .to.be.revertedWithCustomError(registry, 'RegistryIdentityNotRegistered')
          .withArgs(stranger.address);
      });
    });

    describe('when the beneficiary is the zero address', () => {
      it('reverts with RegistryZeroAddress', async () => {
        const { registry, identity } = await loadFixture(registeredIdentityFixture);
        await expect(registry.connect(identity).setBeneficiary(ZeroAddress)).to.be.revertedWithCustomError(
          registry,
          'RegistryZeroAddress',
        );
      });
    });
  });

  describe('setBeneficiaryFor', () => {
    describe('when the identity signed the change', () => {
      it('emits BeneficiaryChanged', async () => {
        const { registry, relayer, identity, newBeneficiary, value, signature } =
          await loadFixture(signedBeneficiaryChangeFixture);
        await expect(submitRelayed('SetBeneficiary', registry, relayer, value, signature))
          .to.emit(registry, 'BeneficiaryChanged')
          .withArgs(identity.address, newBeneficiary.address);
      });

      it('pays the identity out to the new beneficiary and uses its nonce', async () => {
        const { registry, relayer, identity, newBeneficiary, value, signature } =
          await loadFixture(signedBeneficiaryChangeFixture);
        await submitRelayed('SetBeneficiary', registry, relayer, value, signature);
        expect(await registry.beneficiaryOf(identity.address)).to.equal(newBeneficiary.address);
        expect(await registry.nonces(identity.address)).to.equal(value.nonce + 1n);
      });
    });

    describe('when the identity registered through a relayer', () => {
      it('takes the next nonce of the same sequence', async () => {
        const f = await loadFixture(signedFreeRegistrationFixture);
        await submitRelayed('RegisterIdentity', f.registry, f.relayer, f.value, f.signature);
        const change = {
          identity: f.identity.address,
          beneficiary: f.newBeneficiary.address,
          relayerFee: 0n,
          nonce: 1n,
        };
        const signature = await signRelayed(f.identity, f.registryAddress, f.chainId, 'SetBeneficiary', change);
        await expect(submitRelayed('SetBeneficiary', f.registry, f.relayer, change, signature))
          .to.emit(f.registry, 'BeneficiaryChanged')
          .withArgs(f.identity.address, f.newBeneficiary.address);
        expect(await f.registry.nonces(f.identity.address)).to.equal(2n);
      });
    });

    describe('when the identity is not registered', () => {
      it('reverts with RegistryIdentityNotRegistered', async () => {
        const { registry, registryAddress, chainId, relayer, stranger, newBeneficiary } =
          await loadFixture(registryFixture);
        const value = { identity: stranger.address, beneficiary: newBeneficiary.address, relayerFee: 0n, nonce: 0n };
        const signature = await signRelayed(stranger, registryAddress, chainId, 'SetBeneficiary', value);
        await expect(submitRelayed('SetBeneficiary', registry, relayer, value, signature))
          .to.be.revertedWithCustomError(registry, 'RegistryIdentityNotRegistered')
          .withArgs(stranger.address);
      });
    });

    describe('when the identity signed the zero address as beneficiary', () => {
      it('reverts with RegistryZeroAddress', async () => {
        const { registry, registryAddress, chainId, relayer, identity, value } =
          await loadFixture(signedBeneficiaryChangeFixture);
        const zero = { ...value, beneficiary: ZeroAddress };
        const signature = await signRelayed(identity, registryAddress, chainId, 'SetBeneficiary', zero);
        await expect(submitRelayed('SetBeneficiary', registry, relayer, zero, signature)).to.be.revertedWithCustomError(
          registry,
          'RegistryZeroAddress',
        );
      });
    });

    describe('when an older signed change is replayed after a newer one', () => {
      it('reverts with RegistryInvalidSignature and keeps the newer beneficiary', async () => {
        const f = await loadFixture(signedBeneficiaryChangeFixture);
        await submitRelayed('SetBeneficiary', f.registry, f.relayer, f.value, f.signature);
        const newer = { ...f.value, beneficiary: f.relayer.address, nonce: f.value.nonce + 1n };
        const newerSignature = await signRelayed(f.identity, f.registryAddress, f.chainId, 'SetBeneficiary', newer);
        await submitRelayed('SetBeneficiary', f.registry, f.relayer, newer, newerSignature);

        const recovered = recoveredFrom(
          f.registryAddress,
          f.chainId,
          'SetBeneficiary',
          { ...f.value, nonce: f.value.nonce + 2n },
          f.signature,
        );
        await expect(submitRelayed('SetBeneficiary', f.registry, f.stranger, f.value, f.signature))
          .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
          .withArgs(f.identity.address, recovered);
        expect(await f.registry.beneficiaryOf(f.identity.address)).to.equal(f.relayer.address);
      });
    });

    describe('when a signed change is submitted after the identity changed its beneficiary directly', () => {
      // A direct change uses up the identity's nonce, voiding signed changes it handed out earlier.
      it('reverts with RegistryInvalidSignature and keeps the direct choice', async () => {
        const f = await loadFixture(signedBeneficiaryChangeFixture);
        await f.registry.connect(f.identity).setBeneficiary(f.relayer.address);
        expect(await f.registry.nonces(f.identity.address)).to.equal(f.value.nonce + 1n);
        const recovered = recoveredFrom(
          f.registryAddress,
          f.chainId,
          'SetBeneficiary',
          { ...f.value, nonce: f.value.nonce + 1n },
          f.signature,
        );
        expect(recovered).not.to.equal(f.identity.address);
        await expect(submitRelayed('SetBeneficiary', f.registry, f.stranger, f.value, f.signature))
          .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
          .withArgs(f.identity.address, recovered);
        expect(await f.registry.beneficiaryOf(f.identity.address)).to.equal(f.relayer.address);
      });
    });

    shouldRejectForeignSignatures(signedBeneficiaryChangeFixture);
  });

  describe('EIP-712', () => {
    describe('domainSeparator', () => {
      it('is the domain "Chit Registry", version 1, this chain, this Registry', async () => {
        const { registry, registryAddress, chainId } = await loadFixture(registryFixture);
        expect(await registry.domainSeparator()).to.equal(
          TypedDataEncoder.hashDomain(registryDomain(registryAddress, chainId)),
        );
      });

      it('differs between two Registries on the same token', async () => {
        const { registry, token } = await loadFixture(registryFixture);
        const { otherRegistry } = await deployOtherRegistry(token);
        expect(await otherRegistry.domainSeparator()).not.to.equal(await registry.domainSeparator());
      });
    });

    describe('eip712Domain', () => {
      it('reports the same domain (ERC-5267)', async () => {
        const { registry, registryAddress, chainId } = await loadFixture(registryFixture);
        expect(await registry.eip712Domain()).to.deep.equal([
          '0x0f',
          'Chit Registry',
          '1',
          chainId,
          registryAddress,
          `0x${'00'.repeat(32)}`,
          [],
        ]);
      });
    });

    describe('type hashes', () => {
      it('match the RegisterIdentity and SetBeneficiary types the clients sign', async () => {
        const { registry } = await loadFixture(registryFixture);
        const typeHash = (primary: Primary) =>
          keccak256(toUtf8Bytes(TypedDataEncoder.from(typesOf(primary)).encodeType(primary)));
        expect(await registry.REGISTER_IDENTITY_TYPEHASH()).to.equal(typeHash('RegisterIdentity'));
        expect(await registry.SET_BENEFICIARY_TYPEHASH()).to.equal(typeHash('SetBeneficiary'));
        expect(await registry.REGISTER_IDENTITY_TYPEHASH()).to.equal(
          id('RegisterIdentity(address identity,address beneficiary,uint256 relayerFee,address relayer,uint256 nonce)'),
        );
        expect(await registry.SET_BENEFICIARY_TYPEHASH()).to.equal(
          id('SetBeneficiary(address identity,address beneficiary,uint256 nonce)'),
        );
      });
    });
  });
});
