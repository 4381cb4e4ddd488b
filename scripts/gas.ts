/**
 * Measures the gas of every user-facing operation on the in-process EVM and writes
 * contracts/gas-snapshot.json, a flat `{ "<operation>": gasUsed }` object committed with the code.
 *
 * Settlements are measured on repeat settlements (each channel settled once before, each
 * beneficiary already holding tokens), the steady state of a running hub. Per-promise figures are
 * the batch transaction's gasUsed divided by the batch size. Keys and preimages are derived from fixed
 * seeds, so every run measures the same transactions and gets the same figures.
 *
 *   npm run gas            # measure and write the snapshot
 *   npm run gas -- --check # (CHIT_GAS_CHECK=1) fail if the snapshot is stale or a target is missed
 */
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { type BaseWallet, id, Signature, Wallet } from 'ethers';
import { network } from 'hardhat';
import { DEPOSIT, deployHubFixture } from '../contracts/test/helpers/fixtures';
import { consumerClaim, providerClaim, signTyped } from '../contracts/test/helpers/signing';

const BATCH = 50;
/** Targets from the contracts issue, against Mysterium's contracts on the same EVM. */
const TARGETS: Record<string, number> = {
  'settleConsumer.batch50.perPromise': 20_000,
  'settleProvider.batch50.perPromise': 35_000,
  registerIdentity: 100_000,
};
const seeded = (label: string) => new Wallet(id(`chit-gas-${label}`));
let preimages = 0;
const nextPreimage = () => id(`chit-gas-preimage-${preimages++}`);
const TOKEN = 10n ** 18n;

async function gasOf(tx: Promise<{ wait(): Promise<{ gasUsed: bigint } | null> }>): Promise<bigint> {
  const receipt = await (await tx).wait();
  if (!receipt) throw new Error('transaction was not mined');
  return receipt.gasUsed;
}

async function main(): Promise<void> {
  if (network.name !== 'hardhat') throw new Error('npm run gas measures on the in-process network only');
  const f = await deployHubFixture();
  const { hub, hubAddress, token, registry, chainId, operator, relayer, deployer } = f;
  const snapshot: Record<string, number> = {};
  const record = (name: string, gas: bigint) => {
    snapshot[name] = Number(gas);
  };
  const funder = deployer;
  await token.mint(funder.address, 10n ** 30n);
  await token.connect(funder).approve(hubAddress, 2n ** 255n);

  // Identities: a fresh identity registering itself with a beneficiary.
  const identity = f.stranger;
  record('registerIdentity', await gasOf(registry.connect(identity).registerIdentity(f.beneficiary.address)));

  // Deposits: a consumer's first deposit, which opens its channel.
  const consumer = f.consumer;
  await token.connect(consumer).approve(hubAddress, DEPOSIT);
  record('deposit', await gasOf(hub.connect(consumer).deposit(DEPOSIT)));

  const permitter = seeded('permitter');
  await token.mint(permitter.address, DEPOSIT);
  const deadline = 4_102_444_800n; // 2100-01-01: a fixed value keeps the calldata, and so the gas, fixed
  const permit = Signature.from(
    await signTyped(
      permitter,
      { name: 'Chit Test Token', version: '1', chainId, verifyingContract: await token.getAddress() },
      {
        Permit: [
          { name: 'owner', type: 'address' },
          { name: 'spender', type: 'address' },
          { name: 'value', type: 'uint256' },
          { name: 'nonce', type: 'uint256' },
          { name: 'deadline', type: 'uint256' },
        ],
      },
      'Permit',
      { owner: permitter.address, spender: hubAddress, value: DEPOSIT, nonce: 0n, deadline },
    ),
  );
  record(
    'depositWithPermit',
    await gasOf(
      hub.connect(relayer).depositWithPermit(permitter.address, DEPOSIT, deadline, permit.v, permit.r, permit.s),
    ),
  );

  // Consumer settlement: 1 + BATCH consumers, each settled once before.
  const consumers = Array.from({ length: BATCH + 1 }, (_, i) => seeded(`consumer-${i}`));
  const provider = f.provider.address;
  for (const c of consumers) await hub.connect(funder).depositFor(c.address, DEPOSIT);
  const firstRound = await Promise.all(
    consumers.map((c) =>
      consumerClaim({ hub: hubAddress, chainId, consumer: c, total: TOKEN, provider, preimage: nextPreimage() }),
    ),
  );
  await hub.settleConsumers(firstRound);
  const secondRound = await Promise.all(
    consumers.map((c) =>
      consumerClaim({ hub: hubAddress, chainId, consumer: c, total: 2n * TOKEN, provider, preimage: nextPreimage() }),
    ),
  );
  record('settleConsumer.single', await gasOf(hub.connect(relayer).settleConsumer(secondRound[0])));
  const consumerBatch = await gasOf(hub.connect(relayer).settleConsumers(secondRound.slice(1)));
  record('settleConsumer.batch50', consumerBatch);
  record('settleConsumer.batch50.perPromise', consumerBatch / BigInt(BATCH));

  // Provider settlement: 1 + BATCH providers with their own beneficiaries, each settled once before.
  await hub.connect(funder).addFreeFunds(1_000_000n * TOKEN);
  const providers = Array.from({ length: BATCH + 1 }, (_, i) => seeded(`provider-${i}`));
  for (const [i, p] of providers.entries()) {
    const payout = seeded(`payout-${i}`).address;
    await token.mint(payout, TOKEN);
    await registry.connect(relayer).registerIdentityFor(
      p.address,
      payout,
      0n,
      await signTyped(
        p,
        { name: 'Chit Registry', version: '1', chainId, verifyingContract: await registry.getAddress() },
        {
          RegisterIdentity: [
            { name: 'identity', type: 'address' },
            { name: 'beneficiary', type: 'address' },
            { name: 'relayerFee', type: 'uint256' },
            { name: 'relayer', type: 'address' },
            { name: 'nonce', type: 'uint256' },
          ],
        },
        'RegisterIdentity',
        { identity: p.address, beneficiary: payout, relayerFee: 0n, relayer: relayer.address, nonce: 0n },
      ),
    );
  }
  const claim = (p: BaseWallet, total: bigint, relayerFee: bigint) =>
    providerClaim({
      hub: hubAddress,
      chainId,
      operator,
      provider: p.address,
      total,
      relayerFee,
      providerSigner: p,
      relayer: relayer.address,
      preimage: nextPreimage(),
    });
  await hub.settleProviders(await Promise.all(providers.map((p) => claim(p, TOKEN, 0n))));
  const relayed = await Promise.all(providers.map((p) => claim(p, 2n * TOKEN, TOKEN / 100n)));
  record('settleProvider.single', await gasOf(hub.connect(relayer).settleProvider(relayed[0])));
  const providerBatch = await gasOf(hub.connect(relayer).settleProviders(relayed.slice(1)));
  record('settleProvider.batch50', providerBatch);
  record('settleProvider.batch50.perPromise', providerBatch / BigInt(BATCH));
  const direct = await Promise.all(providers.slice(1).map((p) => claim(p, 3n * TOKEN, 0n)));
  const directBatch = await gasOf(hub.connect(relayer).settleProviders(direct));
  record('settleProvider.batch50.noRelayerFee.perPromise', directBatch / BigInt(BATCH));

  // Exits.
  record('exit.request', await gasOf(hub.connect(consumer).requestExit(DEPOSIT / 2n)));
  await network.provider.send('evm_increaseTime', [Number((await hub.parameters()).exitDelay)]);
  record('exit.finalize', await gasOf(hub.connect(consumer).finalizeExit()));

  const sorted = Object.fromEntries(Object.entries(snapshot).sort(([a], [b]) => a.localeCompare(b)));
  const file = path.join(__dirname, '..', 'contracts', 'gas-snapshot.json');
  const text = `${JSON.stringify(sorted, null, 2)}\n`;
  console.table(
    Object.entries(sorted).map(([operation, gas]) => ({ operation, gas, target: TARGETS[operation] ?? '' })),
  );
  const missed = Object.entries(TARGETS).filter(([operation, target]) => !(sorted[operation]! <= target));
  for (const [operation, target] of missed)
    console.error(`${operation}: ${sorted[operation]} gas, above the target ${target}`);
  const readme = staleReadmeRows(sorted);
  for (const row of readme) console.error(`README.md's gas table is stale: ${row}`);
  if (process.argv.includes('--check') || process.env.CHIT_GAS_CHECK) {
    if (readFileSync(file, 'utf8') !== text) {
      console.error(`${path.relative(process.cwd(), file)} is stale: run npm run gas and commit it`);
      process.exitCode = 1;
    }
    if (readme.length > 0) process.exitCode = 1;
  } else {
    writeFileSync(file, text);
    console.log(`wrote ${path.relative(process.cwd(), file)}`);
  }
  if (missed.length > 0) process.exitCode = 1;
}

/** README.md's gas table quotes the snapshot: each row naming an operation of it must show its figure. */
function staleReadmeRows(snapshot: Record<string, number>): string[] {
  const readme = readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
  const stale: string[] = [];
  for (const [, operation, gas] of readme.matchAll(/^\| `([\w.]+)`[^|]*\| ([\d,]+) \|$/gm)) {
    const actual = snapshot[operation!];
    if (actual !== undefined && Number(gas!.replaceAll(',', '')) !== actual) {
      stale.push(`${operation}: ${gas} there, ${actual.toLocaleString('en-US')} in the snapshot`);
    }
  }
  return stale;
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
