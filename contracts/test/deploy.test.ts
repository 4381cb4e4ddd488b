import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ethers } from 'hardhat';
import { deployChit } from '../../deploy/chit';

describe('deploy', () => {
  const freshDir = () => mkdtempSync(path.join(tmpdir(), 'chit-deployments-'));

  describe('on a local chain', () => {
    it('deploys the test token, the Registry and a first Hub, and records them', async () => {
      const [deployer] = await ethers.getSigners();
      const dir = freshDir();
      const deployment = await deployChit(deployer, { deploymentsDir: dir, hub: { url: 'http://hub.test' } });

      const { chainId } = await ethers.provider.getNetwork();
      const recorded = JSON.parse(readFileSync(path.join(dir, `${chainId}.json`), 'utf8'));
      expect(recorded).to.deep.equal(deployment);
      expect(deployment.token.test).to.equal(true);

      const registry = await ethers.getContractAt('Registry', deployment.registry.address);
      expect(await registry.token()).to.equal(deployment.token.address);
      expect(await registry.hubOf(deployer.address)).to.equal(deployment.hub.address);
      const [record] = await registry.listHubs(0, 10);
      expect(record.url).to.equal('http://hub.test');
      const hub = await ethers.getContractAt('Hub', deployment.hub.address);
      expect(await hub.stake()).to.equal(BigInt(deployment.parameters.minStake));
    });

    it('changes nothing when run again on the same chain', async () => {
      const [deployer] = await ethers.getSigners();
      const dir = freshDir();
      const first = await deployChit(deployer, { deploymentsDir: dir });
      const block = await ethers.provider.getBlockNumber();
      const nonce = await ethers.provider.getTransactionCount(deployer.address);

      const second = await deployChit(deployer, { deploymentsDir: dir });

      expect(second).to.deep.equal(first);
      expect(await ethers.provider.getBlockNumber()).to.equal(block);
      expect(await ethers.provider.getTransactionCount(deployer.address)).to.equal(nonce);
    });
  });

  describe('when the token address holds no contract', () => {
    it('refuses to deploy', async () => {
      const [deployer] = await ethers.getSigners();
      await expect(
        deployChit(deployer, { deploymentsDir: freshDir(), token: ethers.Wallet.createRandom().address }),
      ).to.be.rejectedWith(/no contract at token address/);
    });
  });
});
