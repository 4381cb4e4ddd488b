import { loadFixture, time } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import { recoverAddress, Signature, type Signer, TypedDataEncoder, ZeroAddress, ZeroHash } from 'ethers';
import { ethers } from 'hardhat';
import type { ChitToken } from '../../typechain-types';

const NAME = 'Chit';
const SYMBOL = 'CHIT';
const SUPPLY = ethers.parseEther('1000000000');
const ALLOWANCE = ethers.parseEther('250');

const PERMIT_TYPES = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
};

interface PermitValue {
  owner: string;
  spender: string;
  value: bigint;
  nonce: bigint;
  deadline: bigint;
}

/** The whole supply minted to `holder`; `spender` and `stranger` hold nothing. */
async function chitTokenFixture() {
  const [deployer, holder, spender, stranger] = await ethers.getSigners();
  const factory = await ethers.getContractFactory('ChitToken');
  const token = (await factory.deploy(NAME, SYMBOL, holder.address, SUPPLY)) as unknown as ChitToken;
  const tokenAddress = await token.getAddress();
  const { chainId } = await ethers.provider.getNetwork();
  const domain = { name: NAME, version: '1', chainId, verifyingContract: tokenAddress };
  const permit: PermitValue = {
    owner: holder.address,
    spender: spender.address,
    value: ALLOWANCE,
    nonce: 0n,
    deadline: BigInt(await time.latest()) + 3600n,
  };
  return { deployer, holder, spender, stranger, factory, token, tokenAddress, chainId, domain, permit };
}

type Fixture = Awaited<ReturnType<typeof chitTokenFixture>>;

const signPermit = async (signer: Signer, f: Fixture, permit: PermitValue) =>
  Signature.from(await signer.signTypedData(f.domain, PERMIT_TYPES, permit));

const submitPermit = (f: Fixture, sender: Signer, permit: PermitValue, signature: Signature) =>
  f.token
    .connect(sender)
    .permit(permit.owner, permit.spender, permit.value, permit.deadline, signature.v, signature.r, signature.s);

describe('ChitToken', () => {
  describe('constructor', () => {
    describe('when given a name, a symbol, a holder and a supply', () => {
      it('sets the name, the symbol and 18 decimals', async () => {
        const { token } = await loadFixture(chitTokenFixture);
        expect(await token.name()).to.equal(NAME);
        expect(await token.symbol()).to.equal(SYMBOL);
        expect(await token.decimals()).to.equal(18n);
      });

      it('mints the whole supply to the holder', async () => {
        const { token, holder, deployer } = await loadFixture(chitTokenFixture);
        expect(await token.totalSupply()).to.equal(SUPPLY);
        expect(await token.balanceOf(holder.address)).to.equal(SUPPLY);
        expect(await token.balanceOf(deployer.address)).to.equal(0n);
      });

      it('emits Transfer from the zero address to the holder', async () => {
        const { token, holder } = await loadFixture(chitTokenFixture);
        await expect(token.deploymentTransaction())
          .to.emit(token, 'Transfer')
          .withArgs(ZeroAddress, holder.address, SUPPLY);
      });
    });

    describe('when the holder is the zero address', () => {
      it('reverts with ERC20InvalidReceiver', async () => {
        const { factory } = await loadFixture(chitTokenFixture);
        await expect(factory.deploy(NAME, SYMBOL, ZeroAddress, SUPPLY))
          .to.be.revertedWithCustomError(factory, 'ERC20InvalidReceiver')
          .withArgs(ZeroAddress);
      });
    });
  });

  describe('supply', () => {
    describe('after deployment', () => {
      it('exposes no function beyond ERC-20, EIP-2612 and ERC-5267', async () => {
        const { token } = await loadFixture(chitTokenFixture);
        const names: string[] = [];
        token.interface.forEachFunction((fragment) => {
          names.push(fragment.name);
        });
        expect(names.sort()).to.deep.equal([
          'DOMAIN_SEPARATOR',
          'allowance',
          'approve',
          'balanceOf',
          'decimals',
          'eip712Domain',
          'name',
          'nonces',
          'permit',
          'symbol',
          'totalSupply',
          'transfer',
          'transferFrom',
        ]);
      });

      it("rejects the test token's mint and faucet calls and keeps the supply", async () => {
        const { token, tokenAddress, stranger } = await loadFixture(chitTokenFixture);
        const testToken = (await ethers.getContractFactory('TestToken')).interface;
        await expect(
          stranger.sendTransaction({
            to: tokenAddress,
            data: testToken.encodeFunctionData('mint', [stranger.address, SUPPLY]),
          }),
        ).to.be.revertedWithoutReason();
        await expect(
          stranger.sendTransaction({ to: tokenAddress, data: testToken.encodeFunctionData('faucet') }),
        ).to.be.revertedWithoutReason();
        expect(await token.totalSupply()).to.equal(SUPPLY);
        expect(await token.balanceOf(stranger.address)).to.equal(0n);
      });
    });
  });

  describe('DOMAIN_SEPARATOR', () => {
    it('is the EIP-712 domain named after the token, version 1, this chain, this token', async () => {
      const { token, domain } = await loadFixture(chitTokenFixture);
      expect(await token.DOMAIN_SEPARATOR()).to.equal(TypedDataEncoder.hashDomain(domain));
      expect(await token.eip712Domain()).to.deep.equal([
        '0x0f',
        NAME,
        '1',
        domain.chainId,
        domain.verifyingContract,
        ZeroHash,
        [],
      ]);
    });
  });

  describe('permit', () => {
    describe('when the holder signed the permit and anyone submits it', () => {
      it('emits Approval', async () => {
        const f = await loadFixture(chitTokenFixture);
        const signature = await signPermit(f.holder, f, f.permit);
        await expect(submitPermit(f, f.stranger, f.permit, signature))
          .to.emit(f.token, 'Approval')
          .withArgs(f.holder.address, f.spender.address, ALLOWANCE);
      });

      it('sets the allowance and uses the nonce', async () => {
        const f = await loadFixture(chitTokenFixture);
        await submitPermit(f, f.stranger, f.permit, await signPermit(f.holder, f, f.permit));
        expect(await f.token.allowance(f.holder.address, f.spender.address)).to.equal(ALLOWANCE);
        expect(await f.token.nonces(f.holder.address)).to.equal(1n);
      });

      it('lets the spender move the allowed tokens', async () => {
        const f = await loadFixture(chitTokenFixture);
        await submitPermit(f, f.stranger, f.permit, await signPermit(f.holder, f, f.permit));
        await expect(
          f.token.connect(f.spender).transferFrom(f.holder.address, f.stranger.address, ALLOWANCE),
        ).to.changeTokenBalances(f.token, [f.holder, f.stranger], [-ALLOWANCE, ALLOWANCE]);
        expect(await f.token.allowance(f.holder.address, f.spender.address)).to.equal(0n);
      });
    });

    describe('when the deadline has passed', () => {
      it('reverts with ERC2612ExpiredSignature', async () => {
        const f = await loadFixture(chitTokenFixture);
        const expired = { ...f.permit, deadline: BigInt(await time.latest()) };
        const signature = await signPermit(f.holder, f, expired);
        await expect(submitPermit(f, f.stranger, expired, signature))
          .to.be.revertedWithCustomError(f.token, 'ERC2612ExpiredSignature')
          .withArgs(expired.deadline);
      });
    });

    describe('when another account signed the permit', () => {
      it('reverts with ERC2612InvalidSigner', async () => {
        const f = await loadFixture(chitTokenFixture);
        const signature = await signPermit(f.stranger, f, f.permit);
        await expect(submitPermit(f, f.stranger, f.permit, signature))
          .to.be.revertedWithCustomError(f.token, 'ERC2612InvalidSigner')
          .withArgs(f.stranger.address, f.holder.address);
      });
    });

    describe('when the permit is replayed', () => {
      it('reverts with ERC2612InvalidSigner, the nonce having moved on', async () => {
        const f = await loadFixture(chitTokenFixture);
        const signature = await signPermit(f.holder, f, f.permit);
        await submitPermit(f, f.stranger, f.permit, signature);
        const recovered = recoverAddress(
          TypedDataEncoder.hash(f.domain, PERMIT_TYPES, { ...f.permit, nonce: 1n }),
          signature,
        );
        await expect(submitPermit(f, f.stranger, f.permit, signature))
          .to.be.revertedWithCustomError(f.token, 'ERC2612InvalidSigner')
          .withArgs(recovered, f.holder.address);
      });
    });
  });
});
