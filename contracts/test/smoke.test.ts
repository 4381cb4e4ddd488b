import { loadFixture } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import { fundedHubFixture } from './helpers/fixtures';
import { consumerClaim, providerClaim } from './helpers/signing';

describe('smoke', () => {
  it('settles a consumer and a provider promise', async () => {
    const f = await loadFixture(fundedHubFixture);
    const c = await consumerClaim({
      hub: f.hubAddress,
      chainId: f.chainId,
      consumer: f.consumer,
      total: 10n ** 18n,
      provider: f.provider.address,
    });
    await expect(f.hub.settleConsumer(c)).to.emit(f.hub, 'ConsumerSettled');
    const p = await providerClaim({
      hub: f.hubAddress,
      chainId: f.chainId,
      operator: f.operator,
      provider: f.provider.address,
      total: 10n ** 18n,
      preimage: c.preimage as string,
      relayerFee: 10n ** 16n,
      providerSigner: f.provider,
      relayer: f.relayer.address,
    });
    await expect(f.hub.connect(f.relayer).settleProvider(p)).to.emit(f.hub, 'ProviderSettled');
    expect(await f.token.balanceOf(f.beneficiary.address)).to.equal(10n ** 18n - 10n ** 16n - 10n ** 16n);
  });
});
