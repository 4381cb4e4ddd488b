import { loadFixture, time } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import { id, MaxUint256, parseEther, TypedDataEncoder, ZeroAddress } from 'ethers';
import { DEPOSIT, deployHubFixture, fundedHubFixture, HUB_FEE, PARAMETERS, STAKE } from './helpers/fixtures';
import { expectBooksBalanced, FREE, hubFeeOf, Status } from './helpers/providers';
import { consumerClaim, hubDomain, instantExitSignature, providerClaim } from './helpers/signing';

// ---------------------------------------------------------------- helpers

/** A deterministic preimage R, apart from the provider tests' own. */
const R = (n: number): string => id(`chit operator preimage ${n}`);

// ---------------------------------------------------------------- fixtures

/** A hub with a consumer balance (DEPOSIT - FREE), the stake and FREE in free funds; the operator has approved
 * the hub for any amount. */
async function operatedHubFixture() {
  const f = await fundedHubFixture();
  await f.hub.settleConsumer(
    await consumerClaim({
      hub: f.hubAddress,
      chainId: f.chainId,
      consumer: f.consumer,
      total: FREE,
      provider: f.provider.address,
      preimage: R(1),
    }),
  );
  await f.token.connect(f.operator).approve(f.hubAddress, MaxUint256);
  const claim = (total: bigint, preimage = R(1)) =>
    providerClaim({
      hub: f.hubAddress,
      chainId: f.chainId,
      operator: f.operator,
      provider: f.provider.address,
      total,
      preimage,
    });
  return { ...f, claim, consumers: [f.consumer.address] };
}

const NEW_FEE = 500;

/** The operator scheduled a fee of NEW_FEE basis points. */
async function feeScheduledFixture() {
  const f = await operatedHubFixture();
  await f.hub.connect(f.operator).scheduleFee(NEW_FEE);
  const effectiveAt = (await f.hub.config()).pendingFeeAt;
  return { ...f, effectiveAt };
}

/** The operator asked to close; the consumer has a pending exit of 10 tokens. */
async function closingFixture() {
  const f = await operatedHubFixture();
  await f.hub.connect(f.consumer).requestExit(parseEther('10'));
  await f.hub.connect(f.operator).requestClose();
  const closesAt = await f.hub.closesAt();
  return { ...f, closesAt };
}

/** The hub closed at its earliest. */
async function closedFixture() {
  const f = await closingFixture();
  await time.increaseTo(f.closesAt);
  await f.hub.connect(f.operator).close();
  return f;
}

/** A claim of 60 tokens took 49.4 tokens from the stake. */
async function punishedFixture() {
  const f = await operatedHubFixture();
  await f.hub.connect(f.provider).settleProvider(await f.claim(FREE + parseEther('10')));
  return f;
}

// ---------------------------------------------------------------- increaseStake

describe('increaseStake', () => {
  describe('when the operator adds stake', () => {
    it('moves the tokens in and emits StakeIncreased(amount, stake)', async () => {
      const f = await loadFixture(operatedHubFixture);
      const amount = parseEther('250');
      const tx = f.hub.connect(f.operator).increaseStake(amount);
      await expect(tx)
        .to.emit(f.hub, 'StakeIncreased')
        .withArgs(amount, STAKE + amount);
      await expect(tx).to.changeTokenBalances(f.token, [f.operator, f.hub], [-amount, amount]);
      expect(await f.hub.stake()).to.equal(STAKE + amount);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('does not emit HubPunishmentEnded when the hub is not punished', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).increaseStake(1n)).not.to.emit(f.hub, 'HubPunishmentEnded');
    });
  });

  describe('when the amount is zero', () => {
    it('reverts with HubZeroAmount', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).increaseStake(0n)).to.be.revertedWithCustomError(f.hub, 'HubZeroAmount');
    });
  });

  describe('when the caller is not the operator', () => {
    it('reverts with HubOnlyOperator(caller)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await f.token.connect(f.stranger).approve(f.hubAddress, 1n);
      await expect(f.hub.connect(f.stranger).increaseStake(1n))
        .to.be.revertedWithCustomError(f.hub, 'HubOnlyOperator')
        .withArgs(f.stranger.address);
    });
  });

  describe('when the operator has not approved the hub', () => {
    it('reverts with the token’s ERC20InsufficientAllowance', async () => {
      const f = await loadFixture(deployHubFixture);
      await expect(f.hub.connect(f.operator).increaseStake(1n))
        .to.be.revertedWithCustomError(f.token, 'ERC20InsufficientAllowance')
        .withArgs(f.hubAddress, 0n, 1n);
    });
  });

  describe('when the hub is closing', () => {
    it('still adds stake', async () => {
      const f = await loadFixture(closingFixture);
      await expect(f.hub.connect(f.operator).increaseStake(1n))
        .to.emit(f.hub, 'StakeIncreased')
        .withArgs(1n, STAKE + 1n);
    });
  });

  describe('when the hub is closed', () => {
    it('reverts with HubInvalidStatus(Closed)', async () => {
      const f = await loadFixture(closedFixture);
      await expect(f.hub.connect(f.operator).increaseStake(1n))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Closed);
    });
  });
});

// ---------------------------------------------------------------- decreaseStake

describe('decreaseStake', () => {
  describe('when the operator takes stake out', () => {
    it('pays the operator and emits StakeDecreased(amount, stake)', async () => {
      const f = await loadFixture(operatedHubFixture);
      const amount = parseEther('1500');
      const tx = f.hub.connect(f.operator).decreaseStake(amount);
      await expect(tx)
        .to.emit(f.hub, 'StakeDecreased')
        .withArgs(amount, STAKE - amount);
      await expect(tx).to.changeTokenBalances(f.token, [f.operator, f.hub], [amount, -amount]);
      expect(await f.hub.stake()).to.equal(STAKE - amount);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('goes down to exactly the minimum stake', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).decreaseStake(STAKE - PARAMETERS.minStake))
        .to.emit(f.hub, 'StakeDecreased')
        .withArgs(STAKE - PARAMETERS.minStake, PARAMETERS.minStake);
    });
  });

  describe('when the stake would fall below the minimum', () => {
    it('reverts with HubStakeBelowMinimum(newStake, minStake)', async () => {
      const f = await loadFixture(operatedHubFixture);
      const amount = STAKE - PARAMETERS.minStake + 1n;
      await expect(f.hub.connect(f.operator).decreaseStake(amount))
        .to.be.revertedWithCustomError(f.hub, 'HubStakeBelowMinimum')
        .withArgs(PARAMETERS.minStake - 1n, PARAMETERS.minStake);
    });

    it('reverts with HubStakeBelowMinimum while closing too', async () => {
      const f = await loadFixture(closingFixture);
      await expect(f.hub.connect(f.operator).decreaseStake(STAKE))
        .to.be.revertedWithCustomError(f.hub, 'HubStakeBelowMinimum')
        .withArgs(0n, PARAMETERS.minStake);
    });
  });

  describe('when the amount is above the stake', () => {
    it('reverts with HubInsufficientStake(stake, amount)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).decreaseStake(STAKE + 1n))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientStake')
        .withArgs(STAKE, STAKE + 1n);
    });

    it('cannot reach the free funds or the consumer balances', async () => {
      const f = await loadFixture(operatedHubFixture);
      const held = await f.token.balanceOf(f.hubAddress);
      expect(held).to.be.gt(STAKE);
      await expect(f.hub.connect(f.operator).decreaseStake(held))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientStake')
        .withArgs(STAKE, held);
    });
  });

  describe('when the amount is zero', () => {
    it('reverts with HubZeroAmount', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).decreaseStake(0n)).to.be.revertedWithCustomError(f.hub, 'HubZeroAmount');
    });
  });

  describe('when the caller is not the operator', () => {
    it('reverts with HubOnlyOperator(caller)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.stranger).decreaseStake(1n))
        .to.be.revertedWithCustomError(f.hub, 'HubOnlyOperator')
        .withArgs(f.stranger.address);
    });
  });

  describe('when the hub is closed', () => {
    it('reverts with HubInsufficientStake(0, amount): close returned the stake', async () => {
      const f = await loadFixture(closedFixture);
      await expect(f.hub.connect(f.operator).decreaseStake(1n))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientStake')
        .withArgs(0n, 1n);
    });
  });
});

// ---------------------------------------------------------------- addFreeFunds

describe('addFreeFunds', () => {
  describe('when anyone adds free funds', () => {
    it('moves the tokens in and emits FreeFundsAdded(from, amount, freeFunds)', async () => {
      const f = await loadFixture(operatedHubFixture);
      const amount = parseEther('7');
      await f.token.connect(f.stranger).approve(f.hubAddress, amount);
      const tx = f.hub.connect(f.stranger).addFreeFunds(amount);
      await expect(tx)
        .to.emit(f.hub, 'FreeFundsAdded')
        .withArgs(f.stranger.address, amount, FREE + amount);
      await expect(tx).to.changeTokenBalances(f.token, [f.stranger, f.hub], [-amount, amount]);
      expect(await f.hub.freeFunds()).to.equal(FREE + amount);
      expect(await f.hub.stake()).to.equal(STAKE);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('accumulates across callers', async () => {
      const f = await loadFixture(operatedHubFixture);
      await f.token.connect(f.stranger).approve(f.hubAddress, 3n);
      await f.hub.connect(f.stranger).addFreeFunds(3n);
      await expect(f.hub.connect(f.operator).addFreeFunds(4n))
        .to.emit(f.hub, 'FreeFundsAdded')
        .withArgs(f.operator.address, 4n, FREE + 7n);
    });
  });

  describe('when the amount is zero', () => {
    it('reverts with HubZeroAmount', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.stranger).addFreeFunds(0n)).to.be.revertedWithCustomError(f.hub, 'HubZeroAmount');
    });
  });

  describe('when the caller has not approved the hub', () => {
    it('reverts with the token’s ERC20InsufficientAllowance', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.stranger).addFreeFunds(1n))
        .to.be.revertedWithCustomError(f.token, 'ERC20InsufficientAllowance')
        .withArgs(f.hubAddress, 0n, 1n);
    });
  });
});

// ---------------------------------------------------------------- withdrawFreeFunds

describe('withdrawFreeFunds', () => {
  describe('when the operator withdraws free funds', () => {
    it('pays the recipient and emits FreeFundsWithdrawn(to, amount, freeFunds)', async () => {
      const f = await loadFixture(operatedHubFixture);
      const amount = parseEther('20');
      const tx = f.hub.connect(f.operator).withdrawFreeFunds(f.stranger.address, amount);
      await expect(tx)
        .to.emit(f.hub, 'FreeFundsWithdrawn')
        .withArgs(f.stranger.address, amount, FREE - amount);
      await expect(tx).to.changeTokenBalances(f.token, [f.stranger, f.operator, f.hub], [amount, 0n, -amount]);
      expect(await f.hub.freeFunds()).to.equal(FREE - amount);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('withdraws all of them', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).withdrawFreeFunds(f.operator.address, FREE))
        .to.emit(f.hub, 'FreeFundsWithdrawn')
        .withArgs(f.operator.address, FREE, 0n);
      expect(await f.hub.freeFunds()).to.equal(0n);
      expect(await f.hub.stake()).to.equal(STAKE);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when the caller is not the operator', () => {
    it('reverts with HubOnlyOperator(caller)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.stranger).withdrawFreeFunds(f.stranger.address, 1n))
        .to.be.revertedWithCustomError(f.hub, 'HubOnlyOperator')
        .withArgs(f.stranger.address);
    });
  });

  describe('when the recipient is the zero address', () => {
    it('reverts with HubZeroAddress', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).withdrawFreeFunds(ZeroAddress, 1n)).to.be.revertedWithCustomError(
        f.hub,
        'HubZeroAddress',
      );
    });
  });

  describe('when the amount is zero', () => {
    it('reverts with HubZeroAmount', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).withdrawFreeFunds(f.operator.address, 0n)).to.be.revertedWithCustomError(
        f.hub,
        'HubZeroAmount',
      );
    });
  });

  describe('when the amount is above the free funds', () => {
    it('reverts with HubInsufficientFreeFunds(freeFunds, amount)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).withdrawFreeFunds(f.operator.address, FREE + 1n))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientFreeFunds')
        .withArgs(FREE, FREE + 1n);
    });

    it('cannot reach the consumer balances or the stake', async () => {
      const f = await loadFixture(fundedHubFixture);
      expect(await f.token.balanceOf(f.hubAddress)).to.equal(STAKE + DEPOSIT);
      await expect(f.hub.connect(f.operator).withdrawFreeFunds(f.operator.address, 1n))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientFreeFunds')
        .withArgs(0n, 1n);
    });
  });
});

// ---------------------------------------------------------------- scheduleFee

describe('scheduleFee', () => {
  describe('when the operator schedules a fee within the cap', () => {
    it('emits FeeChangeScheduled(fee, now + feeDelay) and records the pending fee', async () => {
      const f = await loadFixture(operatedHubFixture);
      const tx = await f.hub.connect(f.operator).scheduleFee(NEW_FEE);
      const { timestamp } = (await tx.getBlock())!;
      const effectiveAt = BigInt(timestamp) + PARAMETERS.feeDelay;
      await expect(tx).to.emit(f.hub, 'FeeChangeScheduled').withArgs(NEW_FEE, effectiveAt);
      const config = await f.hub.config();
      expect(config.fee).to.equal(HUB_FEE);
      expect(config.pendingFee).to.equal(NEW_FEE);
      expect(config.pendingFeeAt).to.equal(effectiveAt);
    });

    it('accepts exactly the cap and zero', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).scheduleFee(PARAMETERS.maxFee)).to.emit(f.hub, 'FeeChangeScheduled');
      await expect(f.hub.connect(f.operator).scheduleFee(0)).to.emit(f.hub, 'FeeChangeScheduled');
    });
  });

  describe('when the fee delay has not passed', () => {
    it('keeps the old fee in force until the last second before it', async () => {
      const f = await loadFixture(feeScheduledFixture);
      expect(await f.hub.currentFee()).to.equal(HUB_FEE);
      await time.increaseTo(f.effectiveAt - 1n);
      expect(await f.hub.currentFee()).to.equal(HUB_FEE);
    });

    it('charges the old fee on a settlement one second before the delay ends', async () => {
      const f = await loadFixture(feeScheduledFixture);
      const total = parseEther('10');
      await time.setNextBlockTimestamp(f.effectiveAt - 1n);
      await expect(f.hub.connect(f.provider).settleProvider(await f.claim(total)))
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, total, total, hubFeeOf(total, HUB_FEE), 0n, R(1));
    });

    it('charges the old fee on a lowered fee too', async () => {
      const f = await loadFixture(operatedHubFixture);
      await f.hub.connect(f.operator).scheduleFee(0);
      const total = parseEther('10');
      await expect(f.hub.connect(f.provider).settleProvider(await f.claim(total)))
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, total, total, hubFeeOf(total, HUB_FEE), 0n, R(1));
    });
  });

  describe('when the fee delay has passed', () => {
    it('puts the new fee in force from the second the delay ends', async () => {
      const f = await loadFixture(feeScheduledFixture);
      await time.increaseTo(f.effectiveAt);
      expect(await f.hub.currentFee()).to.equal(NEW_FEE);
      const config = await f.hub.config();
      expect(config.fee).to.equal(HUB_FEE);
      expect(config.pendingFee).to.equal(NEW_FEE);
    });

    it('charges the new fee on a settlement at that second', async () => {
      const f = await loadFixture(feeScheduledFixture);
      const total = parseEther('10');
      await time.setNextBlockTimestamp(f.effectiveAt);
      const tx = f.hub.connect(f.provider).settleProvider(await f.claim(total));
      await expect(tx)
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, total, total, hubFeeOf(total, NEW_FEE), 0n, R(1));
      await expect(tx).to.changeTokenBalance(f.token, f.beneficiary, total - hubFeeOf(total, NEW_FEE));
      expect(await f.hub.freeFunds()).to.equal(FREE - total + hubFeeOf(total, NEW_FEE));
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when a change is rescheduled before it takes effect', () => {
    it('keeps the old fee, drops the first change and restarts the delay', async () => {
      const f = await loadFixture(feeScheduledFixture);
      await time.increase(3n * 24n * 3600n);
      const tx = await f.hub.connect(f.operator).scheduleFee(300);
      const effectiveAt = BigInt((await tx.getBlock())!.timestamp) + PARAMETERS.feeDelay;
      await expect(tx).to.emit(f.hub, 'FeeChangeScheduled').withArgs(300, effectiveAt);
      const config = await f.hub.config();
      expect(config.fee).to.equal(HUB_FEE);
      expect(config.pendingFee).to.equal(300);
      expect(config.pendingFeeAt).to.equal(effectiveAt);
      await time.increaseTo(f.effectiveAt);
      expect(await f.hub.currentFee()).to.equal(HUB_FEE);
      await time.increaseTo(effectiveAt - 1n);
      expect(await f.hub.currentFee()).to.equal(HUB_FEE);
      await time.increaseTo(effectiveAt);
      expect(await f.hub.currentFee()).to.equal(300);
    });
  });

  describe('when a change is scheduled after the previous one took effect', () => {
    it('keeps the previous new fee in force until the next one takes effect', async () => {
      const f = await loadFixture(feeScheduledFixture);
      await time.increaseTo(f.effectiveAt);
      const tx = await f.hub.connect(f.operator).scheduleFee(300);
      const effectiveAt = BigInt((await tx.getBlock())!.timestamp) + PARAMETERS.feeDelay;
      const config = await f.hub.config();
      expect(config.fee).to.equal(NEW_FEE);
      expect(config.pendingFee).to.equal(300);
      expect(await f.hub.currentFee()).to.equal(NEW_FEE);
      await time.increaseTo(effectiveAt);
      expect(await f.hub.currentFee()).to.equal(300);
    });
  });

  describe('when the fee is above the cap', () => {
    it('reverts with HubFeeTooHigh(fee, maxFee)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).scheduleFee(PARAMETERS.maxFee + 1))
        .to.be.revertedWithCustomError(f.hub, 'HubFeeTooHigh')
        .withArgs(PARAMETERS.maxFee + 1, PARAMETERS.maxFee);
    });
  });

  describe('when the caller is not the operator', () => {
    it('reverts with HubOnlyOperator(caller)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.stranger).scheduleFee(0))
        .to.be.revertedWithCustomError(f.hub, 'HubOnlyOperator')
        .withArgs(f.stranger.address);
    });
  });

  describe('when the hub is closed', () => {
    it('reverts with HubInvalidStatus(Closed)', async () => {
      const f = await loadFixture(closedFixture);
      await expect(f.hub.connect(f.operator).scheduleFee(0))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Closed);
    });
  });
});

// ---------------------------------------------------------------- setConsumersPaused

describe('setConsumersPaused', () => {
  describe('when the operator pauses new consumers', () => {
    it('emits ConsumersPausedSet(true) and records it', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).setConsumersPaused(true))
        .to.emit(f.hub, 'ConsumersPausedSet')
        .withArgs(true);
      expect((await f.hub.config()).consumersPaused).to.equal(true);
    });

    it('refuses deposits from a new consumer with HubConsumersPaused(consumer)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await f.hub.connect(f.operator).setConsumersPaused(true);
      await f.token.connect(f.stranger).approve(f.hubAddress, 1n);
      await expect(f.hub.connect(f.stranger).deposit(1n))
        .to.be.revertedWithCustomError(f.hub, 'HubConsumersPaused')
        .withArgs(f.stranger.address);
    });

    it('still takes deposits from an existing consumer', async () => {
      const f = await loadFixture(operatedHubFixture);
      await f.hub.connect(f.operator).setConsumersPaused(true);
      await f.token.connect(f.consumer).approve(f.hubAddress, 1n);
      await expect(f.hub.connect(f.consumer).deposit(1n))
        .to.emit(f.hub, 'Deposited')
        .withArgs(f.consumer.address, f.consumer.address, 1n, DEPOSIT - FREE + 1n);
    });
  });

  describe('when the operator welcomes new consumers again', () => {
    it('emits ConsumersPausedSet(false) and takes the new consumer’s deposit', async () => {
      const f = await loadFixture(operatedHubFixture);
      await f.hub.connect(f.operator).setConsumersPaused(true);
      await expect(f.hub.connect(f.operator).setConsumersPaused(false))
        .to.emit(f.hub, 'ConsumersPausedSet')
        .withArgs(false);
      expect((await f.hub.config()).consumersPaused).to.equal(false);
      await f.token.connect(f.stranger).approve(f.hubAddress, 1n);
      await expect(f.hub.connect(f.stranger).deposit(1n)).to.emit(f.hub, 'Deposited');
    });
  });

  describe('when the caller is not the operator', () => {
    it('reverts with HubOnlyOperator(caller)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.stranger).setConsumersPaused(true))
        .to.be.revertedWithCustomError(f.hub, 'HubOnlyOperator')
        .withArgs(f.stranger.address);
    });
  });
});

// ---------------------------------------------------------------- requestClose

describe('requestClose', () => {
  describe('when the operator asks to close an active hub', () => {
    it('emits CloseRequested(now + closeDelay) and reads as closing', async () => {
      const f = await loadFixture(operatedHubFixture);
      const tx = await f.hub.connect(f.operator).requestClose();
      const closesAt = BigInt((await tx.getBlock())!.timestamp) + PARAMETERS.closeDelay;
      await expect(tx).to.emit(f.hub, 'CloseRequested').withArgs(closesAt);
      expect(await f.hub.closesAt()).to.equal(closesAt);
      expect(await f.hub.status()).to.equal(Status.Closing);
      expect((await f.hub.config()).status).to.equal(Status.Closing);
    });

    it('stops deposits with HubNotAcceptingDeposits(Closing)', async () => {
      const f = await loadFixture(closingFixture);
      await f.token.connect(f.consumer).approve(f.hubAddress, 1n);
      await expect(f.hub.connect(f.consumer).deposit(1n))
        .to.be.revertedWithCustomError(f.hub, 'HubNotAcceptingDeposits')
        .withArgs(Status.Closing);
    });

    it('goes on settling provider claims during the close delay', async () => {
      const f = await loadFixture(closingFixture);
      const total = parseEther('10');
      await expect(f.hub.connect(f.provider).settleProvider(await f.claim(total))).to.changeTokenBalance(
        f.token,
        f.beneficiary,
        total - hubFeeOf(total, HUB_FEE),
      );
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when the hub is already closing', () => {
    it('reverts with HubInvalidStatus(Closing)', async () => {
      const f = await loadFixture(closingFixture);
      await expect(f.hub.connect(f.operator).requestClose())
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Closing);
    });
  });

  describe('when the hub is closed', () => {
    it('reverts with HubInvalidStatus(Closed)', async () => {
      const f = await loadFixture(closedFixture);
      await expect(f.hub.connect(f.operator).requestClose())
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Closed);
    });
  });

  describe('when the hub is punished', () => {
    it('reverts with HubInvalidStatus(Punished) until the stake is topped up', async () => {
      const f = await loadFixture(punishedFixture);
      expect(await f.hub.status()).to.equal(Status.Punished);
      await expect(f.hub.connect(f.operator).requestClose())
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Punished);
      const owed = await f.hub.stakeOwed();
      await f.token.connect(f.operator).approve(await f.hub.getAddress(), owed);
      await f.hub.connect(f.operator).increaseStake(owed);
      await expect(f.hub.connect(f.operator).requestClose()).to.emit(f.hub, 'CloseRequested');
    });
  });

  describe('when the caller is not the operator', () => {
    it('reverts with HubOnlyOperator(caller)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.stranger).requestClose())
        .to.be.revertedWithCustomError(f.hub, 'HubOnlyOperator')
        .withArgs(f.stranger.address);
    });
  });
});

// ---------------------------------------------------------------- close

describe('close', () => {
  describe('when the close delay has not passed', () => {
    it('reverts with HubCloseNotReady(closesAt) one second before', async () => {
      const f = await loadFixture(closingFixture);
      await time.setNextBlockTimestamp(f.closesAt - 1n);
      await expect(f.hub.connect(f.operator).close())
        .to.be.revertedWithCustomError(f.hub, 'HubCloseNotReady')
        .withArgs(f.closesAt);
    });
  });

  describe('when the hub is not closing', () => {
    it('reverts with HubInvalidStatus(Active)', async () => {
      const f = await loadFixture(operatedHubFixture);
      await expect(f.hub.connect(f.operator).close())
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Active);
    });
  });

  describe('when the hub is already closed', () => {
    it('reverts with HubInvalidStatus(Closed)', async () => {
      const f = await loadFixture(closedFixture);
      await expect(f.hub.connect(f.operator).close())
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Closed);
    });
  });

  describe('when the caller is not the operator', () => {
    it('reverts with HubOnlyOperator(caller)', async () => {
      const f = await loadFixture(closingFixture);
      await time.increaseTo(f.closesAt);
      await expect(f.hub.connect(f.stranger).close())
        .to.be.revertedWithCustomError(f.hub, 'HubOnlyOperator')
        .withArgs(f.stranger.address);
    });
  });

  describe('when the close delay has passed', () => {
    it('returns the stake and the free funds to the operator and emits HubClosed(operator, amount)', async () => {
      const f = await loadFixture(closingFixture);
      await time.setNextBlockTimestamp(f.closesAt);
      const tx = f.hub.connect(f.operator).close();
      await expect(tx)
        .to.emit(f.hub, 'HubClosed')
        .withArgs(f.operator.address, STAKE + FREE);
      await expect(tx).to.changeTokenBalances(f.token, [f.operator, f.hub], [STAKE + FREE, -(STAKE + FREE)]);
    });

    it('leaves only the consumer balances in the hub', async () => {
      const f = await loadFixture(closedFixture);
      expect(await f.hub.status()).to.equal(Status.Closed);
      expect(await f.hub.stake()).to.equal(0n);
      expect(await f.hub.freeFunds()).to.equal(0n);
      expect(await f.token.balanceOf(f.hubAddress)).to.equal(DEPOSIT - FREE);
      expect((await f.hub.consumerChannel(f.consumer.address)).balance).to.equal(DEPOSIT - FREE);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('still lets the consumer finalize the exit it requested before', async () => {
      const f = await loadFixture(closedFixture);
      await expect(f.hub.connect(f.consumer).finalizeExit()).to.changeTokenBalances(
        f.token,
        [f.consumer, f.hub],
        [parseEther('10'), -parseEther('10')],
      );
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('still lets the consumer request and finalize a new exit', async () => {
      const f = await loadFixture(closedFixture);
      const rest = DEPOSIT - FREE;
      await f.hub.connect(f.consumer).requestExit(rest);
      await time.increase(PARAMETERS.exitDelay);
      await expect(f.hub.connect(f.consumer).finalizeExit())
        .to.emit(f.hub, 'ExitFinalized')
        .withArgs(f.consumer.address, rest);
      expect(await f.token.balanceOf(f.hubAddress)).to.equal(0n);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('still lets the consumer exit at once with the operator’s co-signature', async () => {
      const f = await loadFixture(closedFixture);
      const amount = parseEther('40');
      const deadline = BigInt(await time.latest()) + 3600n;
      const signature = await instantExitSignature(f.operator, f.hubAddress, f.chainId, {
        consumer: f.consumer.address,
        amount,
        nonce: 0n,
        deadline,
      });
      await expect(f.hub.connect(f.consumer).instantExit(amount, deadline, signature)).to.changeTokenBalance(
        f.token,
        f.consumer,
        amount,
      );
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('refuses a stake increase afterwards with HubInvalidStatus(Closed)', async () => {
      const f = await loadFixture(closedFixture);
      await expect(f.hub.connect(f.operator).increaseStake(STAKE))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidStatus')
        .withArgs(Status.Closed);
    });

    it('refuses provider claims it can no longer fund with HubInsufficientFunds', async () => {
      const f = await loadFixture(closedFixture);
      const total = parseEther('1');
      await expect(f.hub.connect(f.provider).settleProvider(await f.claim(total)))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientFunds')
        .withArgs(total - hubFeeOf(total, HUB_FEE), 0n);
    });

    it('keeps reporting when it could be closed', async () => {
      const f = await loadFixture(closedFixture);
      expect(await f.hub.closesAt()).to.be.greaterThan(0n);
      expect(await f.hub.closesAt()).to.be.lessThanOrEqual(BigInt(await time.latest()));
    });
  });
});

// ---------------------------------------------------------------- views

describe('views', () => {
  describe('when the hub was just registered', () => {
    it('reports the Registry, the token and the operator', async () => {
      const f = await loadFixture(deployHubFixture);
      expect(await f.hub.registry()).to.equal(f.registryAddress);
      expect(await f.hub.token()).to.equal(await f.token.getAddress());
      expect(await f.hub.operator()).to.equal(f.operator.address);
    });

    it('reports the configuration', async () => {
      const f = await loadFixture(deployHubFixture);
      const config = await f.hub.config();
      expect(config.operator).to.equal(f.operator.address);
      expect(config.status).to.equal(Status.Active);
      expect(config.consumersPaused).to.equal(false);
      expect(config.fee).to.equal(HUB_FEE);
      expect(config.pendingFee).to.equal(HUB_FEE);
      expect(config.pendingFeeAt).to.equal(0n);
    });

    it('reports the status, fee, stake, debt, free funds and closing time', async () => {
      const f = await loadFixture(deployHubFixture);
      expect(await f.hub.status()).to.equal(Status.Active);
      expect(await f.hub.isPunished()).to.equal(false);
      expect(await f.hub.currentFee()).to.equal(HUB_FEE);
      expect(await f.hub.stake()).to.equal(STAKE);
      expect(await f.hub.stakeOwed()).to.equal(0n);
      expect(await f.hub.freeFunds()).to.equal(0n);
      expect(await f.hub.closesAt()).to.equal(0n);
      await expectBooksBalanced(f.hub, f.token, []);
    });

    it('reports the Registry’s parameters', async () => {
      const f = await loadFixture(deployHubFixture);
      const [minStake, maxFee, exitDelay, feeDelay, closeDelay] = await f.hub.parameters();
      expect([minStake, maxFee, exitDelay, feeDelay, closeDelay]).to.deep.equal([
        PARAMETERS.minStake,
        BigInt(PARAMETERS.maxFee),
        PARAMETERS.exitDelay,
        PARAMETERS.feeDelay,
        PARAMETERS.closeDelay,
      ]);
      const registryParameters = await f.registry.parameters();
      expect(registryParameters.minStake).to.equal(minStake);
      expect(registryParameters.maxFee).to.equal(maxFee);
    });

    it('reports its own EIP-712 domain separator', async () => {
      const f = await loadFixture(deployHubFixture);
      expect(await f.hub.domainSeparator()).to.equal(TypedDataEncoder.hashDomain(hubDomain(f.hubAddress, f.chainId)));
    });
  });

  describe('when the hub has funds and a pending fee change', () => {
    it('reports them', async () => {
      const f = await loadFixture(feeScheduledFixture);
      expect(await f.hub.freeFunds()).to.equal(FREE);
      expect(await f.hub.currentFee()).to.equal(HUB_FEE);
      const config = await f.hub.config();
      expect(config.pendingFee).to.equal(NEW_FEE);
      expect(config.pendingFeeAt).to.equal(f.effectiveAt);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when the hub is punished', () => {
    it('reports Punished, the debt and the reduced stake', async () => {
      const f = await loadFixture(punishedFixture);
      const outflow = FREE + parseEther('10') - hubFeeOf(FREE + parseEther('10'), HUB_FEE);
      expect(await f.hub.status()).to.equal(Status.Punished);
      expect(await f.hub.isPunished()).to.equal(true);
      expect(await f.hub.stakeOwed()).to.equal(outflow - FREE);
      expect(await f.hub.stake()).to.equal(STAKE - (outflow - FREE));
      expect(await f.hub.freeFunds()).to.equal(0n);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });
});
