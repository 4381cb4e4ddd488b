/** Fixtures, amounts and checks shared by the provider-settlement tests and their behaviour suite. */

import { expect } from 'chai';
import {
  type AddressLike,
  type ContractTransactionResponse,
  id,
  keccak256,
  parseEther,
  recoverAddress,
  TypedDataEncoder,
  toBeHex,
  ZeroAddress,
} from 'ethers';
import { ethers } from 'hardhat';
import type { Hub, IHub } from '../../../typechain-types';
import { fundedHubFixture, HUB_FEE, STAKE } from './fixtures';
import { consumerClaim, hubDomain, hubTypes, providerClaim } from './signing';

export const BPS = 10_000n;
/** The order of the secp256k1 group. */
export const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
export const HALF_N = N / 2n;
export const S_MASK = (1n << 255n) - 1n;

/** HubStatus as the contract numbers it. */
export const Status = { Uninitialized: 0n, Active: 1n, Punished: 2n, Closing: 3n, Closed: 4n } as const;

/** The consumer total settled into the hub's free funds by the fixtures. */
export const FREE = parseEther('50');

/** A deterministic preimage R, so that every signature (and every recovered address) is reproducible. */
export const R = (n: number): string => id(`chit preimage ${n}`);

export const hubFeeOf = (amount: bigint, fee: bigint | number = HUB_FEE): bigint => (amount * BigInt(fee)) / BPS;

/** The smallest promise total whose payout after the hub fee is exactly `net`. */
export const totalForNet = (net: bigint): bigint => {
  let total = (net * BPS) / (BPS - BigInt(HUB_FEE));
  while (total - hubFeeOf(total) < net) total++;
  while (total > 0n && total - 1n - hubFeeOf(total - 1n) >= net) total--;
  expect(total - hubFeeOf(total)).to.equal(net);
  return total;
};

export type Compact = { r: string; vs: string };

/** The EIP-712 digest of a hub promise, as the Hub at `hub` computes it. */
export const hubPromiseDigest = (
  hub: string,
  chainId: bigint,
  provider: string,
  total: bigint,
  preimage: string,
): string =>
  TypedDataEncoder.hash(
    hubDomain(hub, chainId),
    { HubPromise: [...hubTypes.HubPromise] },
    { provider, total, hashlock: keccak256(preimage) },
  );

/** The EIP-712 digest of a provider's relayer-fee authorization. */
export const authorizationDigest = (
  hub: string,
  chainId: bigint,
  hubPromise: { provider: string; total: bigint; preimage: string },
  relayerFee: bigint,
  relayer: string,
): string =>
  TypedDataEncoder.hash(
    hubDomain(hub, chainId),
    { SettlementAuthorization: [...hubTypes.SettlementAuthorization], HubPromise: [...hubTypes.HubPromise] },
    {
      hubPromise: { provider: hubPromise.provider, total: hubPromise.total, hashlock: keccak256(hubPromise.preimage) },
      relayerFee,
      relayer,
    },
  );

/** What ecrecover yields for an EIP-2098 signature, independently of the contract (zero when it fails). */
export const recoverCompact = (digest: string, signature: Compact): string => {
  const vs = BigInt(signature.vs);
  const s = vs & S_MASK;
  if (s > HALF_N) return ZeroAddress;
  try {
    return recoverAddress(digest, { r: signature.r, s: toBeHex(s, 32), v: 27 + Number(vs >> 255n) });
  } catch {
    return ZeroAddress;
  }
};

/** The hub signature of `claim` checked against the promise it states at `hub`. */
export const recoveredHubSigner = (hub: string, chainId: bigint, claim: IHub.ProviderClaimStruct): string =>
  recoverCompact(
    hubPromiseDigest(hub, chainId, claim.provider as string, BigInt(claim.total), claim.preimage as string),
    claim.hubSignature as Compact,
  );

/** The provider signature of `claim` checked against the authorization it states at `hub` when `relayer`
 * submits it (the hub takes the relayer from `msg.sender`). */
export const recoveredAuthorizer = (
  hub: string,
  chainId: bigint,
  claim: IHub.ProviderClaimStruct,
  relayer: string,
): string =>
  recoverCompact(
    authorizationDigest(
      hub,
      chainId,
      { provider: claim.provider as string, total: BigInt(claim.total), preimage: claim.preimage as string },
      BigInt(claim.relayerFee),
      relayer,
    ),
    claim.providerSignature as Compact,
  );

export interface Balances {
  balanceOf(account: AddressLike): Promise<bigint>;
}

/** The accounting invariant: the hub holds exactly the consumer balances, the stake and the free funds. */
export async function expectBooksBalanced(hub: Hub, token: Balances, consumers: string[]): Promise<void> {
  let balances = 0n;
  for (const consumer of consumers) balances += (await hub.consumerChannel(consumer)).balance;
  expect(await token.balanceOf(await hub.getAddress())).to.equal(
    balances + (await hub.stake()) + (await hub.freeFunds()),
  );
}

/** The `ProviderSettled` events of `tx`, in order, as plain arrays. */
export async function providerSettledEvents(hub: Hub, tx: ContractTransactionResponse): Promise<unknown[][]> {
  const receipt = await tx.wait();
  const hubAddress = await hub.getAddress();
  const events: unknown[][] = [];
  for (const log of receipt!.logs) {
    if (log.address !== hubAddress) continue;
    const parsed = hub.interface.parseLog(log);
    if (parsed?.name === 'ProviderSettled') events.push(parsed.args.toArray());
  }
  return events;
}

/** Counts the logs of `tx` named `name` that `hub` emitted. */
export async function countEvents(hub: Hub, tx: ContractTransactionResponse, name: string): Promise<number> {
  const receipt = await tx.wait();
  const hubAddress = await hub.getAddress();
  return receipt!.logs.filter((log) => log.address === hubAddress && hub.interface.parseLog(log)?.name === name).length;
}

export interface ClaimOptions {
  total: bigint;
  preimage?: string;
  relayerFee?: bigint;
  provider?: string;
  providerSigner?: Parameters<typeof providerClaim>[0]['providerSigner'];
  relayer?: string;
  operator?: Parameters<typeof providerClaim>[0]['operator'];
  hub?: string;
  chainId?: bigint;
}

// ---------------------------------------------------------------- fixtures

/** A funded hub whose consumer settled FREE into the hub's free funds (hashlock of R(1)). */
export async function freeFundsFixture() {
  const f = await fundedHubFixture();
  const settledConsumer = await consumerClaim({
    hub: f.hubAddress,
    chainId: f.chainId,
    consumer: f.consumer,
    total: FREE,
    provider: f.provider.address,
    preimage: R(1),
  });
  await f.hub.settleConsumer(settledConsumer);
  const claim = (options: ClaimOptions) =>
    providerClaim({
      hub: f.hubAddress,
      chainId: f.chainId,
      operator: f.operator,
      provider: f.provider.address,
      providerSigner: f.provider,
      relayer: f.relayer.address,
      preimage: R(1),
      ...options,
    });
  return { ...f, claim, tokenAddress: await f.token.getAddress(), consumers: [f.consumer.address] };
}

/** What every provider-settlement fixture holds. */
export type ProviderFixture = Awaited<ReturnType<typeof freeFundsFixture>>;

/** The provider has already settled a promise of 20 tokens, for itself and without a relayer fee. */
export async function settledOnceFixture() {
  const f = await freeFundsFixture();
  const first = await f.claim({ total: parseEther('20') });
  await f.hub.connect(f.provider).settleProvider(first);
  return { ...f, first };
}

/** Free funds of only 10 tokens, so that larger claims reach into the stake. */
export async function lowFreeFundsFixture() {
  const f = await freeFundsFixture();
  await f.hub.connect(f.operator).withdrawFreeFunds(f.operator.address, FREE - parseEther('10'));
  return f;
}

export const PUNISHING_TOTAL = parseEther('60');

/** A claim of 60 tokens paid from 10 tokens of free funds and 49.4 tokens of stake. */
export async function punishedFixture() {
  const f = await lowFreeFundsFixture();
  const claim = await f.claim({ total: PUNISHING_TOTAL });
  await f.hub.connect(f.provider).settleProvider(claim);
  const outflow = PUNISHING_TOTAL - hubFeeOf(PUNISHING_TOTAL);
  const owed = outflow - parseEther('10');
  return { ...f, owed };
}

/** A second hub of the same Registry, run by `otherOperator`. */
export async function twoHubsFixture() {
  const f = await freeFundsFixture();
  await f.token.connect(f.otherOperator).approve(f.registryAddress, STAKE);
  await f.registry.connect(f.otherOperator).registerHub(STAKE, HUB_FEE, 'https://other.example.org');
  const otherHubAddress = await f.registry.hubOf(f.otherOperator.address);
  const otherHub = (await ethers.getContractAt('Hub', otherHubAddress)) as unknown as Hub;
  await f.token.connect(f.otherOperator).approve(otherHubAddress, FREE);
  await otherHub.connect(f.otherOperator).addFreeFunds(FREE);
  return { ...f, otherHub, otherHubAddress };
}

/** Providers for a batch: `provider` (registered to `beneficiary`, already settled 10), a second registered
 * provider paid to its own beneficiary, and an unregistered one paid to itself. */
export async function batchFixture() {
  const f = await freeFundsFixture();
  const [second, secondBeneficiary, third] = f.signers.slice(8, 11);
  await f.registry.connect(second).registerIdentity(secondBeneficiary.address);
  await f.hub.connect(f.provider).settleProvider(await f.claim({ total: parseEther('10') }));
  return { ...f, second, secondBeneficiary, third };
}
