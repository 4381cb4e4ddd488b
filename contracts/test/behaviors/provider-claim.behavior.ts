import { loadFixture } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import { type ContractTransactionResponse, id, keccak256, parseEther, Signature, toBeHex, ZeroAddress } from 'ethers';
import type { Hub, IHub } from '../../../typechain-types';
import { HUB_FEE, STAKE } from '../helpers/fixtures';
import {
  BPS,
  expectBooksBalanced,
  FREE,
  freeFundsFixture,
  HALF_N,
  hubFeeOf,
  lowFreeFundsFixture,
  N,
  type ProviderFixture,
  PUNISHING_TOTAL,
  punishedFixture,
  R,
  recoveredAuthorizer,
  recoveredHubSigner,
  Status,
  settledOnceFixture,
  totalForNet,
  twoHubsFixture,
} from '../helpers/providers';
import {
  compact,
  EMPTY_SIGNATURE,
  hubDomain,
  hubTypes,
  instantExitSignature,
  setBeneficiarySignature,
  signTyped,
} from '../helpers/signing';

type Sender = ProviderFixture['signers'][number];

export interface SettleOptions {
  /** The account that sends the transaction; the fixture's deployer by default. */
  from?: Sender;
  /** The hub the claim is sent to; the fixture's hub by default. */
  hub?: Hub;
}

/** One entry point that settles a provider claim, adapted to a common shape. */
export interface ProviderClaimEntry {
  /** Whether a claim with nothing left to pay reverts with HubProviderPromiseStale (true) or is skipped (false). */
  strict: boolean;
  /** Whether the call pays the Registry's beneficiary of the provider, or the provider itself when unregistered
   * (false), or sets a new beneficiary in the same call (true, which needs a registered provider). */
  setsBeneficiary: boolean;
  /** Sends `claim` through the entry point. */
  settle(
    f: ProviderFixture,
    claim: IHub.ProviderClaimStruct,
    options?: SettleOptions,
  ): Promise<ContractTransactionResponse>;
  /** What the entry point returns for `claim`: the payout to the beneficiary. */
  payout(f: ProviderFixture, claim: IHub.ProviderClaimStruct, options?: SettleOptions): Promise<bigint>;
  /** The account the entry point pays `provider`'s payout to. */
  payee(f: ProviderFixture, provider: string): Promise<string>;
}

/**
 * The rules every provider claim obeys, whichever entry point settles it: the amounts paid and to whom, the
 * events, the fee rules, staleness, solvency, and the attacks on the signatures.
 */
export function shouldBehaveLikeProviderClaim(entry: ProviderClaimEntry): void {
  const settle = entry.settle;

  /** Asserts that `claim` settles nothing because `settled` is already recorded: a revert or a skip. */
  async function expectStale(
    f: ProviderFixture,
    claim: IHub.ProviderClaimStruct,
    settled: bigint,
    options?: SettleOptions,
  ): Promise<void> {
    const payee = await entry.payee(f, claim.provider as string);
    const payeeBalance = await f.token.balanceOf(payee);
    if (entry.strict) {
      await expect(settle(f, claim, options))
        .to.be.revertedWithCustomError(f.hub, 'HubProviderPromiseStale')
        .withArgs(claim.provider, claim.total, settled);
    } else {
      expect(await entry.payout(f, claim, options)).to.equal(0n);
      const tx = await settle(f, claim, options);
      await expect(tx).not.to.emit(f.hub, 'ProviderSettled');
      await expect(tx).not.to.emit(f.token, 'Transfer');
    }
    expect(await f.token.balanceOf(payee)).to.equal(payeeBalance);
    expect(await f.hub.providerSettled(claim.provider as string)).to.equal(settled);
  }

  describe('when a relayer settles with the provider’s authorization', () => {
    const total = parseEther('20');
    const relayerFee = parseEther('0.5');
    const hubFee = hubFeeOf(total);
    const payout = total - hubFee - relayerFee;

    it('pays the beneficiary the total less the hub fee and the relayer fee, and the relayer its fee', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total, relayerFee });
      const payee = await entry.payee(f, f.provider.address);
      await expect(settle(f, claim, { from: f.relayer })).to.changeTokenBalances(
        f.token,
        [payee, f.relayer, f.provider, f.hub],
        [payout, relayerFee, 0n, -(payout + relayerFee)],
      );
    });

    it('returns the beneficiary’s payout', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total, relayerFee });
      expect(await entry.payout(f, claim, { from: f.relayer })).to.equal(payout);
    });

    it('emits ProviderSettled with the exact amounts and the preimage', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total, relayerFee });
      await expect(settle(f, claim, { from: f.relayer }))
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, total, total, hubFee, relayerFee, R(1));
    });

    it('takes the payout and the relayer fee from the free funds, leaving the hub fee', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total, relayerFee });
      await settle(f, claim, { from: f.relayer });
      expect(await f.hub.freeFunds()).to.equal(FREE - total + hubFee);
      expect(await f.hub.stake()).to.equal(STAKE);
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(total);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when the provider settles for itself without a relayer fee', () => {
    it('pays the whole net amount to the beneficiary', async () => {
      const f = await loadFixture(freeFundsFixture);
      const total = parseEther('20');
      const claim = await f.claim({ total });
      expect(claim.providerSignature).to.deep.equal(EMPTY_SIGNATURE);
      const payee = await entry.payee(f, f.provider.address);
      await expect(settle(f, claim, { from: f.provider })).to.changeTokenBalances(
        f.token,
        [payee, f.provider, f.hub],
        [total - hubFeeOf(total), 0n, -(total - hubFeeOf(total))],
      );
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('emits ProviderSettled with a zero relayer fee', async () => {
      const f = await loadFixture(freeFundsFixture);
      const total = parseEther('20');
      await expect(settle(f, await f.claim({ total }), { from: f.provider }))
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, total, total, hubFeeOf(total), 0n, R(1));
    });
  });

  describe('when the relayer fee is zero and the provider signature is garbage', () => {
    it('ignores the provider signature', async () => {
      const f = await loadFixture(freeFundsFixture);
      const total = parseEther('20');
      const claim = { ...(await f.claim({ total })), providerSignature: { r: id('junk r'), vs: id('junk vs') } };
      const payee = await entry.payee(f, f.provider.address);
      await expect(settle(f, claim, { from: f.stranger })).to.changeTokenBalances(
        f.token,
        [payee, f.stranger],
        [total - hubFeeOf(total), 0n],
      );
    });
  });

  if (!entry.setsBeneficiary) {
    describe('when the provider is not registered', () => {
      it('pays the provider identity itself', async () => {
        const f = await loadFixture(freeFundsFixture);
        const unregistered = f.signers[8];
        expect(await f.registry.isRegistered(unregistered.address)).to.equal(false);
        const total = parseEther('10');
        const relayerFee = parseEther('0.1');
        const claim = await f.claim({
          total,
          relayerFee,
          provider: unregistered.address,
          providerSigner: unregistered,
        });
        await expect(settle(f, claim, { from: f.relayer })).to.changeTokenBalances(
          f.token,
          [unregistered, f.relayer, f.beneficiary],
          [total - hubFeeOf(total) - relayerFee, relayerFee, 0n],
        );
        await expectBooksBalanced(f.hub, f.token, f.consumers);
      });
    });
  }

  describe('when the provider settles a higher promise later', () => {
    const total = parseEther('35');
    const increment = total - parseEther('20');

    it('pays only the increment', async () => {
      const f = await loadFixture(settledOnceFixture);
      const claim = await f.claim({ total, preimage: R(2) });
      await expect(settle(f, claim, { from: f.provider })).to.changeTokenBalance(
        f.token,
        await entry.payee(f, f.provider.address),
        increment - hubFeeOf(increment),
      );
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(total);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('emits ProviderSettled with the increment and its hub fee', async () => {
      const f = await loadFixture(settledOnceFixture);
      await expect(settle(f, await f.claim({ total, preimage: R(2) }), { from: f.provider }))
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, total, increment, hubFeeOf(increment), 0n, R(2));
    });
  });

  describe('when the hub fee is not a whole number of token units', () => {
    it('rounds the hub fee down, in the provider’s favour', async () => {
      const f = await loadFixture(freeFundsFixture);
      const total = 12_345n; // 1 % of it is 123.45
      const claim = await f.claim({ total, relayerFee: 45n });
      const payee = await entry.payee(f, f.provider.address);
      await expect(settle(f, claim, { from: f.relayer }))
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, total, total, 123n, 45n, R(1));
      expect(await f.token.balanceOf(payee)).to.equal(12_345n - 123n - 45n);
      expect(await f.hub.freeFunds()).to.equal(FREE - 12_345n + 123n);
    });
  });

  describe('when a promise is settled in increments below one fee unit', () => {
    // Design note: the fee is rounded down per settlement, so it depends on how a total is split.
    it('charges no hub fee on any of them, where the whole would have paid one unit', async () => {
      const f = await loadFixture(freeFundsFixture);
      const step = BPS / BigInt(HUB_FEE) - 1n; // 99 token units: 1 % of it rounds down to zero
      const payee = await entry.payee(f, f.provider.address);
      const before = await f.token.balanceOf(payee);
      await expect(settle(f, await f.claim({ total: step, preimage: R(2) })))
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, step, step, 0n, 0n, R(2));
      await expect(settle(f, await f.claim({ total: 2n * step, preimage: R(3) })))
        .to.emit(f.hub, 'ProviderSettled')
        .withArgs(f.provider.address, 2n * step, step, 0n, 0n, R(3));
      expect(hubFeeOf(2n * step)).to.equal(1n);
      expect((await f.token.balanceOf(payee)) - before).to.equal(2n * step);
    });
  });

  describe('when the relayer fee takes the whole net payout', () => {
    it('pays the relayer everything and the beneficiary nothing', async () => {
      const f = await loadFixture(freeFundsFixture);
      const total = parseEther('10');
      const net = total - hubFeeOf(total);
      const claim = await f.claim({ total, relayerFee: net });
      const payee = await entry.payee(f, f.provider.address);
      const tx = await settle(f, claim, { from: f.relayer });
      await expect(tx).to.changeTokenBalances(f.token, [payee, f.relayer], [0n, net]);
      // No zero-value transfer to the beneficiary: the relayer's is the only Transfer.
      const receipt = await tx.wait();
      const transfers = receipt!.logs
        .filter((log) => log.address === f.tokenAddress)
        .map((log) => f.token.interface.parseLog(log)!.args.toArray());
      expect(transfers).to.deep.equal([[f.hubAddress, f.relayer.address, net]]);
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(total);
    });
  });

  describe('when the promise equals the settled total', () => {
    it(entry.strict ? 'reverts with HubProviderPromiseStale' : 'skips it and moves nothing', async () => {
      const f = await loadFixture(settledOnceFixture);
      await expectStale(f, await f.claim({ total: parseEther('20'), preimage: R(2) }), parseEther('20'));
    });
  });

  describe('when the promise is below the settled total', () => {
    it(entry.strict ? 'reverts with HubProviderPromiseStale' : 'skips it and moves nothing', async () => {
      const f = await loadFixture(settledOnceFixture);
      await expectStale(f, await f.claim({ total: parseEther('15'), preimage: R(2) }), parseEther('20'));
    });
  });

  describe('when the relayer fee exceeds the payout', () => {
    it('reverts with HubRelayerFeeTooHigh', async () => {
      const f = await loadFixture(freeFundsFixture);
      const total = parseEther('10');
      const net = total - hubFeeOf(total);
      await expect(settle(f, await f.claim({ total, relayerFee: net + 1n }), { from: f.relayer }))
        .to.be.revertedWithCustomError(f.hub, 'HubRelayerFeeTooHigh')
        .withArgs(net + 1n, net);
    });

    it('reverts with HubRelayerFeeTooHigh on the increment only, after an earlier settlement', async () => {
      const f = await loadFixture(settledOnceFixture);
      const total = parseEther('21');
      const net = parseEther('1') - hubFeeOf(parseEther('1'));
      await expect(settle(f, await f.claim({ total, preimage: R(2), relayerFee: net + 1n }), { from: f.relayer }))
        .to.be.revertedWithCustomError(f.hub, 'HubRelayerFeeTooHigh')
        .withArgs(net + 1n, net);
    });

    it('keeps the previous settled total', async () => {
      const f = await loadFixture(settledOnceFixture);
      const claim = await f.claim({ total: parseEther('30'), preimage: R(2), relayerFee: parseEther('100') });
      await expect(settle(f, claim, { from: f.relayer })).to.be.revertedWithCustomError(f.hub, 'HubRelayerFeeTooHigh');
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(parseEther('20'));
    });
  });

  describe('when the relayer fee lacks the provider’s authorization', () => {
    it('reverts with HubInvalidSignature(provider, 0) for a missing signature', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = {
        ...(await f.claim({ total: parseEther('10'), relayerFee: 1n })),
        providerSignature: EMPTY_SIGNATURE,
      };
      await expect(settle(f, claim, { from: f.relayer }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, ZeroAddress);
    });

    it('reverts with HubInvalidSignature(provider, signer) for an authorization by someone else', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total: parseEther('10'), relayerFee: 1n, providerSigner: f.stranger });
      await expect(settle(f, claim, { from: f.relayer }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, f.stranger.address);
    });

    it('reverts with HubInvalidSignature for an authorization of another fee', async () => {
      const f = await loadFixture(freeFundsFixture);
      const signed = await f.claim({ total: parseEther('10'), relayerFee: parseEther('0.1') });
      const claim = { ...signed, relayerFee: parseEther('0.2') };
      const recovered = recoveredAuthorizer(f.hubAddress, f.chainId, claim, f.relayer.address);
      expect(recovered).not.to.equal(f.provider.address);
      await expect(settle(f, claim, { from: f.relayer }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, recovered);
    });
  });

  describe('when the hub signature is not by the operator', () => {
    it('reverts with HubInvalidSignature(operator, signer)', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total: parseEther('10'), operator: f.stranger });
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, f.stranger.address);
    });

    it('reverts with HubInvalidSignature(operator, 0) for an empty signature', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = { ...(await f.claim({ total: parseEther('10') })), hubSignature: EMPTY_SIGNATURE };
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, ZeroAddress);
    });
  });

  // ---------------------------------------------------------------- solvency

  describe('when a valid claim exceeds the free funds', () => {
    it('pays the rest from the stake', async () => {
      const f = await loadFixture(lowFreeFundsFixture);
      const outflow = PUNISHING_TOTAL - hubFeeOf(PUNISHING_TOTAL);
      const payee = await entry.payee(f, f.provider.address);
      await expect(settle(f, await f.claim({ total: PUNISHING_TOTAL }), { from: f.provider })).to.changeTokenBalances(
        f.token,
        [payee, f.hub],
        [outflow, -outflow],
      );
      expect(await f.hub.freeFunds()).to.equal(0n);
      expect(await f.hub.stake()).to.equal(STAKE - (outflow - parseEther('10')));
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('emits HubPunished(fromStake, stake, owed) and marks the hub punished', async () => {
      const f = await loadFixture(lowFreeFundsFixture);
      const fromStake = PUNISHING_TOTAL - hubFeeOf(PUNISHING_TOTAL) - parseEther('10');
      await expect(settle(f, await f.claim({ total: PUNISHING_TOTAL }), { from: f.provider }))
        .to.emit(f.hub, 'HubPunished')
        .withArgs(fromStake, STAKE - fromStake, fromStake);
      expect(await f.hub.status()).to.equal(Status.Punished);
      expect(await f.hub.stakeOwed()).to.equal(fromStake);
    });
  });

  describe('when free funds cover the claim exactly', () => {
    it('does not punish the hub', async () => {
      const f = await loadFixture(lowFreeFundsFixture);
      const total = totalForNet(parseEther('10'));
      const tx = await settle(f, await f.claim({ total }), { from: f.provider });
      await expect(tx).not.to.emit(f.hub, 'HubPunished');
      expect(await f.hub.isPunished()).to.equal(false);
      expect(await f.hub.stake()).to.equal(STAKE);
      expect(await f.hub.freeFunds()).to.equal(0n);
    });
  });

  describe('when a punished hub pays another claim from the stake', () => {
    it('adds to what the stake is owed', async () => {
      const f = await loadFixture(punishedFixture);
      const total = PUNISHING_TOTAL + parseEther('5');
      const fromStake = parseEther('5') - hubFeeOf(parseEther('5'));
      const stakeBefore = await f.hub.stake();
      await expect(settle(f, await f.claim({ total, preimage: R(2) }), { from: f.provider }))
        .to.emit(f.hub, 'HubPunished')
        .withArgs(fromStake, stakeBefore - fromStake, f.owed + fromStake);
      expect(await f.hub.stakeOwed()).to.equal(f.owed + fromStake);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when a punished hub has free funds again', () => {
    it('pays from the free funds and leaves the debt as it was', async () => {
      const f = await loadFixture(punishedFixture);
      await f.token.connect(f.stranger).approve(f.hubAddress, parseEther('10'));
      await f.hub.connect(f.stranger).addFreeFunds(parseEther('10'));
      const claim = await f.claim({ total: PUNISHING_TOTAL + parseEther('5'), preimage: R(2) });
      const tx = await settle(f, claim, { from: f.provider });
      await expect(tx).not.to.emit(f.hub, 'HubPunished');
      expect(await f.hub.stakeOwed()).to.equal(f.owed);
      expect(await f.hub.status()).to.equal(Status.Punished);
    });
  });

  describe('when free funds and stake together cannot pay the claim', () => {
    it('reverts with HubInsufficientFunds(needed, available)', async () => {
      const f = await loadFixture(lowFreeFundsFixture);
      const total = parseEther('6000');
      await expect(settle(f, await f.claim({ total }), { from: f.provider }))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientFunds')
        .withArgs(total - hubFeeOf(total), parseEther('10') + STAKE);
    });

    it('pays a claim that needs exactly the free funds and the whole stake', async () => {
      const f = await loadFixture(lowFreeFundsFixture);
      const total = totalForNet(parseEther('10') + STAKE);
      await expect(settle(f, await f.claim({ total }), { from: f.provider }))
        .to.emit(f.hub, 'HubPunished')
        .withArgs(STAKE, 0n, STAKE);
      expect(await f.hub.stake()).to.equal(0n);
      expect(await f.hub.freeFunds()).to.equal(0n);
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });

    it('reverts with HubInsufficientFunds one token unit beyond that', async () => {
      const f = await loadFixture(lowFreeFundsFixture);
      const needed = parseEther('10') + STAKE + 1n;
      await expect(settle(f, await f.claim({ total: totalForNet(needed) }), { from: f.provider }))
        .to.be.revertedWithCustomError(f.hub, 'HubInsufficientFunds')
        .withArgs(needed, parseEther('10') + STAKE);
    });
  });

  // ---------------------------------------------------------------- attacks

  describe('when a settled claim is replayed', () => {
    it(
      entry.strict ? 'reverts with HubProviderPromiseStale and pays nothing twice' : 'skips it and pays nothing twice',
      async () => {
        const f = await loadFixture(freeFundsFixture);
        const total = parseEther('20');
        const claim = await f.claim({ total, relayerFee: parseEther('0.5') });
        await settle(f, claim, { from: f.relayer });
        await expectStale(f, claim, total, { from: f.relayer });
      },
    );
  });

  describe('when a lower promise is presented after a higher one', () => {
    it(entry.strict ? 'reverts with HubProviderPromiseStale' : 'skips it and moves nothing', async () => {
      const f = await loadFixture(freeFundsFixture);
      const lower = await f.claim({ total: parseEther('10'), preimage: R(2) });
      const higher = await f.claim({ total: parseEther('25'), preimage: R(3) });
      await settle(f, higher);
      await expectStale(f, lower, parseEther('25'));
    });
  });

  describe('when the hub signature was made for another chain id', () => {
    it('reverts with HubInvalidSignature', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total: parseEther('10'), chainId: 1n });
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, claim);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });
  });

  describe('when the provider authorization was made for another chain id', () => {
    it('reverts with HubInvalidSignature(provider, recovered)', async () => {
      const f = await loadFixture(freeFundsFixture);
      const valid = await f.claim({ total: parseEther('10') });
      const foreign = await f.claim({ total: parseEther('10'), chainId: 1n, relayerFee: 1n });
      const claim = { ...valid, relayerFee: 1n, providerSignature: foreign.providerSignature };
      const recovered = recoveredAuthorizer(f.hubAddress, f.chainId, claim, f.relayer.address);
      expect(recovered).not.to.equal(f.provider.address);
      await expect(settle(f, claim, { from: f.relayer }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, recovered);
    });
  });

  describe('when a promise of another hub is presented', () => {
    it('reverts with HubInvalidSignature for a valid promise of the other hub’s operator', async () => {
      const f = await loadFixture(twoHubsFixture);
      const claim = await f.claim({ hub: f.otherHubAddress, operator: f.otherOperator, total: parseEther('10') });
      await expect(entry.payout(f, claim, { hub: f.otherHub })).not.to.be.reverted;
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, claim);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });

    it('reverts with HubInvalidSignature for this operator’s signature over the other hub’s domain', async () => {
      const f = await loadFixture(twoHubsFixture);
      const claim = await f.claim({ hub: f.otherHubAddress, total: parseEther('10') });
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, claim);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });

    it('reverts with HubInvalidSignature at the other hub for this hub’s promise', async () => {
      const f = await loadFixture(twoHubsFixture);
      const claim = await f.claim({ total: parseEther('10') });
      const recovered = recoveredHubSigner(f.otherHubAddress, f.chainId, claim);
      expect(recovered).not.to.equal(f.otherOperator.address);
      await expect(settle(f, claim, { hub: f.otherHub }))
        .to.be.revertedWithCustomError(f.otherHub, 'HubInvalidSignature')
        .withArgs(f.otherOperator.address, recovered);
    });
  });

  describe('when an operator signature of another message type is presented as the hub signature', () => {
    async function foreignSignature(sign: (f: ProviderFixture, total: bigint) => Promise<string>) {
      const f = await loadFixture(freeFundsFixture);
      const total = parseEther('10');
      const valid = await f.claim({ total });
      const claim = { ...valid, hubSignature: compact(await sign(f, total)) };
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, claim);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    }

    it('rejects a ConsumerPromise signature', async () => {
      await foreignSignature((f, total) =>
        signTyped(f.operator, hubDomain(f.hubAddress, f.chainId), hubTypes, 'ConsumerPromise', {
          consumer: f.provider.address,
          total,
          hashlock: keccak256(R(1)),
          agreement: { provider: f.provider.address, id: R(0), total },
        }),
      );
    });

    it('rejects a SettlementAuthorization signature', async () => {
      await foreignSignature((f, total) =>
        signTyped(f.operator, hubDomain(f.hubAddress, f.chainId), hubTypes, 'SettlementAuthorization', {
          hubPromise: { provider: f.provider.address, total, hashlock: keccak256(R(1)) },
          relayerFee: 0n,
          relayer: f.provider.address,
        }),
      );
    });

    it('rejects an InstantExit co-signature', async () => {
      await foreignSignature((f, total) =>
        instantExitSignature(f.operator, f.hubAddress, f.chainId, {
          consumer: f.provider.address,
          amount: total,
          nonce: 0n,
          deadline: BigInt(keccak256(R(1))),
        }),
      );
    });

    it('rejects a Registry SetBeneficiary signature', async () => {
      await foreignSignature((f) =>
        setBeneficiarySignature(f.operator, f.registryAddress, f.chainId, {
          identity: f.provider.address,
          beneficiary: f.operator.address,
          nonce: 0n,
        }),
      );
    });
  });

  describe('when the operator is also the provider and reuses its hub signature as the authorization', () => {
    it('reverts with HubInvalidSignature(provider, recovered)', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({
        total: parseEther('10'),
        provider: f.operator.address,
        providerSigner: f.operator,
      });
      const forged = { ...claim, relayerFee: parseEther('9'), providerSignature: claim.hubSignature };
      const recovered = recoveredAuthorizer(f.hubAddress, f.chainId, forged, f.relayer.address);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, forged, { from: f.relayer }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });
  });

  describe('when the hub signature is the high-s twin of a valid one', () => {
    it('rejects it with HubInvalidSignature', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total: parseEther('10') });
      const signature = Signature.from({
        r: claim.hubSignature.r as string,
        yParityAndS: claim.hubSignature.vs as string,
      });
      const highS = N - BigInt(signature.s);
      const parity = BigInt(signature.yParity ^ 1);
      const malleable = { r: signature.r, vs: toBeHex((parity << 255n) | highS, 32) };
      // n - s needs all 256 bits for almost every s, so EIP-2098 cannot carry the twin: its top bit collides
      // with the parity bit and the contract reads a different, low s. Either way the operator is not recovered.
      expect(highS >> 255n).to.equal(1n);
      const forged = { ...claim, hubSignature: malleable };
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, forged);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, forged))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });

    it('recovers the zero address for a compact signature whose s is above n/2', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({ total: parseEther('10') });
      for (const parity of [0n, 1n]) {
        const forged = {
          ...claim,
          hubSignature: { r: claim.hubSignature.r, vs: toBeHex((parity << 255n) | (HALF_N + 1n), 32) },
        };
        await expect(settle(f, forged))
          .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
          .withArgs(f.operator.address, ZeroAddress);
      }
    });
  });

  describe('when the provider claims more than the operator signed', () => {
    it('reverts with HubInvalidSignature', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = { ...(await f.claim({ total: parseEther('10') })), total: parseEther('11') };
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, claim);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });
  });

  describe('when the claim is for another provider than signed', () => {
    it('reverts with HubInvalidSignature', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = { ...(await f.claim({ total: parseEther('10') })), provider: f.stranger.address };
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, claim);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, claim, { from: f.stranger }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });
  });

  describe('when the preimage is wrong', () => {
    it('reverts with HubInvalidSignature: the hashlock is derived from it', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = { ...(await f.claim({ total: parseEther('10') })), preimage: R(99) };
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, claim);
      expect(recovered).not.to.equal(f.operator.address);
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });

    it('reverts with HubInvalidSignature when the hashlock itself is passed as the preimage', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = { ...(await f.claim({ total: parseEther('10') })), preimage: keccak256(R(1)) };
      const recovered = recoveredHubSigner(f.hubAddress, f.chainId, claim);
      await expect(settle(f, claim))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.operator.address, recovered);
    });
  });

  describe('when a third party front-runs a relayed settlement', () => {
    it('reverts with HubInvalidSignature(provider, recovered), nothing moves, and the named relayer then settles', async () => {
      const f = await loadFixture(freeFundsFixture);
      const total = parseEther('20');
      const relayerFee = parseEther('0.5');
      const claim = await f.claim({ total, relayerFee });
      const payee = await entry.payee(f, f.provider.address);
      const recovered = recoveredAuthorizer(f.hubAddress, f.chainId, claim, f.stranger.address);
      expect(recovered).not.to.equal(f.provider.address);
      const accounts = [f.stranger.address, f.relayer.address, f.beneficiary.address, payee, f.hubAddress];
      const before = await Promise.all(accounts.map((a) => f.token.balanceOf(a)));
      await expect(settle(f, claim, { from: f.stranger }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, recovered);
      expect(await Promise.all(accounts.map((a) => f.token.balanceOf(a)))).to.deep.equal(before);
      expect(await f.hub.providerSettled(f.provider.address)).to.equal(0n);
      const payout = total - hubFeeOf(total) - relayerFee;
      await expect(settle(f, claim, { from: f.relayer })).to.changeTokenBalances(
        f.token,
        [f.relayer, payee, f.stranger],
        [relayerFee, payout, 0n],
      );
      await expectBooksBalanced(f.hub, f.token, f.consumers);
    });
  });

  describe('when the operator pays itself a relayer fee without the provider’s authorization', () => {
    it('reverts with HubInvalidSignature(provider, 0) without a provider signature', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = { ...(await f.claim({ total: parseEther('10') })), relayerFee: parseEther('5') };
      await expect(settle(f, claim, { from: f.operator }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, ZeroAddress);
    });

    it('reverts with HubInvalidSignature(provider, operator) with the operator’s own authorization', async () => {
      const f = await loadFixture(freeFundsFixture);
      const claim = await f.claim({
        total: parseEther('10'),
        relayerFee: parseEther('5'),
        providerSigner: f.operator,
        relayer: f.operator.address,
      });
      await expect(settle(f, claim, { from: f.operator }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, f.operator.address);
    });

    it('reverts with HubInvalidSignature when it raises the fee the provider authorized', async () => {
      const f = await loadFixture(freeFundsFixture);
      const signed = await f.claim({
        total: parseEther('10'),
        relayerFee: parseEther('0.1'),
        relayer: f.operator.address,
      });
      const claim = { ...signed, relayerFee: parseEther('5') };
      const recovered = recoveredAuthorizer(f.hubAddress, f.chainId, claim, f.operator.address);
      expect(recovered).not.to.equal(f.provider.address);
      await expect(settle(f, claim, { from: f.operator }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, recovered);
    });

    it('reverts with HubInvalidSignature when it moves an authorization to another promise', async () => {
      const f = await loadFixture(settledOnceFixture);
      const authorized = await f.claim({
        total: parseEther('30'),
        preimage: R(2),
        relayerFee: parseEther('0.1'),
        relayer: f.operator.address,
      });
      const other = await f.claim({ total: parseEther('40'), preimage: R(3) });
      const claim = { ...other, relayerFee: parseEther('0.1'), providerSignature: authorized.providerSignature };
      const recovered = recoveredAuthorizer(f.hubAddress, f.chainId, claim, f.operator.address);
      expect(recovered).not.to.equal(f.provider.address);
      await expect(settle(f, claim, { from: f.operator }))
        .to.be.revertedWithCustomError(f.hub, 'HubInvalidSignature')
        .withArgs(f.provider.address, recovered);
    });
  });
}
