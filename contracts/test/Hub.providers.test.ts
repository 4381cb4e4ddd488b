import { loadFixture, time } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import {
  type Addressable,
  type ContractTransactionResponse,
  concat,
  dataSlice,
  getAddress,
  MaxUint256,
  parseEther,
  recoverAddress,
  Signature,
  TypedDataEncoder,
  toBeHex,
  ZeroAddress,
} from 'ethers';
import { ethers } from 'hardhat';
import type { Hub, IHub, ReentrantToken, Registry } from '../../typechain-types';
import { type ProviderClaimEntry, shouldBehaveLikeProviderClaim } from './behaviors/provider-claim.behavior';
import { DEPOSIT, HUB_FEE, PARAMETERS, STAKE } from './helpers/fixtures';
import {
  BPS,
  batchFixture,
  type ClaimOptions,
  countEvents,
  expectBooksBalanced,
  FREE,
  freeFundsFixture,
  hubFeeOf,
  N,
  type ProviderFixture,
  providerSettledEvents,
  punishedFixture,
  R,
  Status,
  settledOnceFixture,
  twoHubsFixture,
} from './helpers/providers';
import {
  consumerClaim,
  instantExitSignature,
  providerClaim,
  registryDomain,
  registryTypes,
  setBeneficiarySignature,
} from './helpers/signing';

// ---------------------------------------------------------------- entry points

/** The account the settleProviderWithBeneficiary adapter moves every payout to. */
const newBeneficiaryOf = (f: ProviderFixture) => f.signers[9];

/** settleProvider: one claim; a stale one reverts. */
const settleProviderEntry: ProviderClaimEntry = {
  strict: true,
  setsBeneficiary: false,
  settle: (f, claim, { from = f.deployer, hub = f.hub } = {}) => hub.connect(from).settleProvider(claim),
  payout: (f, claim, { from = f.deployer, hub = f.hub } = {}) => hub.connect(from).settleProvider.staticCall(claim),
  payee: (f, provider) => f.registry.beneficiaryOf(provider),
};

/** settleProviders with a batch of one claim; a stale one is skipped. */
const settleProvidersEntry: ProviderClaimEntry = {
  strict: false,
  setsBeneficiary: false,
  settle: (f, claim, { from = f.deployer, hub = f.hub } = {}) => hub.connect(from).settleProviders([claim]),
  payout: (f, claim, { from = f.deployer, hub = f.hub } = {}) => hub.connect(from).settleProviders.staticCall([claim]),
  payee: (f, provider) => f.registry.beneficiaryOf(provider),
};

/** The beneficiary change that settleProviderWithBeneficiary makes alongside `claim`, signed by its provider (who
 * is registered first if it is not, as the Registry only changes a registered identity's beneficiary). */
async function beneficiaryChangeFor(f: ProviderFixture, claim: IHub.ProviderClaimStruct): Promise<[string, string]> {
  const provider = claim.provider as string;
  const signer = f.signers.find((account) => account.address === provider);
  if (!signer) throw new Error(`no signer for provider ${provider}`);
  if (!(await f.registry.isRegistered(provider))) await f.registry.connect(signer).registerIdentity(provider);
  const beneficiary = newBeneficiaryOf(f).address;
  const signature = await setBeneficiarySignature(signer, f.registryAddress, f.chainId, {
    identity: provider,
    beneficiary,
    nonce: await f.registry.nonces(provider),
  });
  return [beneficiary, signature];
}

/** settleProviderWithBeneficiary, moving the provider's payout to a new beneficiary; a stale claim reverts. */
const settleProviderWithBeneficiaryEntry: ProviderClaimEntry = {
  strict: true,
  setsBeneficiary: true,
  settle: async (f, claim, { from = f.deployer, hub = f.hub } = {}) =>
    hub.connect(from).settleProviderWithBeneficiary(claim, ...(await beneficiaryChangeFor(f, claim))),
  payout: async (f, claim, { from = f.deployer, hub = f.hub } = {}) =>
    hub.connect(from).settleProviderWithBeneficiary.staticCall(claim, ...(await beneficiaryChangeFor(f, claim))),
  payee: async (f) => newBeneficiaryOf(f).address,
};

// ---------------------------------------------------------------- fixtures

/** A hub on a token that calls back into the hub on every transfer. The token itself holds a channel with a
 * ready exit, so that it can try every consumer action from inside a transfer. */
async function reentrantHubFixture() {
  const signers = await ethers.getSigners();
  const [, operator, consumer, provider, beneficiary, relayer, stranger] = signers;
  const [secondProvider, secondBeneficiary, newBeneficiary] = signers.slice(8, 11);
  const token = (await (await ethers.getContractFactory('ReentrantToken')).deploy()) as unknown as ReentrantToken;
  const tokenAddress = await token.getAddress();
  const registry = (await (
    await ethers.getContractFactory('Registry')
  ).deploy(tokenAddress, PARAMETERS)) as unknown as Registry;
  const registryAddress = await registry.getAddress();
  const { chainId } = await ethers.provider.getNetwork();
  for (const account of [operator, consumer, relayer, stranger]) {
    await token.mint(account.address, parseEther('1000000'));
  }
  await token.connect(operator).approve(registryAddress, MaxUint256);
  await registry.connect(operator).registerHub(STAKE, HUB_FEE, 'https://reentrant.example.org');
  const hubAddress = await registry.hubOf(operator.address);
  const hub = (await ethers.getContractAt('Hub', hubAddress)) as unknown as Hub;
  await token.connect(operator).approve(hubAddress, MaxUint256);
  await token.connect(consumer).approve(hubAddress, MaxUint256);
  await hub.connect(consumer).deposit(DEPOSIT);
  await hub.settleConsumer(
    await consumerClaim({
      hub: hubAddress,
      chainId,
      consumer,
      total: FREE,
      provider: provider.address,
      preimage: R(1),
    }),
  );
  await registry.connect(provider).registerIdentity(beneficiary.address);
  await registry.connect(secondProvider).registerIdentity(secondBeneficiary.address);

  // Any token transfer outside the hub makes the armed token call its target from its own address.
  const trigger = () => token.connect(stranger).transfer(stranger.address, 1n);
  const callFromToken = async (target: string, data: string) => {
    await token.arm(target, data);
    await trigger();
    expect(await token.lastCallSucceeded()).to.equal(true);
  };
  await token.mint(tokenAddress, parseEther('100'));
  await callFromToken(tokenAddress, token.interface.encodeFunctionData('approve', [hubAddress, MaxUint256]));
  await callFromToken(hubAddress, hub.interface.encodeFunctionData('deposit', [parseEther('10')]));
  await callFromToken(hubAddress, hub.interface.encodeFunctionData('requestExit', [parseEther('5')]));
  await token.arm(ZeroAddress, '0x');
  await hub.connect(consumer).requestExit(parseEther('10'));
  await time.increase(PARAMETERS.exitDelay);

  const claim = (options: ClaimOptions) =>
    providerClaim({
      hub: hubAddress,
      chainId,
      operator,
      provider: provider.address,
      providerSigner: provider,
      relayer: relayer.address,
      preimage: R(1),
      ...options,
    });
  return {
    operator,
    consumer,
    provider,
    beneficiary,
    relayer,
    stranger,
    secondProvider,
    secondBeneficiary,
    newBeneficiary,
    token,
    tokenAddress,
    registry,
    registryAddress,
    hub,
    hubAddress,
    chainId,
    claim,
    trigger,
    consumers: [consumer.address, tokenAddress],
  };
}

// ---------------------------------------------------------------- settleProvider

describe('settleProvider', () => {
  shouldBehaveLikeProviderClaim(settleProviderEntry);
});

// ---------------------------------------------------------------- solvency

describe('solvency', () => {
  describe('when a claim has taken from the stake', () => {
    it('reads as punished to every client', async () => {
      const f = await loadFixture(punishedFixture);
      expect(await f.hub.status()).to.equal(Status.Punished);
      expect(await f.hub.isPunished()).to.equal(true);
      expect(await f.hub.stakeOwed()).to.equal(f.owed);
      expect((await f.hub.config()).status).to.equal(Status.Active);
    });
  });

  describe('when the operator tops the stake up partially', () => {
    it('lowers the debt and keeps the hub punished', async () => {
      const f = await loadFixture(punishedFixture);
      const part = parseEther('20');
      const stakeBefore = await f.hub.stake();
      await f.token.connect(f.operator).approve(f.hubAddress, part);
      const tx = await f.hub.connect(f.operator).increaseStake(part);
      await expect(tx)
        .to.emit(f.hub, 'StakeIncreased')
        .withArgs(part, stakeBefore + part);
      await expect(tx).not.to.emit(f.hub, 'HubPunishmentEnded');
      expect(await f.hub.stakeOwed()).to.equal(f.owed - part);
      expect(await f.hub.status()).to.equal(Status.Punished);
      expect(await f.hub.isPunished()).to.equal(true);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when the operator tops the stake up fully', () => {
    it('emits HubPunishmentEnded(stake) and the hub is active again', async () => {
      const f = await loadFixture(punishedFixture);
      const part = parseEther('20');
      await f.token.connect(f.operator).approve(f.hubAddress, f.owed);
      await f.hub.connect(f.operator).increaseStake(part);
      await expect(f.hub.connect(f.operator).increaseStake(f.owed - part))
        .to.emit(f.hub, 'HubPunishmentEnded')
        .withArgs(STAKE);
      expect(await f.hub.stake()).to.equal(STAKE);
      expect(await f.hub.stakeOwed()).to.equal(0n);
      expect(await f.hub.status()).to.equal(Status.Active);
      expect(await f.hub.isPunished()).to.equal(false);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('ends the punishment with a single top-up above the debt', async () => {
      const f = await loadFixture(punishedFixture);
      const amount = f.owed + parseEther('1');
      await f.token.connect(f.operator).approve(f.hubAddress, amount);
      await expect(f.hub.connect(f.operator).increaseStake(amount))
        .to.emit(f.hub, 'HubPunishmentEnded')
        .withArgs(STAKE + parseEther('1'));
      expect(await f.hub.stakeOwed()).to.equal(0n);
    });
  });

  describe('when the operator decreases the stake while punished', () => {
    it('reverts with HubInvalidStatus(Punished)', async () => {
      const f = await loadFixture(punishedFixture);
      await expect(f.hub.connect(f.operator).decreaseStake(1n))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Punished);
    });
  });
});

// ---------------------------------------------------------------- settleProviders

describe('settleProviders', () => {
  shouldBehaveLikeProviderClaim(settleProvidersEntry);

  describe('when one batch settles a promise in increments below one fee unit', () => {
    // Design note: the fee is rounded down per settlement, so it depends on how a total is split.
    it('charges no hub fee on any of them, where the whole would have paid one unit', async () => {
      const f = await loadFixture(freeFundsFixture);
      const step = BPS / BigInt(HUB_FEE) - 1n; // 99 token units: 1 % of it rounds down to zero
      const claims = [
        await f.claim({ total: step, preimage: R(2) }),
        await f.claim({ total: 2n * step, preimage: R(3) }),
      ];
      const events = await providerSettledEvents(f.hub, await f.hub.settleProviders(claims));
      expect(events).to.deep.equal([
        [f.provider.address, step, step, 0n, 0n, R(2)],
        [f.provider.address, 2n * step, step, 0n, 0n, R(3)],
      ]);
      expect(hubFeeOf(2n * step)).to.equal(1n);
      expect(await f.token.balanceOf(f.beneficiary.address)).to.equal(2n * step);
    });
  });

  describe('when a settled claim is replayed twice in one batch', () => {
    it('skips both', async () => {
      const f = await loadFixture(settledOnceFixture);
      await expect(f.hub.settleProviders([f.first, f.first])).not.to.emit(f.hub, 'ProviderSettled');
    });
  });
  describe('when several providers are settled with mixed relayer fees', () => {
    async function mixedBatch() {
      const f = await loadFixture(batchFixture);
      const entries = [
        // `provider` already settled 10: this pays 12 more, without a relayer fee.
        { provider: f.provider, payee: f.beneficiary, total: parseEther('22'), increment: parseEther('12'), fee: 0n },
        {
          provider: f.second,
          payee: f.secondBeneficiary,
          total: parseEther('15'),
          increment: parseEther('15'),
          fee: parseEther('0.3'),
        },
        { provider: f.third, payee: f.third, total: 777_777n, increment: 777_777n, fee: 1_234n },
      ];
      const claims = [];
      for (const [i, entry] of entries.entries()) {
        claims.push(
          await f.claim({
            provider: entry.provider.address,
            providerSigner: entry.provider,
            total: entry.total,
            relayerFee: entry.fee,
            preimage: R(10 + i),
          }),
        );
      }
      const payouts = entries.map((entry) => entry.increment - hubFeeOf(entry.increment) - entry.fee);
      return { f, entries, claims, payouts };
    }

    it('pays each beneficiary exactly and the relayer the sum of the fees', async () => {
      const { f, entries, claims, payouts } = await mixedBatch();
      const fees = entries.reduce((sum, entry) => sum + entry.fee, 0n);
      const outflow = payouts.reduce((sum, payout) => sum + payout, 0n) + fees;
      await expect(f.hub.connect(f.relayer).settleProviders(claims)).to.changeTokenBalances(
        f.token,
        [...entries.map((entry) => entry.payee), f.relayer, f.hub],
        [...payouts, fees, -outflow],
      );
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('returns the total paid to beneficiaries', async () => {
      const { f, claims, payouts } = await mixedBatch();
      expect(await f.hub.connect(f.relayer).settleProviders.staticCall(claims)).to.equal(
        payouts.reduce((sum, payout) => sum + payout, 0n),
      );
    });

    it('emits one ProviderSettled per claim, in order', async () => {
      const { f, entries, claims } = await mixedBatch();
      const events = await providerSettledEvents(f.hub, await f.hub.connect(f.relayer).settleProviders(claims));
      expect(events).to.deep.equal(
        entries.map((entry, i) => [
          entry.provider.address,
          entry.total,
          entry.increment,
          hubFeeOf(entry.increment),
          entry.fee,
          R(10 + i),
        ]),
      );
    });

    it('records every provider’s settled total and keeps the hub fees in the free funds', async () => {
      const { f, entries, claims } = await mixedBatch();
      const freeBefore = await f.hub.freeFunds();
      await f.hub.connect(f.relayer).settleProviders(claims);
      for (const entry of entries) {
        expect(await f.hub.providerSettled(entry.provider.address)).to.equal(entry.total);
      }
      const netOut = entries.reduce((sum, entry) => sum + entry.increment - hubFeeOf(entry.increment), 0n);
      expect(await f.hub.freeFunds()).to.equal(freeBefore - netOut);
    });
  });

  describe('when an entry is stale', () => {
    async function batchWithStale() {
      const f = await loadFixture(batchFixture);
      const stale = await f.claim({ total: parseEther('8'), relayerFee: parseEther('1'), preimage: R(20) });
      const fresh = await f.claim({
        provider: f.second.address,
        providerSigner: f.second,
        total: parseEther('5'),
        relayerFee: parseEther('0.5'),
        preimage: R(21),
      });
      const freshPayout = parseEther('5') - hubFeeOf(parseEther('5')) - parseEther('0.5');
      return { f, claims: [stale, fresh], freshPayout };
    }

    it('skips it: returns only the fresh payout', async () => {
      const { f, claims, freshPayout } = await batchWithStale();
      expect(await f.hub.connect(f.relayer).settleProviders.staticCall(claims)).to.equal(freshPayout);
    });

    it('pays no relayer fee and no payout for it', async () => {
      const { f, claims, freshPayout } = await batchWithStale();
      await expect(f.hub.connect(f.relayer).settleProviders(claims)).to.changeTokenBalances(
        f.token,
        [f.beneficiary, f.secondBeneficiary, f.relayer],
        [0n, freshPayout, parseEther('0.5')],
      );
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(parseEther('10'));
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('emits ProviderSettled only for the fresh entry', async () => {
      const { f, claims } = await batchWithStale();
      const events = await providerSettledEvents(f.hub, await f.hub.connect(f.relayer).settleProviders(claims));
      expect(events).to.deep.equal([
        [f.second.address, parseEther('5'), parseEther('5'), hubFeeOf(parseEther('5')), parseEther('0.5'), R(21)],
      ]);
    });
  });

  describe('when every entry is stale', () => {
    it('returns zero and moves nothing', async () => {
      const f = await loadFixture(batchFixture);
      const claims = [await f.claim({ total: parseEther('10'), preimage: R(20) })];
      expect(await f.hub.connect(f.relayer).settleProviders.staticCall(claims)).to.equal(0n);
      const freeBefore = await f.hub.freeFunds();
      const tx = await f.hub.connect(f.relayer).settleProviders(claims);
      await expect(tx).not.to.emit(f.token, 'Transfer');
      await expect(tx).not.to.emit(f.hub, 'ProviderSettled');
      expect(await f.hub.freeFunds()).to.equal(freeBefore);
    });
  });

  describe('when the batch is empty', () => {
    it('returns zero and moves nothing', async () => {
      const f = await loadFixture(batchFixture);
      expect(await f.hub.settleProviders.staticCall([])).to.equal(0n);
      await expect(f.hub.settleProviders([])).not.to.emit(f.token, 'Transfer');
    });
  });

  describe('when one provider appears twice with rising totals', () => {
    it('pays each increment once', async () => {
      const f = await loadFixture(batchFixture);
      const claims = [
        await f.claim({ total: parseEther('14'), preimage: R(30) }),
        await f.claim({ total: parseEther('17'), preimage: R(31) }),
      ];
      const paid = (amount: bigint) => amount - hubFeeOf(amount);
      await expect(f.hub.settleProviders(claims)).to.changeTokenBalance(
        f.token,
        f.beneficiary,
        paid(parseEther('4')) + paid(parseEther('3')),
      );
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(parseEther('17'));
    });
  });

  describe('when one provider appears twice with falling totals', () => {
    it('settles the first and skips the second', async () => {
      const f = await loadFixture(batchFixture);
      const claims = [
        await f.claim({ total: parseEther('17'), preimage: R(31) }),
        await f.claim({ total: parseEther('14'), preimage: R(30) }),
      ];
      const payout = parseEther('7') - hubFeeOf(parseEther('7'));
      expect(await f.hub.settleProviders.staticCall(claims)).to.equal(payout);
      await expect(f.hub.settleProviders(claims)).to.changeTokenBalance(f.token, f.beneficiary, payout);
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(parseEther('17'));
    });
  });

  describe('when an entry’s hub signature is invalid', () => {
    it('reverts the whole batch with HubInvalidSignature', async () => {
      const f = await loadFixture(batchFixture);
      const claims = [
        await f.claim({ provider: f.second.address, total: parseEther('5'), preimage: R(40) }),
        await f.claim({ total: parseEther('15'), preimage: R(41), operator: f.stranger }),
      ];
      await expect(f.hub.settleProviders(claims))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, f.stranger.address);
    });
  });

  describe('when a stale entry’s hub signature is invalid', () => {
    it('reverts the whole batch with HubInvalidSignature: signatures are checked before staleness', async () => {
      const f = await loadFixture(batchFixture);
      const claims = [await f.claim({ total: parseEther('1'), preimage: R(42), operator: f.stranger })];
      await expect(f.hub.settleProviders(claims))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, f.stranger.address);
    });
  });

  describe('when the relayer fee exceeds the payout', () => {
    it('reverts with HubRelayerFeeTooHigh', async () => {
      const f = await loadFixture(batchFixture);
      const net = parseEther('5') - hubFeeOf(parseEther('5'));
      const claims = [
        await f.claim({ total: parseEther('12'), preimage: R(43), relayerFee: 1n }),
        await f.claim({
          provider: f.second.address,
          providerSigner: f.second,
          total: parseEther('5'),
          preimage: R(44),
          relayerFee: net + 1n,
        }),
      ];
      await expect(f.hub.connect(f.relayer).settleProviders(claims))
        .to.be.revertedWithCustomError(f.hub, 'HubRelayerFeeTooHigh')
        .withArgs(net + 1n, net);
    });
  });

  describe('when an entry’s relayer fee lacks the provider’s authorization', () => {
    it('reverts with HubInvalidSignature(provider, recovered)', async () => {
      const f = await loadFixture(batchFixture);
      const claims = [
        await f.claim({ total: parseEther('12'), preimage: R(45), relayerFee: 1n }),
        await f.claim({
          provider: f.second.address,
          providerSigner: f.relayer,
          total: parseEther('5'),
          preimage: R(46),
          relayerFee: 1n,
        }),
      ];
      await expect(f.hub.connect(f.relayer).settleProviders(claims))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.second.address, f.relayer.address);
    });
  });

  describe('when the batch exceeds the free funds', () => {
    it('pays the rest from the stake and punishes the hub once', async () => {
      const f = await loadFixture(batchFixture);
      const freeBefore = await f.hub.freeFunds();
      const claims = [
        await f.claim({ total: parseEther('40'), preimage: R(47) }),
        await f.claim({ provider: f.second.address, total: parseEther('30'), preimage: R(48) }),
      ];
      const outflow = parseEther('30') - hubFeeOf(parseEther('30')) + parseEther('30') - hubFeeOf(parseEther('30'));
      const fromStake = outflow - freeBefore;
      const tx = await f.hub.settleProviders(claims);
      await expect(tx)
        .to.emit(f.hub, 'HubPunished')
        .withArgs(fromStake, STAKE - fromStake, fromStake);
      expect(await countEvents(f.hub, tx, 'HubPunished')).to.equal(1);
      expect(await f.hub.status()).to.equal(Status.Punished);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when the batch exceeds the free funds and the stake', () => {
    it('reverts with HubInsufficientFunds(needed, available)', async () => {
      const f = await loadFixture(batchFixture);
      const freeBefore = await f.hub.freeFunds();
      const claims = [
        await f.claim({ total: parseEther('3010'), preimage: R(49) }),
        await f.claim({ provider: f.second.address, total: parseEther('3000'), preimage: R(50) }),
      ];
      const needed = parseEther('6000') - hubFeeOf(parseEther('3000')) * 2n;
      await expect(f.hub.settleProviders(claims))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientFunds')
        .withArgs(needed, freeBefore + STAKE);
    });
  });
});

// ---------------------------------------------------------------- settleProviderWithBeneficiary

describe('settleProviderWithBeneficiary', () => {
  shouldBehaveLikeProviderClaim(settleProviderWithBeneficiaryEntry);

  async function beneficiaryChange() {
    const f = await loadFixture(freeFundsFixture);
    const newBeneficiary = f.signers[9];
    const nonce = await f.registry.nonces(f.provider.address);
    const signature = await setBeneficiarySignature(f.provider, f.registryAddress, f.chainId, {
      identity: f.provider.address,
      beneficiary: newBeneficiary.address,
      nonce,
    });
    const total = parseEther('20');
    const relayerFee = parseEther('0.25');
    const claim = await f.claim({ total, relayerFee });
    return { f, newBeneficiary, nonce, signature, claim, total, relayerFee };
  }

  describe('when the provider signed the new beneficiary', () => {
    it('sets the beneficiary and pays the new one in the same call', async () => {
      const { f, newBeneficiary, signature, claim, total, relayerFee } = await beneficiaryChange();
      const payout = total - hubFeeOf(total) - relayerFee;
      await expect(
        f.hub.connect(f.relayer).settleProviderWithBeneficiary(claim, newBeneficiary.address, signature),
      ).to.changeTokenBalances(f.token, [newBeneficiary, f.beneficiary, f.relayer], [payout, 0n, relayerFee]);
      expect(await f.registry.beneficiaryOf(f.provider.address)).to.equal(newBeneficiary.address);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('emits BeneficiaryChanged from the Registry and ProviderSettled from the hub', async () => {
      const { f, newBeneficiary, signature, claim, total, relayerFee } = await beneficiaryChange();
      const tx = f.hub.connect(f.relayer).settleProviderWithBeneficiary(claim, newBeneficiary.address, signature);
      await expect(tx).to.emit(f.registry, 'BeneficiaryChanged').withArgs(f.provider.address, newBeneficiary.address);
      await expect(tx)
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, total, total, hubFeeOf(total), relayerFee, R(1));
    });

    it('returns the new beneficiary’s payout and uses the provider’s Registry nonce', async () => {
      const { f, newBeneficiary, nonce, signature, claim, total, relayerFee } = await beneficiaryChange();
      expect(
        await f.hub
          .connect(f.relayer)
          .settleProviderWithBeneficiary.staticCall(claim, newBeneficiary.address, signature),
      ).to.equal(total - hubFeeOf(total) - relayerFee);
      await f.hub.connect(f.relayer).settleProviderWithBeneficiary(claim, newBeneficiary.address, signature);
      expect(await f.registry.nonces(f.provider.address)).to.equal(nonce + 1n);
    });
  });

  describe('when the beneficiary signature is by someone else', () => {
    it('reverts with RegistryInvalidSignature from the Registry', async () => {
      const { f, newBeneficiary, nonce, claim } = await beneficiaryChange();
      const signature = await setBeneficiarySignature(f.stranger, f.registryAddress, f.chainId, {
        identity: f.provider.address,
        beneficiary: newBeneficiary.address,
        nonce,
      });
      await expect(f.hub.connect(f.relayer).settleProviderWithBeneficiary(claim, newBeneficiary.address, signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.provider.address, f.stranger.address);
    });
  });

  describe('when the beneficiary signature names another beneficiary', () => {
    it('reverts with RegistryInvalidSignature and pays no one', async () => {
      const { f, nonce, signature, claim } = await beneficiaryChange();
      const substitute = f.stranger.address;
      const digest = TypedDataEncoder.hash(
        registryDomain(f.registryAddress, f.chainId),
        { SetBeneficiary: [...registryTypes.SetBeneficiary] },
        { identity: f.provider.address, beneficiary: substitute, nonce },
      );
      const recovered = recoverAddress(digest, signature);
      expect(recovered).not.to.equal(f.provider.address);
      await expect(f.hub.connect(f.relayer).settleProviderWithBeneficiary(claim, substitute, signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.provider.address, recovered);
    });
  });

  describe('when the beneficiary signature is the high-s twin of a valid one', () => {
    it('reverts with RegistryInvalidSignature(provider, 0)', async () => {
      const { f, newBeneficiary, nonce, signature, claim } = await beneficiaryChange();
      const valid = Signature.from(signature);
      // A 65-byte signature can carry the twin (s' = n - s, v flipped), and raw ecrecover accepts it.
      const highS = toBeHex(N - BigInt(valid.s), 32);
      const flippedV = toBeHex(valid.v === 27 ? 28 : 27, 32);
      const twin = concat([valid.r, highS, dataSlice(flippedV, 31)]);
      const digest = TypedDataEncoder.hash(
        registryDomain(f.registryAddress, f.chainId),
        { SetBeneficiary: [...registryTypes.SetBeneficiary] },
        { identity: f.provider.address, beneficiary: newBeneficiary.address, nonce },
      );
      const ecrecovered = await ethers.provider.call({
        to: toBeHex(1, 20),
        data: concat([digest, flippedV, valid.r, highS]),
      });
      expect(getAddress(dataSlice(ecrecovered, 12))).to.equal(f.provider.address);
      await expect(f.hub.connect(f.relayer).settleProviderWithBeneficiary(claim, newBeneficiary.address, twin))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.provider.address, ZeroAddress);
    });
  });

  describe('when the beneficiary signature was already used', () => {
    it('reverts with RegistryInvalidSignature: the nonce moved on', async () => {
      const { f, newBeneficiary, nonce, signature, claim } = await beneficiaryChange();
      await f.registry.setBeneficiaryFor(f.provider.address, newBeneficiary.address, signature);
      const digest = TypedDataEncoder.hash(
        registryDomain(f.registryAddress, f.chainId),
        { SetBeneficiary: [...registryTypes.SetBeneficiary] },
        { identity: f.provider.address, beneficiary: newBeneficiary.address, nonce: nonce + 1n },
      );
      await expect(f.hub.connect(f.relayer).settleProviderWithBeneficiary(claim, newBeneficiary.address, signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryInvalidSignature')
        .withArgs(f.provider.address, recoverAddress(digest, signature));
    });
  });

  describe('when the provider is not registered', () => {
    it('reverts with RegistryIdentityNotRegistered', async () => {
      const f = await loadFixture(freeFundsFixture);
      const unregistered = f.signers[8];
      const signature = await setBeneficiarySignature(unregistered, f.registryAddress, f.chainId, {
        identity: unregistered.address,
        beneficiary: f.signers[9].address,
        nonce: 0n,
      });
      const claim = await f.claim({ total: parseEther('1'), provider: unregistered.address });
      await expect(f.hub.settleProviderWithBeneficiary(claim, f.signers[9].address, signature))
        .to.be.revertedWithCustomError(f.registry, 'RegistryIdentityNotRegistered')
        .withArgs(unregistered.address);
    });
  });

  describe('when the new beneficiary is the zero address', () => {
    it('reverts with RegistryZeroAddress', async () => {
      const f = await loadFixture(freeFundsFixture);
      const signature = await setBeneficiarySignature(f.provider, f.registryAddress, f.chainId, {
        identity: f.provider.address,
        beneficiary: ZeroAddress,
        nonce: await f.registry.nonces(f.provider.address),
      });
      const claim = await f.claim({ total: parseEther('1') });
      await expect(f.hub.settleProviderWithBeneficiary(claim, ZeroAddress, signature)).to.be.revertedWithCustomError(
        f.registry,
        'RegistryZeroAddress',
      );
    });
  });

  describe('when the claim is stale', () => {
    it('reverts with HubProviderPromiseStale and leaves the beneficiary unchanged', async () => {
      const f = await loadFixture(settledOnceFixture);
      const newBeneficiary = f.signers[9];
      const nonce = await f.registry.nonces(f.provider.address);
      const signature = await setBeneficiarySignature(f.provider, f.registryAddress, f.chainId, {
        identity: f.provider.address,
        beneficiary: newBeneficiary.address,
        nonce,
      });
      await expect(f.hub.settleProviderWithBeneficiary(f.first, newBeneficiary.address, signature))
        .to.be.revertedWithCustomError(f.hub, 'HubProviderPromiseStale')
        .withArgs(f.provider.address, parseEther('20'), parseEther('20'));
      expect(await f.registry.beneficiaryOf(f.provider.address)).to.equal(f.beneficiary.address);
      expect(await f.registry.nonces(f.provider.address)).to.equal(nonce);
    });
  });

  describe('when a front-runner settles the same claim alone first', () => {
    // Design note: neither the hub promise nor the relayer-fee authorization names a beneficiary, so anyone
    // who sees the combined call in the mempool can settle the claim to the old beneficiary first. The
    // authorization names the relayer, so the front-runner cannot take the fee: it settles without one.
    it('pays the old beneficiary, and the combined call then reverts stale', async () => {
      const { f, newBeneficiary, signature, claim, total } = await beneficiaryChange();
      await expect(f.hub.connect(f.stranger).settleProvider(claim)).to.be.revertedWithCustomError(
        f.hub,
        'HubInvalidSignature',
      );
      await expect(f.hub.connect(f.stranger).settleProvider({ ...claim, relayerFee: 0n })).to.changeTokenBalance(
        f.token,
        f.beneficiary,
        total - hubFeeOf(total),
      );
      await expect(f.hub.connect(f.relayer).settleProviderWithBeneficiary(claim, newBeneficiary.address, signature))
        .to.be.revertedWithCustomError(f.hub, 'HubProviderPromiseStale')
        .withArgs(f.provider.address, total, total);
    });
  });
});

// ---------------------------------------------------------------- providerSettled

describe('providerSettled', () => {
  describe('when a provider never settled', () => {
    it('returns zero', async () => {
      const f = await loadFixture(freeFundsFixture);
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(0n);
    });
  });

  describe('when a provider settled', () => {
    it('returns its highest settled total and nothing for other providers', async () => {
      const f = await loadFixture(settledOnceFixture);
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(parseEther('20'));
      expect(await f.hub.providerSettled(f.signers[8].address)).to.equal(0n);
    });
  });

  describe('when a settlement reverts', () => {
    it('keeps the previous total', async () => {
      const f = await loadFixture(settledOnceFixture);
      const claim = await f.claim({ total: parseEther('30'), preimage: R(2), relayerFee: parseEther('100') });
      await expect(f.hub.connect(f.relayer).settleProvider(claim)).to.be.revertedWithCustomError(
        f.hub,
        'HubRelayerFeeTooHigh',
      );
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(parseEther('20'));
    });
  });

  describe('when the provider settles at another hub', () => {
    it('is kept per hub', async () => {
      const f = await loadFixture(twoHubsFixture);
      const claim = await f.claim({
        hub: f.otherHubAddress,
        operator: f.otherOperator,
        total: parseEther('3'),
      });
      await f.otherHub.settleProvider(claim);
      expect(await f.otherHub.providerSettled(f.provider.address)).to.equal(parseEther('3'));
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(0n);
    });
  });
});

// ---------------------------------------------------------------- attacks

describe('attacks on provider settlement', () => {
  // ---------------------------------------------------------------- reentrancy

  describe('when a malicious token re-enters the hub during a transfer', () => {
    type ReentrantFixture = Awaited<ReturnType<typeof reentrantHubFixture>>;
    const guardSelector = (f: ReentrantFixture) => f.hub.interface.getError('ReentrancyGuardReentrantCall')!.selector;

    /** Checks the armed inner call failed on the reentrancy guard, then that it succeeds outside a hub call. */
    async function expectInnerCallBlocked(f: ReentrantFixture) {
      expect(await f.token.lastCallSucceeded()).to.equal(false);
      const returned = await f.token.lastReturnData();
      expect(dataSlice(returned, 0, 4)).to.equal(guardSelector(f));
      expect(f.hub.interface.parseError(returned)?.name).to.equal('ReentrancyGuardReentrantCall');
      await f.trigger();
      expect(await f.token.lastCallSucceeded()).to.equal(true);
    }

    const total = parseEther('20');
    const relayerFee = parseEther('0.5');
    const payout = total - hubFeeOf(total) - relayerFee;

    /** Re-entered calls, each valid on its own (the last step of each test proves it). */
    const innerCalls: { name: string; payload: (f: ReentrantFixture) => Promise<string> }[] = [
      {
        name: 'settleProvider',
        payload: async (f) =>
          f.hub.interface.encodeFunctionData('settleProvider', [
            await f.claim({ provider: f.secondProvider.address, total: parseEther('5'), preimage: R(2) }),
          ]),
      },
      {
        name: 'settleProviders',
        payload: async (f) =>
          f.hub.interface.encodeFunctionData('settleProviders', [
            [await f.claim({ provider: f.secondProvider.address, total: parseEther('5'), preimage: R(2) })],
          ]),
      },
      {
        name: 'settleProviderWithBeneficiary',
        payload: async (f) =>
          f.hub.interface.encodeFunctionData('settleProviderWithBeneficiary', [
            await f.claim({ provider: f.secondProvider.address, total: parseEther('5'), preimage: R(2) }),
            f.newBeneficiary.address,
            await setBeneficiarySignature(f.secondProvider, f.registryAddress, f.chainId, {
              identity: f.secondProvider.address,
              beneficiary: f.newBeneficiary.address,
              nonce: await f.registry.nonces(f.secondProvider.address),
            }),
          ]),
      },
      {
        name: 'settleConsumer',
        payload: async (f) =>
          f.hub.interface.encodeFunctionData('settleConsumer', [
            await consumerClaim({
              hub: f.hubAddress,
              chainId: f.chainId,
              consumer: f.consumer,
              total: FREE + parseEther('5'),
              provider: f.provider.address,
              preimage: R(3),
            }),
          ]),
      },
      {
        name: 'settleConsumers',
        payload: async (f) =>
          f.hub.interface.encodeFunctionData('settleConsumers', [
            [
              await consumerClaim({
                hub: f.hubAddress,
                chainId: f.chainId,
                consumer: f.consumer,
                total: FREE + parseEther('5'),
                provider: f.provider.address,
                preimage: R(3),
              }),
            ],
          ]),
      },
      { name: 'finalizeExit', payload: async (f) => f.hub.interface.encodeFunctionData('finalizeExit') },
      {
        name: 'instantExit',
        payload: async (f) =>
          f.hub.interface.encodeFunctionData('instantExit', [
            parseEther('1'),
            MaxUint256,
            await instantExitSignature(f.operator, f.hubAddress, f.chainId, {
              consumer: f.tokenAddress,
              amount: parseEther('1'),
              nonce: 0n,
              deadline: MaxUint256,
            }),
          ]),
      },
      { name: 'deposit', payload: async (f) => f.hub.interface.encodeFunctionData('deposit', [parseEther('1')]) },
      {
        name: 'depositFor',
        payload: async (f) => f.hub.interface.encodeFunctionData('depositFor', [f.consumer.address, parseEther('1')]),
      },
      {
        name: 'requestExit',
        payload: async (f) => f.hub.interface.encodeFunctionData('requestExit', [parseEther('1')]),
      },
      { name: 'cancelExit', payload: async (f) => f.hub.interface.encodeFunctionData('cancelExit') },
      {
        name: 'addFreeFunds',
        payload: async (f) => f.hub.interface.encodeFunctionData('addFreeFunds', [parseEther('1')]),
      },
    ];

    for (const inner of innerCalls) {
      it(`blocks ${inner.name} re-entered from settleProvider, whose accounting stays exact`, async () => {
        const f = await loadFixture(reentrantHubFixture);
        await f.token.arm(f.hubAddress, await inner.payload(f));
        const freeBefore = await f.hub.freeFunds();
        const claim = await f.claim({ total, relayerFee });
        await expect(f.hub.connect(f.relayer).settleProvider(claim)).to.changeTokenBalances(
          f.token,
          [f.beneficiary, f.relayer, f.hub],
          [payout, relayerFee, -(payout + relayerFee)],
        );
        expect(await f.hub.freeFunds()).to.equal(freeBefore - payout - relayerFee);
        expect(await f.hub.providerSettled(f.provider.address)).to.equal(total);
        expect(await f.hub.providerSettled(f.secondProvider.address)).to.equal(0n);
        await expectBooksBalanced(f.hub, f.token, f.consumers);
        await expectInnerCallBlocked(f);
        await expectBooksBalanced(f.hub, f.token, f.consumers);
      });
    }

    /** Outer calls that move tokens, each re-entered with a valid settleProvider. */
    const outerCalls: {
      name: string;
      run: (f: ReentrantFixture) => Promise<ContractTransactionResponse>;
      moves: (f: ReentrantFixture) => { accounts: (Addressable | string)[]; changes: bigint[] };
    }[] = [
      {
        name: 'settleProviders',
        run: async (f) => f.hub.connect(f.relayer).settleProviders([await f.claim({ total, relayerFee })]),
        moves: (f) => ({
          accounts: [f.beneficiary, f.relayer, f.hub],
          changes: [payout, relayerFee, -(payout + relayerFee)],
        }),
      },
      {
        name: 'settleProviderWithBeneficiary',
        run: async (f) =>
          f.hub.connect(f.relayer).settleProviderWithBeneficiary(
            await f.claim({ total, relayerFee }),
            f.newBeneficiary.address,
            await setBeneficiarySignature(f.provider, f.registryAddress, f.chainId, {
              identity: f.provider.address,
              beneficiary: f.newBeneficiary.address,
              nonce: await f.registry.nonces(f.provider.address),
            }),
          ),
        moves: (f) => ({
          accounts: [f.newBeneficiary, f.beneficiary, f.relayer, f.hub],
          changes: [payout, 0n, relayerFee, -(payout + relayerFee)],
        }),
      },
      {
        name: 'finalizeExit',
        run: async (f) => f.hub.connect(f.consumer).finalizeExit(),
        moves: (f) => ({ accounts: [f.consumer, f.hub], changes: [parseEther('10'), -parseEther('10')] }),
      },
      {
        name: 'instantExit',
        run: async (f) =>
          f.hub.connect(f.consumer).instantExit(
            parseEther('2'),
            MaxUint256,
            await instantExitSignature(f.operator, f.hubAddress, f.chainId, {
              consumer: f.consumer.address,
              amount: parseEther('2'),
              nonce: 0n,
              deadline: MaxUint256,
            }),
          ),
        moves: (f) => ({ accounts: [f.consumer, f.hub], changes: [parseEther('2'), -parseEther('2')] }),
      },
      {
        name: 'deposit',
        run: async (f) => f.hub.connect(f.consumer).deposit(parseEther('3')),
        moves: (f) => ({ accounts: [f.consumer, f.hub], changes: [-parseEther('3'), parseEther('3')] }),
      },
      {
        name: 'addFreeFunds',
        run: async (f) => f.hub.connect(f.operator).addFreeFunds(parseEther('3')),
        moves: (f) => ({ accounts: [f.operator, f.hub], changes: [-parseEther('3'), parseEther('3')] }),
      },
      {
        name: 'withdrawFreeFunds',
        run: async (f) => f.hub.connect(f.operator).withdrawFreeFunds(f.operator.address, parseEther('3')),
        moves: (f) => ({ accounts: [f.operator, f.hub], changes: [parseEther('3'), -parseEther('3')] }),
      },
      {
        name: 'increaseStake',
        run: async (f) => f.hub.connect(f.operator).increaseStake(parseEther('3')),
        moves: (f) => ({ accounts: [f.operator, f.hub], changes: [-parseEther('3'), parseEther('3')] }),
      },
      {
        name: 'decreaseStake',
        run: async (f) => f.hub.connect(f.operator).decreaseStake(parseEther('3')),
        moves: (f) => ({ accounts: [f.operator, f.hub], changes: [parseEther('3'), -parseEther('3')] }),
      },
    ];

    for (const outer of outerCalls) {
      it(`blocks settleProvider re-entered from ${outer.name}, whose accounting stays exact`, async () => {
        const f = await loadFixture(reentrantHubFixture);
        await f.token.arm(
          f.hubAddress,
          f.hub.interface.encodeFunctionData('settleProvider', [
            await f.claim({ provider: f.secondProvider.address, total: parseEther('5'), preimage: R(2) }),
          ]),
        );
        const { accounts, changes } = outer.moves(f);
        await expect(outer.run(f)).to.changeTokenBalances(f.token, accounts, changes);
        expect(await f.hub.providerSettled(f.secondProvider.address)).to.equal(0n);
        await expectBooksBalanced(f.hub, f.token, f.consumers);
        await expectInnerCallBlocked(f);
        expect(await f.hub.providerSettled(f.secondProvider.address)).to.equal(parseEther('5'));
        await expectBooksBalanced(f.hub, f.token, f.consumers);
      });
    }

    it('blocks settleProvider re-entered from close, which returns exactly the stake and free funds', async () => {
      const f = await loadFixture(reentrantHubFixture);
      await f.hub.connect(f.operator).requestClose();
      await time.increase(PARAMETERS.closeDelay);
      await f.token.arm(
        f.hubAddress,
        f.hub.interface.encodeFunctionData('settleProvider', [
          await f.claim({ provider: f.secondProvider.address, total: parseEther('5'), preimage: R(2) }),
        ]),
      );
      const returned = (await f.hub.stake()) + (await f.hub.freeFunds());
      await expect(f.hub.connect(f.operator).close()).to.changeTokenBalances(
        f.token,
        [f.operator, f.hub],
        [returned, -returned],
      );
      expect(await f.token.lastCallSucceeded()).to.equal(false);
      expect(dataSlice(await f.token.lastReturnData(), 0, 4)).to.equal(guardSelector(f));
      expect(await f.hub.stake()).to.equal(0n);
      expect(await f.hub.freeFunds()).to.equal(0n);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });
});
