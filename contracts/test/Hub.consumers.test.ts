import { loadFixture, time } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import {
  AbiCoder,
  type ContractTransactionResponse,
  concat,
  dataSlice,
  getAddress,
  id,
  keccak256,
  MaxUint256,
  recoverAddress,
  Signature,
  type Signer,
  TypedDataEncoder,
  toBeHex,
  Wallet,
  ZeroAddress,
  ZeroHash,
} from 'ethers';
import { ethers } from 'hardhat';
import type { Hub, TestToken } from '../../typechain-types';
import { DEPOSIT, fundedHubFixture, HUB_FEE, HUB_URL, PARAMETERS, STAKE } from './helpers/fixtures';
import { N, S_MASK, Status } from './helpers/providers';
import {
  agreementHash,
  agreementId,
  compact,
  consumerClaim,
  hubDomain,
  hubTypes,
  instantExitSignature,
  newHashlock,
  providerClaim,
  signTyped,
} from './helpers/signing';

// ---------------------------------------------------------------- helpers local to this file

const e = (amount: string | number): bigint => ethers.parseEther(String(amount));

const CONSUMER_PROMISE_TYPEHASH = id(
  'ConsumerPromise(address consumer,uint256 total,bytes32 hashlock,Agreement agreement)' +
    'Agreement(address provider,bytes32 id,uint256 total)',
);

const abi = AbiCoder.defaultAbiCoder();

interface Compact {
  r: string;
  vs: string;
}

/** A consumer claim with plain field types (what `consumerClaim` returns at runtime). */
interface Claim {
  consumer: string;
  total: bigint;
  agreementHash: string;
  preimage: string;
  signature: Compact;
}

interface Account {
  address: string;
}

/** The hub's books: its token balance must equal consumer balances + stake + free funds. */
interface Books {
  token: TestToken;
  hubs: Hub[];
  accounts: string[];
}

let books: Books | undefined;

interface Tracked {
  token: TestToken;
  hub: Hub;
  signers: Account[];
  hub2?: Hub;
  holder?: Account;
}

/** `loadFixture` that also registers the hubs and accounts the books check of `afterEach` covers. */
async function load<T extends Tracked>(fixture: () => Promise<T>): Promise<T> {
  const f = await loadFixture(fixture);
  books = {
    token: f.token,
    hubs: f.hub2 ? [f.hub, f.hub2] : [f.hub],
    accounts: [...f.signers.map((s) => s.address), ...(f.holder ? [f.holder.address] : [])],
  };
  return f;
}

async function expectBooksBalance({ token, hubs, accounts }: Books): Promise<void> {
  for (const hub of hubs) {
    let consumers = 0n;
    for (const account of accounts) consumers += (await hub.consumerChannel(account)).balance;
    const held = await token.balanceOf(await hub.getAddress());
    expect(held, 'hub token balance == consumer balances + stake + free funds').to.equal(
      consumers + (await hub.stake()) + (await hub.freeFunds()),
    );
  }
}

async function channelOf(hub: Hub, consumer: Account): Promise<{ balance: bigint; settled: bigint }> {
  const { balance, settled } = await hub.consumerChannel(consumer.address);
  return { balance, settled };
}

async function exitOf(hub: Hub, consumer: Account): Promise<{ amount: bigint; readyAt: bigint }> {
  const { amount, readyAt } = await hub.exitRequest(consumer.address);
  return { amount, readyAt };
}

/** Sets the timestamp of the next block a few seconds ahead and returns it. */
async function atNextBlock(offset = 10n): Promise<bigint> {
  const at = BigInt(await time.latest()) + offset;
  await time.setNextBlockTimestamp(at);
  return at;
}

/** The EIP-712 digest of the consumer promise a claim stands for, computed independently of the helpers. */
function promiseDigest(hub: string, chainId: bigint, claim: Omit<Claim, 'signature'>): string {
  const structHash = keccak256(
    abi.encode(
      ['bytes32', 'address', 'uint256', 'bytes32', 'bytes32'],
      [CONSUMER_PROMISE_TYPEHASH, claim.consumer, claim.total, keccak256(claim.preimage), claim.agreementHash],
    ),
  );
  return keccak256(concat(['0x1901', TypedDataEncoder.hashDomain(hubDomain(hub, chainId)), structHash]));
}

function instantExitDigest(
  hub: string,
  chainId: bigint,
  value: { consumer: string; amount: bigint; nonce: bigint; deadline: bigint },
): string {
  return TypedDataEncoder.hash(hubDomain(hub, chainId), { InstantExit: [...hubTypes.InstantExit] }, value);
}

/** The signer of a low-s compact signature. */
const recoverCompact = (digest: string, signature: Compact): string =>
  recoverAddress(digest, Signature.from({ r: signature.r, yParityAndS: signature.vs }));

/** The raw ecrecover precompile, which (unlike OpenZeppelin's ECDSA) accepts high-s signatures. */
async function ecrecover(digest: string, v: bigint, r: string, s: bigint): Promise<string> {
  const out = await ethers.provider.call({
    to: '0x0000000000000000000000000000000000000001',
    data: abi.encode(['bytes32', 'uint8', 'bytes32', 'bytes32'], [digest, v, r, toBeHex(s, 32)]),
  });
  return out === '0x' ? ZeroAddress : getAddress(dataSlice(out, 12));
}

/** Splits an EIP-2098 `vs` into its parity bit and s. */
const splitVs = (vs: string): { parity: bigint; s: bigint } => ({
  parity: BigInt(vs) >> 255n,
  s: BigInt(vs) & S_MASK,
});

async function claimOf(
  f: { hubAddress: string; chainId: bigint; provider: Account },
  consumer: Signer,
  total: bigint,
  options: { preimage?: string; hub?: string; chainId?: bigint } = {},
): Promise<Claim> {
  return (await consumerClaim({
    hub: options.hub ?? f.hubAddress,
    chainId: options.chainId ?? f.chainId,
    consumer,
    total,
    provider: f.provider.address,
    preimage: options.preimage,
  })) as unknown as Claim;
}

/** A claim for `consumer` whose promise, naming `consumer`, was signed by `signer` instead. */
async function forgedClaim(
  f: { hubAddress: string; chainId: bigint; provider: Account },
  signer: Signer,
  consumer: string,
  total: bigint,
): Promise<Claim> {
  const { preimage, hashlock } = newHashlock();
  const agreement = { provider: f.provider.address, id: agreementId(1), total };
  const signature = await signTyped(signer, hubDomain(f.hubAddress, f.chainId), hubTypes, 'ConsumerPromise', {
    consumer,
    total,
    hashlock,
    agreement,
  });
  return { consumer, total, agreementHash: agreementHash(agreement), preimage, signature: compact(signature) };
}

interface SettledEvent {
  consumer: string;
  total: bigint;
  amount: bigint;
  preimage: string;
}

/** Every ConsumerSettled event of a transaction, in order. */
async function settledEvents(hub: Hub, tx: ContractTransactionResponse): Promise<SettledEvent[]> {
  const receipt = await tx.wait();
  const hubAddress = await hub.getAddress();
  const out: SettledEvent[] = [];
  for (const log of receipt!.logs) {
    if (log.address !== hubAddress) continue;
    const parsed = hub.interface.parseLog(log);
    if (parsed?.name !== 'ConsumerSettled') continue;
    const [consumer, total, amount, preimage] = parsed.args;
    out.push({ consumer, total, amount, preimage });
  }
  return out;
}

const eventOf = (claim: Claim, amount: bigint): SettledEvent => ({
  consumer: claim.consumer,
  total: claim.total,
  amount,
  preimage: claim.preimage,
});

const permitTypes = {
  Permit: [
    { name: 'owner', type: 'address' },
    { name: 'spender', type: 'address' },
    { name: 'value', type: 'uint256' },
    { name: 'nonce', type: 'uint256' },
    { name: 'deadline', type: 'uint256' },
  ],
};

/** An EIP-2612 permit of the TestToken, split into (v, r, s). */
async function signPermit(
  owner: Signer,
  token: TestToken,
  chainId: bigint,
  value: { owner: string; spender: string; value: bigint; nonce: bigint; deadline: bigint },
): Promise<{ v: number; r: string; s: string }> {
  const domain = { name: 'Chit Test Token', version: '1', chainId, verifyingContract: await token.getAddress() };
  const signature = Signature.from(await owner.signTypedData(domain, permitTypes, value));
  return { v: signature.v, r: signature.r, s: signature.s };
}

// ---------------------------------------------------------------- fixtures

/** `consumer` has DEPOSIT in the hub; `consumer` and `stranger` have approved the hub without limit. */
async function fundedFixture() {
  const f = await fundedHubFixture();
  await f.token.connect(f.consumer).approve(f.hubAddress, MaxUint256);
  await f.token.connect(f.stranger).approve(f.hubAddress, MaxUint256);
  return f;
}

/** The operator asked to close the hub. */
async function closingFixture() {
  const f = await fundedFixture();
  await f.hub.connect(f.operator).requestClose();
  const closesAt = await f.hub.closesAt();
  return { ...f, closesAt };
}

/** The hub closed after the close delay: stake and free funds went back to the operator. */
async function closedFixture() {
  const f = await closingFixture();
  await time.increaseTo(f.closesAt);
  await f.hub.connect(f.operator).close();
  return f;
}

/** The operator refuses new consumers. */
async function pausedFixture() {
  const f = await fundedFixture();
  await f.hub.connect(f.operator).setConsumersPaused(true);
  return f;
}

/** A provider claim was paid from the stake: the hub reads as punished. */
async function punishedFixture() {
  const f = await fundedFixture();
  const claim = await providerClaim({
    hub: f.hubAddress,
    chainId: f.chainId,
    operator: f.operator,
    provider: f.provider.address,
    total: e(10),
  });
  await f.hub.settleProvider(claim);
  return f;
}

/** `holder` is a fresh key with tokens and no ETH; it signed a permit for DEPOSIT to the hub. */
async function permitFixture() {
  const f = await fundedFixture();
  const holder = Wallet.createRandom();
  await f.token.mint(holder.address, e(1000));
  const deadline = BigInt(await time.latest()) + 3600n;
  const permit = await signPermit(holder, f.token, f.chainId, {
    owner: holder.address,
    spender: f.hubAddress,
    value: DEPOSIT,
    nonce: 0n,
    deadline,
  });
  return { ...f, holder, deadline, permit };
}

/** `holder`'s permit, with the hub closing. */
async function permitClosingFixture() {
  const f = await permitFixture();
  await f.hub.connect(f.operator).requestClose();
  return f;
}

/** `holder`'s permit, with new consumers refused. */
async function permitPausedFixture() {
  const f = await permitFixture();
  await f.hub.connect(f.operator).setConsumersPaused(true);
  return f;
}

const EXIT = e(40);

/** `consumer` asked to exit with EXIT out of DEPOSIT. */
async function exitFixture() {
  const f = await fundedFixture();
  const requestedAt = await atNextBlock();
  await f.hub.connect(f.consumer).requestExit(EXIT);
  return { ...f, requestedAt, readyAt: requestedAt + PARAMETERS.exitDelay };
}

const INSTANT = e(30);

/** The operator co-signed an instant exit of INSTANT for `consumer`. */
async function instantExitFixture() {
  const f = await fundedFixture();
  const deadline = BigInt(await time.latest()) + 3600n;
  const value = { consumer: f.consumer.address, amount: INSTANT, nonce: 0n, deadline };
  const signature = await instantExitSignature(f.operator, f.hubAddress, f.chainId, value);
  return { ...f, deadline, value, signature };
}

/** A promise of 30 from `consumer`, signed and not yet settled. */
async function promiseFixture() {
  const f = await fundedFixture();
  const claim = await claimOf(f, f.consumer, e(30));
  return { ...f, claim };
}

/** A promise of 30 from `consumer`, settled. */
async function settledFixture() {
  const f = await promiseFixture();
  await f.hub.settleConsumer(f.claim);
  return f;
}

/** A second hub of the same Registry, run by `otherOperator`, where `consumer` also has DEPOSIT. */
async function twoHubsFixture() {
  const f = await fundedFixture();
  await f.token.connect(f.otherOperator).approve(f.registryAddress, STAKE);
  await f.registry.connect(f.otherOperator).registerHub(STAKE, HUB_FEE, HUB_URL);
  const hub2Address = await f.registry.hubOf(f.otherOperator.address);
  const hub2 = (await ethers.getContractAt('Hub', hub2Address)) as unknown as Hub;
  await f.token.connect(f.consumer).approve(hub2Address, DEPOSIT);
  await hub2.connect(f.consumer).deposit(DEPOSIT);
  return { ...f, hub2, hub2Address };
}

/** `consumer` has DEPOSIT and `stranger` has 50 in the hub; each signed a promise. */
async function batchFixture() {
  const f = await fundedFixture();
  await f.hub.connect(f.stranger).deposit(e(50));
  const first = await claimOf(f, f.consumer, e(30));
  const second = await claimOf(f, f.stranger, e(20));
  return { ...f, first, second };
}

// ---------------------------------------------------------------- tests

describe('Hub: consumers', () => {
  // Every scenario ends with the books check (rule 8) on each hub its fixture registered through `load`.
  afterEach(async function (this: Mocha.Context) {
    if (this.currentTest?.state !== 'passed' || !books) return;
    await expectBooksBalance(books);
  });

  describe('domainSeparator', () => {
    it("is the EIP-712 separator of 'Chit Hub', version 1, this chain and this clone", async () => {
      const f = await load(fundedFixture);
      expect(await f.hub.domainSeparator()).to.equal(TypedDataEncoder.hashDomain(hubDomain(f.hubAddress, f.chainId)));
    });

    it('is the domain the hub reports through EIP-5267', async () => {
      const f = await load(fundedFixture);
      const domain = await f.hub.eip712Domain();
      expect(domain.name).to.equal('Chit Hub');
      expect(domain.version).to.equal('1');
      expect(domain.chainId).to.equal(f.chainId);
      expect(domain.verifyingContract).to.equal(f.hubAddress);
    });

    it('differs between two hubs of the same Registry', async () => {
      const f = await load(twoHubsFixture);
      expect(await f.hub2.domainSeparator()).to.equal(TypedDataEncoder.hashDomain(hubDomain(f.hub2Address, f.chainId)));
      expect(await f.hub2.domainSeparator()).not.to.equal(await f.hub.domainSeparator());
    });
  });

  describe('views', () => {
    it('consumerChannel is empty for an address that never deposited', async () => {
      const f = await load(fundedFixture);
      expect(await channelOf(f.hub, f.stranger)).to.deep.equal({ balance: 0n, settled: 0n });
    });

    it('exitRequest is empty when no exit is pending', async () => {
      const f = await load(fundedFixture);
      expect(await exitOf(f.hub, f.consumer)).to.deep.equal({ amount: 0n, readyAt: 0n });
    });

    it('nonces starts at zero for every consumer', async () => {
      const f = await load(fundedFixture);
      expect(await f.hub.nonces(f.consumer.address)).to.equal(0n);
      expect(await f.hub.nonces(f.stranger.address)).to.equal(0n);
    });
  });

  describe('deposit', () => {
    describe('when the consumer is new', () => {
      it('opens its channel with the amount and takes the tokens', async () => {
        const f = await load(fundedFixture);
        const amount = e(25);
        const before = await f.token.balanceOf(f.stranger.address);
        const tx = f.hub.connect(f.stranger).deposit(amount);
        await expect(tx).to.emit(f.hub, 'Deposited').withArgs(f.stranger.address, f.stranger.address, amount, amount);
        await expect(tx).to.changeTokenBalances(f.token, [f.stranger, f.hub], [-amount, amount]);
        expect(await channelOf(f.hub, f.stranger)).to.deep.equal({ balance: amount, settled: 0n });
        expect(await f.token.balanceOf(f.stranger.address)).to.equal(before - amount);
        expect(await f.hub.freeFunds()).to.equal(0n);
        expect(await f.hub.stake()).to.equal(STAKE);
      });
    });

    describe('when the consumer tops up', () => {
      it('adds to the balance and leaves the settled total alone', async () => {
        const f = await load(settledFixture);
        const amount = e(5);
        const tx = f.hub.connect(f.consumer).deposit(amount);
        await expect(tx)
          .to.emit(f.hub, 'Deposited')
          .withArgs(f.consumer.address, f.consumer.address, amount, DEPOSIT - e(30) + amount);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [-amount, amount]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - e(30) + amount, settled: e(30) });
        expect(await f.hub.freeFunds()).to.equal(e(30));
      });
    });

    describe('when the amount is zero', () => {
      it('reverts with HubZeroAmount', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.consumer).deposit(0)).to.be.revertedWithCustomError(f.hub, 'HubZeroAmount');
      });
    });

    describe('when the allowance is too small', () => {
      it("reverts with the token's ERC20InsufficientAllowance", async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.relayer).deposit(e(1)))
          .to.be.revertedWithCustomError(f.token, 'ERC20InsufficientAllowance')
          .withArgs(f.hubAddress, 0n, e(1));
        expect(await channelOf(f.hub, f.relayer)).to.deep.equal({ balance: 0n, settled: 0n });
      });
    });

    describe('when the hub is closing', () => {
      it('reverts with HubNotAcceptingDeposits(Closing)', async () => {
        const f = await load(closingFixture);
        await expect(f.hub.connect(f.consumer).deposit(e(1)))
          .to.be.revertedWithCustomError(f.hub, 'HubNotAcceptingDeposits')
          .withArgs(Status.Closing);
      });
    });

    describe('when the hub is closed', () => {
      it('reverts with HubNotAcceptingDeposits(Closed)', async () => {
        const f = await load(closedFixture);
        await expect(f.hub.connect(f.consumer).deposit(e(1)))
          .to.be.revertedWithCustomError(f.hub, 'HubNotAcceptingDeposits')
          .withArgs(Status.Closed);
      });
    });

    describe('when the hub is punished', () => {
      // Punishment concerns the operator's stake; consumer funds stay the consumer's, so deposits go on.
      it('still takes deposits', async () => {
        const f = await load(punishedFixture);
        expect(await f.hub.status()).to.equal(Status.Punished);
        await expect(f.hub.connect(f.consumer).deposit(e(1)))
          .to.emit(f.hub, 'Deposited')
          .withArgs(f.consumer.address, f.consumer.address, e(1), DEPOSIT + e(1));
      });
    });

    describe('when consumers are paused', () => {
      it('refuses a new consumer with HubConsumersPaused', async () => {
        const f = await load(pausedFixture);
        await expect(f.hub.connect(f.stranger).deposit(e(1)))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumersPaused')
          .withArgs(f.stranger.address);
      });

      it('lets an existing consumer top up', async () => {
        const f = await load(pausedFixture);
        const tx = f.hub.connect(f.consumer).deposit(e(1));
        await expect(tx)
          .to.emit(f.hub, 'Deposited')
          .withArgs(f.consumer.address, f.consumer.address, e(1), DEPOSIT + e(1));
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [-e(1), e(1)]);
      });

      it('lets a consumer whose balance was settled to zero top up', async () => {
        const f = await load(pausedFixture);
        await f.hub.settleConsumer(await claimOf(f, f.consumer, DEPOSIT));
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: 0n, settled: DEPOSIT });
        await expect(f.hub.connect(f.consumer).deposit(e(1)))
          .to.emit(f.hub, 'Deposited')
          .withArgs(f.consumer.address, f.consumer.address, e(1), e(1));
      });

      // A channel that was emptied by an exit and never settled is indistinguishable from a new one.
      it('treats a consumer that exited everything and never settled as new', async () => {
        const f = await load(pausedFixture);
        await f.hub.connect(f.consumer).requestExit(DEPOSIT);
        await time.increase(PARAMETERS.exitDelay);
        await f.hub.connect(f.consumer).finalizeExit();
        await expect(f.hub.connect(f.consumer).deposit(e(1)))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumersPaused')
          .withArgs(f.consumer.address);
      });

      it('welcomes new consumers again once unpaused', async () => {
        const f = await load(pausedFixture);
        await expect(f.hub.connect(f.operator).setConsumersPaused(false))
          .to.emit(f.hub, 'ConsumersPausedSet')
          .withArgs(false);
        await expect(f.hub.connect(f.stranger).deposit(e(1)))
          .to.emit(f.hub, 'Deposited')
          .withArgs(f.stranger.address, f.stranger.address, e(1), e(1));
      });
    });
  });

  describe('depositFor', () => {
    describe('when a payer funds a consumer', () => {
      it("credits the consumer's channel with the payer's tokens", async () => {
        const f = await load(fundedFixture);
        const amount = e(7);
        const tx = f.hub.connect(f.stranger).depositFor(f.consumer.address, amount);
        await expect(tx)
          .to.emit(f.hub, 'Deposited')
          .withArgs(f.consumer.address, f.stranger.address, amount, DEPOSIT + amount);
        await expect(tx).to.changeTokenBalances(f.token, [f.stranger, f.consumer, f.hub], [-amount, 0n, amount]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT + amount, settled: 0n });
        expect(await channelOf(f.hub, f.stranger)).to.deep.equal({ balance: 0n, settled: 0n });
      });

      it('opens the channel of an address that holds no tokens', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.stranger).depositFor(f.beneficiary.address, e(3)))
          .to.emit(f.hub, 'Deposited')
          .withArgs(f.beneficiary.address, f.stranger.address, e(3), e(3));
        expect(await channelOf(f.hub, f.beneficiary)).to.deep.equal({ balance: e(3), settled: 0n });
      });
    });

    describe('when the consumer is the zero address', () => {
      it('reverts with HubZeroAddress', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.stranger).depositFor(ZeroAddress, e(1))).to.be.revertedWithCustomError(
          f.hub,
          'HubZeroAddress',
        );
      });
    });

    describe('when the amount is zero', () => {
      it('reverts with HubZeroAmount, checked before the consumer', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.stranger).depositFor(f.consumer.address, 0)).to.be.revertedWithCustomError(
          f.hub,
          'HubZeroAmount',
        );
        await expect(f.hub.connect(f.stranger).depositFor(ZeroAddress, 0)).to.be.revertedWithCustomError(
          f.hub,
          'HubZeroAmount',
        );
      });
    });

    describe('when the hub is closing', () => {
      it('reverts with HubNotAcceptingDeposits(Closing)', async () => {
        const f = await load(closingFixture);
        await expect(f.hub.connect(f.stranger).depositFor(f.consumer.address, e(1)))
          .to.be.revertedWithCustomError(f.hub, 'HubNotAcceptingDeposits')
          .withArgs(Status.Closing);
      });
    });

    describe('when the hub is closed', () => {
      it('reverts with HubNotAcceptingDeposits(Closed)', async () => {
        const f = await load(closedFixture);
        await expect(f.hub.connect(f.stranger).depositFor(f.consumer.address, e(1)))
          .to.be.revertedWithCustomError(f.hub, 'HubNotAcceptingDeposits')
          .withArgs(Status.Closed);
      });
    });

    describe('when consumers are paused', () => {
      it('refuses to open a channel for a new consumer, even from an existing one', async () => {
        const f = await load(pausedFixture);
        await expect(f.hub.connect(f.consumer).depositFor(f.stranger.address, e(1)))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumersPaused')
          .withArgs(f.stranger.address);
      });

      it('lets anyone top up an existing consumer', async () => {
        const f = await load(pausedFixture);
        await expect(f.hub.connect(f.stranger).depositFor(f.consumer.address, e(1)))
          .to.emit(f.hub, 'Deposited')
          .withArgs(f.consumer.address, f.stranger.address, e(1), DEPOSIT + e(1));
      });
    });
  });

  describe('depositWithPermit', () => {
    describe('when a relayer submits the permit of a consumer without ETH', () => {
      it("deposits from the consumer's tokens in one call", async () => {
        const f = await load(permitFixture);
        const { v, r, s } = f.permit;
        expect(await ethers.provider.getBalance(f.holder.address)).to.equal(0n);
        const tx = f.hub.connect(f.relayer).depositWithPermit(f.holder.address, DEPOSIT, f.deadline, v, r, s);
        await expect(tx).to.emit(f.hub, 'Deposited').withArgs(f.holder.address, f.holder.address, DEPOSIT, DEPOSIT);
        await expect(tx).to.changeTokenBalances(f.token, [f.holder, f.relayer, f.hub], [-DEPOSIT, 0n, DEPOSIT]);
        expect(await channelOf(f.hub, f.holder)).to.deep.equal({ balance: DEPOSIT, settled: 0n });
        expect(await f.token.allowance(f.holder.address, f.hubAddress)).to.equal(0n);
        expect(await f.token.nonces(f.holder.address)).to.equal(1n);
        expect(await ethers.provider.getBalance(f.holder.address)).to.equal(0n);
      });
    });

    describe('when the permit was front-run', () => {
      it('tolerates the used permit and deposits with the allowance it left', async () => {
        const f = await load(permitFixture);
        const { v, r, s } = f.permit;
        await f.token.connect(f.stranger).permit(f.holder.address, f.hubAddress, DEPOSIT, f.deadline, v, r, s);
        expect(await f.token.allowance(f.holder.address, f.hubAddress)).to.equal(DEPOSIT);
        const tx = f.hub.connect(f.relayer).depositWithPermit(f.holder.address, DEPOSIT, f.deadline, v, r, s);
        await expect(tx).to.emit(f.hub, 'Deposited').withArgs(f.holder.address, f.holder.address, DEPOSIT, DEPOSIT);
        await expect(tx).to.changeTokenBalances(f.token, [f.holder, f.hub], [-DEPOSIT, DEPOSIT]);
        expect(await f.token.allowance(f.holder.address, f.hubAddress)).to.equal(0n);
      });
    });

    describe('when the permit is signed by someone else and there is no allowance', () => {
      it('reverts with HubPermitFailed(consumer)', async () => {
        const f = await load(permitFixture);
        const forged = await signPermit(f.stranger, f.token, f.chainId, {
          owner: f.holder.address,
          spender: f.hubAddress,
          value: DEPOSIT,
          nonce: 0n,
          deadline: f.deadline,
        });
        await expect(
          f.hub
            .connect(f.relayer)
            .depositWithPermit(f.holder.address, DEPOSIT, f.deadline, forged.v, forged.r, forged.s),
        )
          .to.be.revertedWithCustomError(f.hub, 'HubPermitFailed')
          .withArgs(f.holder.address);
      });
    });

    describe('when the amount exceeds the permit', () => {
      it('reverts with HubPermitFailed(consumer)', async () => {
        const f = await load(permitFixture);
        const { v, r, s } = f.permit;
        await expect(f.hub.connect(f.relayer).depositWithPermit(f.holder.address, DEPOSIT + 1n, f.deadline, v, r, s))
          .to.be.revertedWithCustomError(f.hub, 'HubPermitFailed')
          .withArgs(f.holder.address);
      });
    });

    describe('when the permit expired', () => {
      it('reverts with HubPermitFailed(consumer)', async () => {
        const f = await load(permitFixture);
        const { v, r, s } = f.permit;
        await time.setNextBlockTimestamp(f.deadline + 1n);
        await expect(f.hub.connect(f.relayer).depositWithPermit(f.holder.address, DEPOSIT, f.deadline, v, r, s))
          .to.be.revertedWithCustomError(f.hub, 'HubPermitFailed')
          .withArgs(f.holder.address);
      });
    });

    describe('when the consumer is the zero address', () => {
      it('reverts with HubPermitFailed(0)', async () => {
        const f = await load(permitFixture);
        const { v, r, s } = f.permit;
        await expect(f.hub.connect(f.relayer).depositWithPermit(ZeroAddress, DEPOSIT, f.deadline, v, r, s))
          .to.be.revertedWithCustomError(f.hub, 'HubPermitFailed')
          .withArgs(ZeroAddress);
      });
    });

    describe('when the amount is zero', () => {
      it('reverts with HubZeroAmount', async () => {
        const f = await load(permitFixture);
        const { v, r, s } = f.permit;
        await expect(
          f.hub.connect(f.relayer).depositWithPermit(f.holder.address, 0, f.deadline, v, r, s),
        ).to.be.revertedWithCustomError(f.hub, 'HubZeroAmount');
      });
    });

    describe('when the permit is bad but an earlier approval covers the amount', () => {
      it('reverts with HubPermitFailed(consumer): only the consumer moves its approved tokens', async () => {
        const f = await load(fundedFixture);
        const tx = f.hub.connect(f.relayer).depositWithPermit(f.consumer.address, e(2), 0n, 27, ZeroHash, ZeroHash);
        await expect(tx).to.be.revertedWithCustomError(f.hub, 'HubPermitFailed').withArgs(f.consumer.address);
      });
    });

    describe('when a used permit of the consumer is submitted again for another amount', () => {
      it('reverts with HubPermitFailed(consumer)', async () => {
        const f = await load(permitFixture);
        const { v, r, s } = f.permit;
        await f.token.connect(f.stranger).permit(f.holder.address, f.hubAddress, DEPOSIT, f.deadline, v, r, s);
        await expect(f.hub.connect(f.relayer).depositWithPermit(f.holder.address, DEPOSIT - 1n, f.deadline, v, r, s))
          .to.be.revertedWithCustomError(f.hub, 'HubPermitFailed')
          .withArgs(f.holder.address);
      });
    });

    describe('when the hub is closing', () => {
      it('reverts with HubNotAcceptingDeposits(Closing) and leaves the permit unused', async () => {
        const f = await load(permitClosingFixture);
        const { v, r, s } = f.permit;
        await expect(f.hub.connect(f.relayer).depositWithPermit(f.holder.address, DEPOSIT, f.deadline, v, r, s))
          .to.be.revertedWithCustomError(f.hub, 'HubNotAcceptingDeposits')
          .withArgs(Status.Closing);
        expect(await f.token.nonces(f.holder.address)).to.equal(0n);
        expect(await f.token.allowance(f.holder.address, f.hubAddress)).to.equal(0n);
      });
    });

    describe('when consumers are paused', () => {
      it('refuses a new consumer with HubConsumersPaused and leaves the permit unused', async () => {
        const f = await load(permitPausedFixture);
        const { v, r, s } = f.permit;
        await expect(f.hub.connect(f.relayer).depositWithPermit(f.holder.address, DEPOSIT, f.deadline, v, r, s))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumersPaused')
          .withArgs(f.holder.address);
        expect(await f.token.nonces(f.holder.address)).to.equal(0n);
      });
    });
  });

  describe('requestExit', () => {
    describe('when the amount is within the balance', () => {
      it('records the request, ready after the exit delay, and moves no tokens', async () => {
        const f = await load(fundedFixture);
        const at = await atNextBlock();
        const tx = f.hub.connect(f.consumer).requestExit(EXIT);
        await expect(tx)
          .to.emit(f.hub, 'ExitRequested')
          .withArgs(f.consumer.address, EXIT, at + PARAMETERS.exitDelay);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [0n, 0n]);
        expect(await exitOf(f.hub, f.consumer)).to.deep.equal({ amount: EXIT, readyAt: at + PARAMETERS.exitDelay });
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT, settled: 0n });
      });

      it('accepts the whole balance', async () => {
        const f = await load(fundedFixture);
        const at = await atNextBlock();
        await expect(f.hub.connect(f.consumer).requestExit(DEPOSIT))
          .to.emit(f.hub, 'ExitRequested')
          .withArgs(f.consumer.address, DEPOSIT, at + PARAMETERS.exitDelay);
      });
    });

    describe('when an exit is already pending', () => {
      it('replaces it and restarts the timelock', async () => {
        const f = await load(exitFixture);
        const at = await atNextBlock(3600n);
        await expect(f.hub.connect(f.consumer).requestExit(e(10)))
          .to.emit(f.hub, 'ExitRequested')
          .withArgs(f.consumer.address, e(10), at + PARAMETERS.exitDelay);
        expect(await exitOf(f.hub, f.consumer)).to.deep.equal({ amount: e(10), readyAt: at + PARAMETERS.exitDelay });
        await time.setNextBlockTimestamp(f.readyAt);
        await expect(f.hub.connect(f.consumer).finalizeExit())
          .to.be.revertedWithCustomError(f.hub, 'HubExitNotReady')
          .withArgs(f.consumer.address, at + PARAMETERS.exitDelay);
      });
    });

    describe('when the amount exceeds the balance', () => {
      it('reverts with HubInsufficientBalance(consumer, balance, amount)', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.consumer).requestExit(DEPOSIT + 1n))
          .to.be.revertedWithCustomError(f.hub, 'HubInsufficientBalance')
          .withArgs(f.consumer.address, DEPOSIT, DEPOSIT + 1n);
      });

      it('reverts for an address without a channel', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.stranger).requestExit(1n))
          .to.be.revertedWithCustomError(f.hub, 'HubInsufficientBalance')
          .withArgs(f.stranger.address, 0n, 1n);
      });
    });

    describe('when the amount is zero', () => {
      it('reverts with HubZeroAmount', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.consumer).requestExit(0)).to.be.revertedWithCustomError(f.hub, 'HubZeroAmount');
      });
    });
  });

  describe('cancelExit', () => {
    describe('when an exit is pending', () => {
      it('withdraws the request and leaves the balance', async () => {
        const f = await load(exitFixture);
        const tx = f.hub.connect(f.consumer).cancelExit();
        await expect(tx).to.emit(f.hub, 'ExitCancelled').withArgs(f.consumer.address);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [0n, 0n]);
        expect(await exitOf(f.hub, f.consumer)).to.deep.equal({ amount: 0n, readyAt: 0n });
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT, settled: 0n });
        await time.increaseTo(f.readyAt);
        await expect(f.hub.connect(f.consumer).finalizeExit())
          .to.be.revertedWithCustomError(f.hub, 'HubNoExitPending')
          .withArgs(f.consumer.address);
      });
    });

    describe('when no exit is pending', () => {
      it('reverts with HubNoExitPending(consumer)', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.consumer).cancelExit())
          .to.be.revertedWithCustomError(f.hub, 'HubNoExitPending')
          .withArgs(f.consumer.address);
      });

      it('reverts the second time', async () => {
        const f = await load(exitFixture);
        await f.hub.connect(f.consumer).cancelExit();
        await expect(f.hub.connect(f.consumer).cancelExit())
          .to.be.revertedWithCustomError(f.hub, 'HubNoExitPending')
          .withArgs(f.consumer.address);
      });

      it("cannot touch another consumer's request", async () => {
        const f = await load(exitFixture);
        await expect(f.hub.connect(f.stranger).cancelExit())
          .to.be.revertedWithCustomError(f.hub, 'HubNoExitPending')
          .withArgs(f.stranger.address);
        expect(await exitOf(f.hub, f.consumer)).to.deep.equal({ amount: EXIT, readyAt: f.readyAt });
      });
    });
  });

  describe('finalizeExit', () => {
    describe('when the timelock has passed', () => {
      it('pays the amount asked, from readyAt on', async () => {
        const f = await load(exitFixture);
        await time.setNextBlockTimestamp(f.readyAt);
        const tx = f.hub.connect(f.consumer).finalizeExit();
        await expect(tx).to.emit(f.hub, 'ExitFinalized').withArgs(f.consumer.address, EXIT);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [EXIT, -EXIT]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - EXIT, settled: 0n });
        expect(await exitOf(f.hub, f.consumer)).to.deep.equal({ amount: 0n, readyAt: 0n });
      });

      it('returns the amount paid', async () => {
        const f = await load(exitFixture);
        await time.increaseTo(f.readyAt);
        expect(await f.hub.connect(f.consumer).finalizeExit.staticCall()).to.equal(EXIT);
      });

      it('reverts with HubNoExitPending the second time', async () => {
        const f = await load(exitFixture);
        await time.increaseTo(f.readyAt);
        await f.hub.connect(f.consumer).finalizeExit();
        await expect(f.hub.connect(f.consumer).finalizeExit())
          .to.be.revertedWithCustomError(f.hub, 'HubNoExitPending')
          .withArgs(f.consumer.address);
      });

      it('pays the amount asked, not more, after a top-up', async () => {
        const f = await load(exitFixture);
        await f.hub.connect(f.consumer).deposit(e(50));
        await time.increaseTo(f.readyAt);
        const tx = f.hub.connect(f.consumer).finalizeExit();
        await expect(tx).to.emit(f.hub, 'ExitFinalized').withArgs(f.consumer.address, EXIT);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [EXIT, -EXIT]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT + e(50) - EXIT, settled: 0n });
      });
    });

    describe('before readyAt', () => {
      it('reverts with HubExitNotReady(consumer, readyAt)', async () => {
        const f = await load(exitFixture);
        await time.setNextBlockTimestamp(f.readyAt - 1n);
        await expect(f.hub.connect(f.consumer).finalizeExit())
          .to.be.revertedWithCustomError(f.hub, 'HubExitNotReady')
          .withArgs(f.consumer.address, f.readyAt);
      });
    });

    describe('when no exit is pending', () => {
      it('reverts with HubNoExitPending(consumer)', async () => {
        const f = await load(fundedFixture);
        await expect(f.hub.connect(f.consumer).finalizeExit())
          .to.be.revertedWithCustomError(f.hub, 'HubNoExitPending')
          .withArgs(f.consumer.address);
      });
    });

    describe('when the hub settled promises during the timelock', () => {
      it('pays what is left when less than the request remains', async () => {
        const f = await load(exitFixture);
        await f.hub.settleConsumer(await claimOf(f, f.consumer, e(80)));
        await time.increaseTo(f.readyAt);
        expect(await f.hub.connect(f.consumer).finalizeExit.staticCall()).to.equal(e(20));
        const tx = f.hub.connect(f.consumer).finalizeExit();
        await expect(tx).to.emit(f.hub, 'ExitFinalized').withArgs(f.consumer.address, e(20));
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [e(20), -e(20)]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: 0n, settled: e(80) });
        expect(await f.hub.freeFunds()).to.equal(e(80));
      });

      it('pays the full request when enough remains', async () => {
        const f = await load(exitFixture);
        await f.hub.settleConsumer(await claimOf(f, f.consumer, e(50)));
        await time.increaseTo(f.readyAt);
        const tx = f.hub.connect(f.consumer).finalizeExit();
        await expect(tx).to.emit(f.hub, 'ExitFinalized').withArgs(f.consumer.address, EXIT);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [EXIT, -EXIT]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: e(10), settled: e(50) });
      });

      it('pays nothing, and clears the request, when everything was settled', async () => {
        const f = await load(exitFixture);
        await f.hub.settleConsumer(await claimOf(f, f.consumer, DEPOSIT));
        await time.increaseTo(f.readyAt);
        const tx = f.hub.connect(f.consumer).finalizeExit();
        await expect(tx).to.emit(f.hub, 'ExitFinalized').withArgs(f.consumer.address, 0n);
        await expect(tx).not.to.emit(f.token, 'Transfer');
        expect(await exitOf(f.hub, f.consumer)).to.deep.equal({ amount: 0n, readyAt: 0n });
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: 0n, settled: DEPOSIT });
      });
    });

    describe('when the hub is closed', () => {
      it('still lets the consumer leave with its balance', async () => {
        const f = await load(closedFixture);
        await f.hub.connect(f.consumer).requestExit(DEPOSIT);
        await time.increase(PARAMETERS.exitDelay);
        const tx = f.hub.connect(f.consumer).finalizeExit();
        await expect(tx).to.emit(f.hub, 'ExitFinalized').withArgs(f.consumer.address, DEPOSIT);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [DEPOSIT, -DEPOSIT]);
        expect(await f.token.balanceOf(f.hubAddress)).to.equal(0n);
      });
    });
  });

  describe('instantExit', () => {
    describe("with the hub's co-signature", () => {
      it('pays at once and uses the nonce', async () => {
        const f = await load(instantExitFixture);
        const tx = f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, f.signature);
        await expect(tx).to.emit(f.hub, 'InstantExited').withArgs(f.consumer.address, INSTANT, 0n);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [INSTANT, -INSTANT]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - INSTANT, settled: 0n });
        expect(await f.hub.nonces(f.consumer.address)).to.equal(1n);
        expect(await f.hub.nonces(f.stranger.address)).to.equal(0n);
      });

      it('is valid up to and including the deadline', async () => {
        const f = await load(instantExitFixture);
        await time.setNextBlockTimestamp(f.deadline);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, f.signature))
          .to.emit(f.hub, 'InstantExited')
          .withArgs(f.consumer.address, INSTANT, 0n);
      });

      it('takes the whole balance when signed for it', async () => {
        const f = await load(instantExitFixture);
        const value = { ...f.value, amount: DEPOSIT };
        const signature = await instantExitSignature(f.operator, f.hubAddress, f.chainId, value);
        await expect(f.hub.connect(f.consumer).instantExit(DEPOSIT, f.deadline, signature))
          .to.emit(f.hub, 'InstantExited')
          .withArgs(f.consumer.address, DEPOSIT, 0n);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: 0n, settled: 0n });
      });

      it('signs the next exit with the next nonce', async () => {
        const f = await load(instantExitFixture);
        await f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, f.signature);
        const value = { ...f.value, amount: e(5), nonce: 1n };
        const signature = await instantExitSignature(f.operator, f.hubAddress, f.chainId, value);
        await expect(f.hub.connect(f.consumer).instantExit(e(5), f.deadline, signature))
          .to.emit(f.hub, 'InstantExited')
          .withArgs(f.consumer.address, e(5), 1n);
        expect(await f.hub.nonces(f.consumer.address)).to.equal(2n);
      });
    });

    describe('when the deadline has passed', () => {
      it('reverts with HubSignatureExpired(deadline)', async () => {
        const f = await load(instantExitFixture);
        await time.setNextBlockTimestamp(f.deadline + 1n);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, f.signature))
          .to.be.revertedWithCustomError(f.hub, 'HubSignatureExpired')
          .withArgs(f.deadline);
      });
    });

    describe('when the amount is zero', () => {
      it('reverts with HubZeroAmount, even when co-signed', async () => {
        const f = await load(instantExitFixture);
        const signature = await instantExitSignature(f.operator, f.hubAddress, f.chainId, { ...f.value, amount: 0n });
        await expect(f.hub.connect(f.consumer).instantExit(0n, f.deadline, signature)).to.be.revertedWithCustomError(
          f.hub,
          'HubZeroAmount',
        );
      });
    });

    describe('when the amount exceeds the balance', () => {
      it('reverts with HubInsufficientBalance(consumer, balance, amount), even when co-signed', async () => {
        const f = await load(instantExitFixture);
        const value = { ...f.value, amount: DEPOSIT + 1n };
        const signature = await instantExitSignature(f.operator, f.hubAddress, f.chainId, value);
        await expect(f.hub.connect(f.consumer).instantExit(DEPOSIT + 1n, f.deadline, signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInsufficientBalance')
          .withArgs(f.consumer.address, DEPOSIT, DEPOSIT + 1n);
      });
    });

    describe('when the signature is not the operator’s', () => {
      it('reverts with HubInvalidSignature(operator, signer) for a stranger', async () => {
        const f = await load(instantExitFixture);
        const signature = await instantExitSignature(f.stranger, f.hubAddress, f.chainId, f.value);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, f.stranger.address);
      });

      it('reverts with HubInvalidSignature(operator, consumer) for a self-signed exit', async () => {
        const f = await load(instantExitFixture);
        const signature = await instantExitSignature(f.consumer, f.hubAddress, f.chainId, f.value);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, f.consumer.address);
      });
    });

    describe('when the signature is replayed', () => {
      it('reverts: the nonce it was signed for is used', async () => {
        const f = await load(instantExitFixture);
        await f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, f.signature);
        const recovered = recoverAddress(
          instantExitDigest(f.hubAddress, f.chainId, { ...f.value, nonce: 1n }),
          f.signature,
        );
        expect(recovered).not.to.equal(f.operator.address);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, f.signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, recovered);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - INSTANT, settled: 0n });
        expect(await f.hub.nonces(f.consumer.address)).to.equal(1n);
      });
    });

    describe('when the signature was made for different terms', () => {
      it('reverts for another consumer presenting it', async () => {
        const f = await load(instantExitFixture);
        await f.hub.connect(f.stranger).deposit(DEPOSIT);
        const recovered = recoverAddress(
          instantExitDigest(f.hubAddress, f.chainId, { ...f.value, consumer: f.stranger.address }),
          f.signature,
        );
        await expect(f.hub.connect(f.stranger).instantExit(INSTANT, f.deadline, f.signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, recovered);
      });

      it('reverts for another amount', async () => {
        const f = await load(instantExitFixture);
        const recovered = recoverAddress(
          instantExitDigest(f.hubAddress, f.chainId, { ...f.value, amount: INSTANT + 1n }),
          f.signature,
        );
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT + 1n, f.deadline, f.signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, recovered);
      });

      it('reverts for another deadline', async () => {
        const f = await load(instantExitFixture);
        const recovered = recoverAddress(
          instantExitDigest(f.hubAddress, f.chainId, { ...f.value, deadline: f.deadline + 1n }),
          f.signature,
        );
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline + 1n, f.signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, recovered);
      });

      it('reverts for a signature made for another chain id', async () => {
        const f = await load(instantExitFixture);
        const signature = await instantExitSignature(f.operator, f.hubAddress, f.chainId + 1n, f.value);
        const recovered = recoverAddress(instantExitDigest(f.hubAddress, f.chainId, f.value), signature);
        expect(recovered).not.to.equal(f.operator.address);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, recovered);
      });

      it('reverts for a signature made for another hub', async () => {
        const f = await load(twoHubsFixture);
        const deadline = BigInt(await time.latest()) + 3600n;
        const value = { consumer: f.consumer.address, amount: INSTANT, nonce: 0n, deadline };
        const signature = await instantExitSignature(f.operator, f.hub2Address, f.chainId, value);
        const recovered = recoverAddress(instantExitDigest(f.hubAddress, f.chainId, value), signature);
        expect(recovered).not.to.equal(f.operator.address);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, deadline, signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, recovered);
      });

      it("reverts for the operator's signature of another message type", async () => {
        const f = await load(instantExitFixture);
        const { hashlock } = newHashlock();
        const signature = await signTyped(f.operator, hubDomain(f.hubAddress, f.chainId), hubTypes, 'HubPromise', {
          provider: f.consumer.address,
          total: INSTANT,
          hashlock,
        });
        const recovered = recoverAddress(instantExitDigest(f.hubAddress, f.chainId, f.value), signature);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, signature))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, recovered);
      });
    });

    describe('when the signature is malformed', () => {
      it('reverts with HubInvalidSignature(operator, 0) for the high-s twin of a valid signature', async () => {
        const f = await load(instantExitFixture);
        const parsed = Signature.from(f.signature);
        const sHigh = N - BigInt(parsed.s);
        const vHigh = parsed.v === 27 ? 28 : 27;
        const twin = concat([parsed.r, toBeHex(sHigh, 32), toBeHex(vHigh, 1)]);
        // The twin is a genuine signature by the operator for the raw precompile...
        const digest = instantExitDigest(f.hubAddress, f.chainId, f.value);
        expect(await ecrecover(digest, BigInt(vHigh), parsed.r, sHigh)).to.equal(f.operator.address);
        // ...which the hub refuses.
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, twin))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, ZeroAddress);
      });

      it('reverts with HubInvalidSignature(operator, 0) for a 64-byte signature', async () => {
        const f = await load(instantExitFixture);
        const parsed = Signature.from(f.signature);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, parsed.compactSerialized))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, ZeroAddress);
      });

      it('reverts with HubInvalidSignature(operator, 0) for an empty signature', async () => {
        const f = await load(instantExitFixture);
        await expect(f.hub.connect(f.consumer).instantExit(INSTANT, f.deadline, '0x'))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, ZeroAddress);
      });
    });

    describe('when the hub is closed', () => {
      it('still pays with the co-signature', async () => {
        const f = await load(closedFixture);
        const deadline = BigInt(await time.latest()) + 3600n;
        const value = { consumer: f.consumer.address, amount: DEPOSIT, nonce: 0n, deadline };
        const signature = await instantExitSignature(f.operator, f.hubAddress, f.chainId, value);
        const tx = f.hub.connect(f.consumer).instantExit(DEPOSIT, deadline, signature);
        await expect(tx).to.emit(f.hub, 'InstantExited').withArgs(f.consumer.address, DEPOSIT, 0n);
        await expect(tx).to.changeTokenBalances(f.token, [f.consumer, f.hub], [DEPOSIT, -DEPOSIT]);
      });
    });
  });

  describe('settleConsumer', () => {
    describe('when the promise is valid', () => {
      it("moves total - settled from the consumer's balance to the hub's free funds", async () => {
        const f = await load(promiseFixture);
        expect(await f.hub.settleConsumer.staticCall(f.claim)).to.equal(e(30));
        const tx = f.hub.settleConsumer(f.claim);
        await expect(tx).to.emit(f.hub, 'ConsumerSettled').withArgs(f.consumer.address, e(30), e(30), f.claim.preimage);
        await expect(tx).not.to.emit(f.token, 'Transfer');
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - e(30), settled: e(30) });
        expect(await f.hub.freeFunds()).to.equal(e(30));
        expect(await f.token.balanceOf(f.hubAddress)).to.equal(STAKE + DEPOSIT);
      });

      it('can be submitted by anyone, who pays and gets nothing', async () => {
        const f = await load(promiseFixture);
        const tx = f.hub.connect(f.stranger).settleConsumer(f.claim);
        await expect(tx).to.emit(f.hub, 'ConsumerSettled').withArgs(f.consumer.address, e(30), e(30), f.claim.preimage);
        await expect(tx).to.changeTokenBalances(f.token, [f.stranger, f.consumer, f.hub], [0n, 0n, 0n]);
        expect(await f.hub.freeFunds()).to.equal(e(30));
      });

      it('pays only the difference for a later, higher promise', async () => {
        const f = await load(settledFixture);
        const later = await claimOf(f, f.consumer, e(80));
        expect(await f.hub.settleConsumer.staticCall(later)).to.equal(e(50));
        await expect(f.hub.settleConsumer(later))
          .to.emit(f.hub, 'ConsumerSettled')
          .withArgs(f.consumer.address, e(80), e(50), later.preimage);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - e(80), settled: e(80) });
        expect(await f.hub.freeFunds()).to.equal(e(80));
      });

      it('settles while the hub is closing', async () => {
        const f = await load(closingFixture);
        const claim = await claimOf(f, f.consumer, e(30));
        await expect(f.hub.settleConsumer(claim))
          .to.emit(f.hub, 'ConsumerSettled')
          .withArgs(f.consumer.address, e(30), e(30), claim.preimage);
      });
    });

    describe('when the channel holds less than total - settled', () => {
      it('pays what it holds and collects the rest after a new deposit', async () => {
        const f = await load(fundedFixture);
        const claim = await claimOf(f, f.consumer, e(150));
        expect(await f.hub.settleConsumer.staticCall(claim)).to.equal(DEPOSIT);
        await expect(f.hub.settleConsumer(claim))
          .to.emit(f.hub, 'ConsumerSettled')
          .withArgs(f.consumer.address, e(150), DEPOSIT, claim.preimage);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: 0n, settled: DEPOSIT });

        await expect(f.hub.settleConsumer(claim))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumerBalanceEmpty')
          .withArgs(f.consumer.address);

        await f.hub.connect(f.consumer).deposit(e(70));
        await expect(f.hub.settleConsumer(claim))
          .to.emit(f.hub, 'ConsumerSettled')
          .withArgs(f.consumer.address, e(150), e(50), claim.preimage);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: e(20), settled: e(150) });
        expect(await f.hub.freeFunds()).to.equal(e(150));

        await expect(f.hub.settleConsumer(claim))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumerPromiseStale')
          .withArgs(f.consumer.address, e(150), e(150));
      });
    });

    describe('when the promise is stale', () => {
      it('reverts with HubConsumerPromiseStale(consumer, total, settled) for an equal total', async () => {
        const f = await load(settledFixture);
        const same = await claimOf(f, f.consumer, e(30));
        await expect(f.hub.settleConsumer(same))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumerPromiseStale')
          .withArgs(f.consumer.address, e(30), e(30));
      });

      it('reverts with HubConsumerPromiseStale for a zero total on a fresh channel', async () => {
        const f = await load(fundedFixture);
        const zero = await claimOf(f, f.consumer, 0n);
        await expect(f.hub.settleConsumer(zero))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumerPromiseStale')
          .withArgs(f.consumer.address, 0n, 0n);
      });
    });

    describe('when the channel is empty', () => {
      it('reverts with HubConsumerBalanceEmpty(consumer) for a consumer that never deposited', async () => {
        const f = await load(fundedFixture);
        const claim = await claimOf(f, f.stranger, e(1));
        await expect(f.hub.settleConsumer(claim))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumerBalanceEmpty')
          .withArgs(f.stranger.address);
      });

      it('reverts with HubConsumerBalanceEmpty(consumer) after the consumer exited everything', async () => {
        const f = await load(promiseFixture);
        await f.hub.connect(f.consumer).requestExit(DEPOSIT);
        await time.increase(PARAMETERS.exitDelay);
        await f.hub.connect(f.consumer).finalizeExit();
        await expect(f.hub.settleConsumer(f.claim))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumerBalanceEmpty')
          .withArgs(f.consumer.address);
      });
    });

    describe('when the signature is invalid', () => {
      it('reverts with HubInvalidSignature(consumer, signer) for a promise signed by someone else', async () => {
        const f = await load(promiseFixture);
        const forged = await forgedClaim(f, f.stranger, f.consumer.address, e(30));
        await expect(f.hub.settleConsumer(forged))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.consumer.address, f.stranger.address);
      });

      it('reverts with HubInvalidSignature(consumer, 0) for an all-zero signature', async () => {
        const f = await load(promiseFixture);
        await expect(f.hub.settleConsumer({ ...f.claim, signature: { r: ZeroHash, vs: ZeroHash } }))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.consumer.address, ZeroAddress);
      });

      it('reverts with HubInvalidSignature(0, 0) for a zero consumer and a zero signature', async () => {
        const f = await load(promiseFixture);
        await expect(
          f.hub.settleConsumer({ ...f.claim, consumer: ZeroAddress, signature: { r: ZeroHash, vs: ZeroHash } }),
        )
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(ZeroAddress, ZeroAddress);
      });
    });
  });

  describe('settleConsumers', () => {
    describe('when every promise is valid', () => {
      it('settles them all and adds the sum to the free funds', async () => {
        const f = await load(batchFixture);
        expect(await f.hub.settleConsumers.staticCall([f.first, f.second])).to.equal(e(50));
        const tx = await f.hub.connect(f.relayer).settleConsumers([f.first, f.second]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(f.first, e(30)), eventOf(f.second, e(20))]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - e(30), settled: e(30) });
        expect(await channelOf(f.hub, f.stranger)).to.deep.equal({ balance: e(30), settled: e(20) });
        expect(await f.hub.freeFunds()).to.equal(e(50));
        expect(await f.token.balanceOf(f.hubAddress)).to.equal(STAKE + DEPOSIT + e(50));
      });

      it('settles ascending promises of one consumer one after another', async () => {
        const f = await load(batchFixture);
        const higher = await claimOf(f, f.consumer, e(80));
        expect(await f.hub.settleConsumers.staticCall([f.first, higher])).to.equal(e(80));
        const tx = await f.hub.settleConsumers([f.first, higher]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(f.first, e(30)), eventOf(higher, e(50))]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: e(20), settled: e(80) });
        expect(await f.hub.freeFunds()).to.equal(e(80));
      });

      it('does nothing for an empty batch', async () => {
        const f = await load(batchFixture);
        expect(await f.hub.settleConsumers.staticCall([])).to.equal(0n);
        const tx = await f.hub.settleConsumers([]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([]);
        expect(await f.hub.freeFunds()).to.equal(0n);
      });
    });

    describe('when a promise is stale', () => {
      it('skips it and settles the rest', async () => {
        const f = await load(batchFixture);
        await f.hub.settleConsumer(await claimOf(f, f.consumer, e(35)));
        expect(await f.hub.settleConsumers.staticCall([f.first, f.second])).to.equal(e(20));
        const tx = await f.hub.settleConsumers([f.first, f.second]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(f.second, e(20))]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - e(35), settled: e(35) });
        expect(await channelOf(f.hub, f.stranger)).to.deep.equal({ balance: e(30), settled: e(20) });
        expect(await f.hub.freeFunds()).to.equal(e(55));
      });

      it('skips a lower promise that follows a higher one of the same consumer', async () => {
        const f = await load(batchFixture);
        const higher = await claimOf(f, f.consumer, e(80));
        expect(await f.hub.settleConsumers.staticCall([higher, f.first])).to.equal(e(80));
        const tx = await f.hub.settleConsumers([higher, f.first]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(higher, e(80))]);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: e(20), settled: e(80) });
      });
    });

    describe('when a claim of the batch was front-run', () => {
      it('does not revert: the front-run claim is skipped', async () => {
        const f = await load(batchFixture);
        await f.hub.connect(f.stranger).settleConsumer(f.second);
        expect(await f.hub.settleConsumers.staticCall([f.first, f.second])).to.equal(e(30));
        const tx = await f.hub.settleConsumers([f.first, f.second]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(f.first, e(30))]);
        expect(await f.hub.freeFunds()).to.equal(e(50));
      });
    });

    describe('when a channel is empty', () => {
      it('skips it and settles the rest', async () => {
        const f = await load(batchFixture);
        const broke = await claimOf(f, f.relayer, e(10));
        expect(await f.hub.settleConsumers.staticCall([broke, f.first])).to.equal(e(30));
        const tx = await f.hub.settleConsumers([broke, f.first]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(f.first, e(30))]);
        expect(await channelOf(f.hub, f.relayer)).to.deep.equal({ balance: 0n, settled: 0n });
        expect(await f.hub.freeFunds()).to.equal(e(30));
      });

      it('skips a channel emptied earlier in the same batch', async () => {
        const f = await load(batchFixture);
        const all = await claimOf(f, f.stranger, e(60));
        const more = await claimOf(f, f.stranger, e(70));
        expect(await f.hub.settleConsumers.staticCall([all, more, f.first])).to.equal(e(80));
        const tx = await f.hub.settleConsumers([all, more, f.first]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(all, e(50)), eventOf(f.first, e(30))]);
        expect(await channelOf(f.hub, f.stranger)).to.deep.equal({ balance: 0n, settled: e(50) });
      });
    });

    describe('when a channel holds less than a promise', () => {
      it('settles what it holds and moves settled by that much', async () => {
        const f = await load(batchFixture);
        const big = await claimOf(f, f.stranger, e(65));
        expect(await f.hub.settleConsumers.staticCall([f.first, big])).to.equal(e(80));
        const tx = await f.hub.settleConsumers([f.first, big]);
        expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(f.first, e(30)), eventOf(big, e(50))]);
        expect(await channelOf(f.hub, f.stranger)).to.deep.equal({ balance: 0n, settled: e(50) });
        await f.hub.connect(f.stranger).deposit(e(40));
        expect(await f.hub.settleConsumers.staticCall([big])).to.equal(e(15));
      });
    });

    describe('when a signature is invalid', () => {
      it('reverts the whole batch with HubInvalidSignature', async () => {
        const f = await load(batchFixture);
        const forged = await forgedClaim(f, f.relayer, f.stranger.address, e(20));
        await expect(f.hub.settleConsumers([f.first, forged]))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.stranger.address, f.relayer.address);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT, settled: 0n });
        expect(await f.hub.freeFunds()).to.equal(0n);
      });

      it('reverts the whole batch even when the bad claim would be stale', async () => {
        const f = await load(batchFixture);
        await f.hub.settleConsumer(f.second);
        const wrong = await claimOf(f, f.stranger, e(20));
        const tampered = { ...wrong, preimage: f.second.preimage };
        const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, tampered), tampered.signature);
        await expect(f.hub.settleConsumers([f.first, tampered]))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.stranger.address, recovered);
      });

      it('reverts the whole batch for a wrong preimage', async () => {
        const f = await load(batchFixture);
        const tampered = { ...f.second, preimage: newHashlock().preimage };
        const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, tampered), tampered.signature);
        await expect(f.hub.settleConsumers([f.first, tampered]))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.stranger.address, recovered);
      });
    });
  });

  describe('attacks on consumer settlement', () => {
    it('refuses a replayed claim', async () => {
      const f = await load(settledFixture);
      await expect(f.hub.connect(f.stranger).settleConsumer(f.claim))
        .to.be.revertedWithCustomError(f.hub, 'HubConsumerPromiseStale')
        .withArgs(f.consumer.address, e(30), e(30));
      expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - e(30), settled: e(30) });
      expect(await f.hub.freeFunds()).to.equal(e(30));
    });

    it('pays a claim repeated inside one batch only once', async () => {
      const f = await load(promiseFixture);
      expect(await f.hub.settleConsumers.staticCall([f.claim, f.claim, f.claim])).to.equal(e(30));
      const tx = await f.hub.settleConsumers([f.claim, f.claim, f.claim]);
      expect(await settledEvents(f.hub, tx)).to.deep.equal([eventOf(f.claim, e(30))]);
      expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - e(30), settled: e(30) });
      expect(await f.hub.freeFunds()).to.equal(e(30));
    });

    it('refuses a stale (lower) promise after a higher one', async () => {
      const f = await load(promiseFixture);
      const higher = await claimOf(f, f.consumer, e(60));
      await f.hub.settleConsumer(higher);
      await expect(f.hub.settleConsumer(f.claim))
        .to.be.revertedWithCustomError(f.hub, 'HubConsumerPromiseStale')
        .withArgs(f.consumer.address, e(30), e(60));
      expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT - e(60), settled: e(60) });
    });

    it('refuses a promise signed for another chain id', async () => {
      const f = await load(fundedFixture);
      const foreign = await claimOf(f, f.consumer, e(30), { chainId: f.chainId + 1n });
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, foreign), foreign.signature);
      expect(recovered).not.to.equal(f.consumer.address);
      // The signature is genuine on the chain it names.
      expect(recoverCompact(promiseDigest(f.hubAddress, f.chainId + 1n, foreign), foreign.signature)).to.equal(
        f.consumer.address,
      );
      await expect(f.hub.settleConsumer(foreign))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, recovered);
    });

    it('refuses a promise signed for another hub, which that hub accepts', async () => {
      const f = await load(twoHubsFixture);
      const foreign = await claimOf(f, f.consumer, e(30), { hub: f.hub2Address });
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, foreign), foreign.signature);
      expect(recovered).not.to.equal(f.consumer.address);
      await expect(f.hub.settleConsumer(foreign))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, recovered);
      await expect(f.hub2.settleConsumer(foreign))
        .to.emit(f.hub2, 'ConsumerSettled')
        .withArgs(f.consumer.address, e(30), e(30), foreign.preimage);
      expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT, settled: 0n });
    });

    it('refuses a HubPromise-typed signature presented as a consumer promise', async () => {
      const f = await load(promiseFixture);
      const signature = await signTyped(f.consumer, hubDomain(f.hubAddress, f.chainId), hubTypes, 'HubPromise', {
        provider: f.consumer.address,
        total: f.claim.total,
        hashlock: keccak256(f.claim.preimage),
      });
      const forged = { ...f.claim, signature: compact(signature) };
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, forged), forged.signature);
      expect(recovered).not.to.equal(f.consumer.address);
      await expect(f.hub.settleConsumer(forged))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, recovered);
    });

    it('refuses an InstantExit signature presented as a consumer promise', async () => {
      const f = await load(promiseFixture);
      const deadline = BigInt(await time.latest()) + 3600n;
      const signature = await instantExitSignature(f.consumer, f.hubAddress, f.chainId, {
        consumer: f.consumer.address,
        amount: f.claim.total,
        nonce: 0n,
        deadline,
      });
      const forged = { ...f.claim, signature: compact(signature) };
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, forged), forged.signature);
      expect(recovered).not.to.equal(f.consumer.address);
      await expect(f.hub.settleConsumer(forged))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, recovered);
    });

    // EIP-2098 keeps the parity in bit 255 of `vs`, so an s of 2^255 or more cannot be encoded: the high-s
    // twin n - s of a valid low s almost always is that large. Encoded as the brief prescribes, its top
    // bit merges into the parity bit and the contract decodes a different, low s, which recovers a
    // meaningless address. The compact form is not malleable by construction, but the revert carries
    // that address rather than zero.
    it('refuses the high-s twin of a valid signature', async () => {
      const f = await load(promiseFixture);
      const digest = promiseDigest(f.hubAddress, f.chainId, f.claim);
      const { parity, s } = splitVs(f.claim.signature.vs);
      const sHigh = N - s;
      // The twin is a genuine signature of the consumer for the raw precompile.
      expect(await ecrecover(digest, 28n - parity, f.claim.signature.r, sHigh)).to.equal(f.consumer.address);
      expect(sHigh >> 255n, 'the twin s needs bit 255').to.equal(1n);
      const twin = { r: f.claim.signature.r, vs: toBeHex(((1n - parity) << 255n) | sHigh, 32) };
      // What the contract decodes: parity 1, s = sHigh without bit 255.
      const decoded = await ecrecover(digest, 28n, twin.r, sHigh & S_MASK);
      expect(decoded).not.to.equal(f.consumer.address);
      await expect(f.hub.settleConsumer({ ...f.claim, signature: twin }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, decoded);
      expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: DEPOSIT, settled: 0n });
    });

    it('refuses a compact signature whose s lies above n/2 with HubInvalidSignature(consumer, 0)', async () => {
      const f = await load(promiseFixture);
      const { parity } = splitVs(f.claim.signature.vs);
      // The only high s values EIP-2098 can carry: (n/2, 2^255).
      for (const sHigh of [N / 2n + 1n, S_MASK]) {
        const malleable = { r: f.claim.signature.r, vs: toBeHex((parity << 255n) | sHigh, 32) };
        await expect(f.hub.settleConsumer({ ...f.claim, signature: malleable }))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.consumer.address, ZeroAddress);
      }
    });

    it('refuses a wrong preimage', async () => {
      const f = await load(promiseFixture);
      expect(recoverCompact(promiseDigest(f.hubAddress, f.chainId, f.claim), f.claim.signature)).to.equal(
        f.consumer.address,
      );
      const tampered = { ...f.claim, preimage: newHashlock().preimage };
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, tampered), tampered.signature);
      expect(recovered).not.to.equal(f.consumer.address);
      await expect(f.hub.settleConsumer(tampered))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, recovered);
    });

    it('refuses the hashlock itself in place of the preimage', async () => {
      const f = await load(promiseFixture);
      const tampered = { ...f.claim, preimage: keccak256(f.claim.preimage) };
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, tampered), tampered.signature);
      await expect(f.hub.settleConsumer(tampered))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, recovered);
    });

    it('refuses a changed total', async () => {
      const f = await load(promiseFixture);
      const tampered = { ...f.claim, total: f.claim.total + 1n };
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, tampered), tampered.signature);
      expect(recovered).not.to.equal(f.consumer.address);
      await expect(f.hub.settleConsumer(tampered))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, recovered);
    });

    it('refuses a changed agreementHash', async () => {
      const f = await load(promiseFixture);
      const other = await claimOf(f, f.consumer, e(30));
      const otherAgreement = (
        await consumerClaim({
          hub: f.hubAddress,
          chainId: f.chainId,
          consumer: f.consumer,
          total: e(30),
          provider: f.provider.address,
          agreement: { id: agreementId(2) },
        })
      ).agreementHash as string;
      expect(otherAgreement).not.to.equal(other.agreementHash);
      const tampered = { ...f.claim, agreementHash: otherAgreement };
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, tampered), tampered.signature);
      expect(recovered).not.to.equal(f.consumer.address);
      await expect(f.hub.settleConsumer(tampered))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.consumer.address, recovered);
    });

    it("refuses one consumer's promise charged to another consumer", async () => {
      const f = await load(batchFixture);
      const redirected = { ...f.first, consumer: f.stranger.address };
      const recovered = recoverCompact(promiseDigest(f.hubAddress, f.chainId, redirected), redirected.signature);
      await expect(f.hub.settleConsumer(redirected))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.stranger.address, recovered);
    });

    describe('a consumer exiting funds it already promised', () => {
      it('gets only what is left when the hub settles inside the exit window; nobody loses money', async () => {
        const f = await load(fundedFixture);
        const promised = e(70);
        const { preimage } = newHashlock();
        // The consumer pays the provider 70 and the hub swaps it for a hub promise of 70.
        const consumerPromise = await claimOf(f, f.consumer, promised, { preimage });
        const hubPromise = await providerClaim({
          hub: f.hubAddress,
          chainId: f.chainId,
          operator: f.operator,
          provider: f.provider.address,
          total: promised,
          preimage,
        });
        const parties = [f.consumer.address, f.hubAddress, f.beneficiary.address];
        const holdings = async () => Promise.all(parties.map((a) => f.token.balanceOf(a)));
        const [consumerBefore, hubBefore, beneficiaryBefore] = await holdings();

        // Then it tries to walk away with everything.
        const requestedAt = await atNextBlock();
        await f.hub.connect(f.consumer).requestExit(DEPOSIT);
        const readyAt = requestedAt + PARAMETERS.exitDelay;

        // The hub settles inside the window, at its last second.
        await time.setNextBlockTimestamp(readyAt - 1n);
        await expect(f.hub.connect(f.operator).settleConsumer(consumerPromise))
          .to.emit(f.hub, 'ConsumerSettled')
          .withArgs(f.consumer.address, promised, promised, preimage);

        await time.setNextBlockTimestamp(readyAt);
        await expect(f.hub.connect(f.consumer).finalizeExit())
          .to.emit(f.hub, 'ExitFinalized')
          .withArgs(f.consumer.address, DEPOSIT - promised);

        // The provider is paid in full from what the hub collected.
        const hubFee = (promised * BigInt(HUB_FEE)) / 10_000n;
        await expect(f.hub.connect(f.provider).settleProvider(hubPromise))
          .to.emit(f.hub, 'ProviderSettled')
          .withArgs(f.provider.address, promised, promised, hubFee, 0n, preimage);

        const [consumerAfter, hubAfter, beneficiaryAfter] = await holdings();
        expect(consumerAfter - consumerBefore).to.equal(DEPOSIT - promised);
        expect(beneficiaryAfter - beneficiaryBefore).to.equal(promised - hubFee);
        expect(hubBefore - hubAfter).to.equal(DEPOSIT - hubFee);
        expect(consumerAfter + hubAfter + beneficiaryAfter).to.equal(consumerBefore + hubBefore + beneficiaryBefore);
        expect(await channelOf(f.hub, f.consumer)).to.deep.equal({ balance: 0n, settled: promised });
        expect(await f.hub.freeFunds()).to.equal(hubFee);
        expect(await f.hub.stake()).to.equal(STAKE);
        expect(await f.hub.isPunished()).to.equal(false);
      });

      it('leaves the hub nothing to collect when it settles after the exit', async () => {
        const f = await load(fundedFixture);
        const consumerPromise = await claimOf(f, f.consumer, e(70));
        await f.hub.connect(f.consumer).requestExit(DEPOSIT);
        await time.increase(PARAMETERS.exitDelay);
        await f.hub.connect(f.consumer).finalizeExit();
        await expect(f.hub.settleConsumer(consumerPromise))
          .to.be.revertedWithCustomError(f.hub, 'HubConsumerBalanceEmpty')
          .withArgs(f.consumer.address);
        expect(await f.hub.settleConsumers.staticCall([consumerPromise])).to.equal(0n);
      });
    });
  });
});
