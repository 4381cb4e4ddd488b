import { loadFixture, setBalance, time } from '@nomicfoundation/hardhat-network-helpers';
import { expect } from 'chai';
import {
  type ContractTransactionResponse,
  keccak256,
  MaxUint256,
  Signature,
  type TransactionReceipt,
  toUtf8Bytes,
  Wallet,
} from 'ethers';
import fc from 'fast-check';
import { ethers } from 'hardhat';
import type { Hub, IHub } from '../../typechain-types';
import { deployRegistryFixture, HUB_FEE, HUB_URL, PARAMETERS } from './helpers/fixtures';
import {
  agreementId,
  compact,
  consumerClaim,
  EMPTY_SIGNATURE,
  hubDomain,
  hubTypes,
  instantExitSignature,
  signTyped,
} from './helpers/signing';

// Property tests of contract rule 8 in docs/design.md: random sequences of operations, valid and invalid,
// run against the in-process EVM and a model of the hub kept by this file. After every step the on-chain books
// must balance and match the model. CHIT_PROPERTY_RUNS and CHIT_PROPERTY_STEPS make the runs longer;
// CHIT_PROPERTY_SEED (with CHIT_PROPERTY_PATH) replays a failure fast-check reported;
// CHIT_PROPERTY_STATS=1 prints how often each operation succeeded, reverted or had nothing to do.

const E18 = 10n ** 18n;
const BPS = 10_000n;
const CONSUMERS = 3;
const PROVIDERS = 3;
/** A small stake, so that claims can exhaust it. */
const HUB_STAKE = PARAMETERS.minStake + 500n * E18;
const CONSUMER_TOKENS = 600n * E18;
const MAX_AMOUNT = 400n * E18;
/** What each consumer has in its channel when a sequence starts, so that early steps have something to do. */
const OPENING_DEPOSIT = 200n * E18;
/** An explicit gas limit: no gas estimation, so every transaction runs once, in its own block. */
const GAS = { gasLimit: 3_000_000n };
const INSTANT_EXIT_VALIDITY = 600n;

const RUNS = Number(process.env.CHIT_PROPERTY_RUNS ?? 150);
const MAX_STEPS = Number(process.env.CHIT_PROPERTY_STEPS ?? 50);
const SEED = process.env.CHIT_PROPERTY_SEED === undefined ? undefined : Number(process.env.CHIT_PROPERTY_SEED);
const PATH = process.env.CHIT_PROPERTY_PATH;
const STATS = process.env.CHIT_PROPERTY_STATS === '1';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);
const min = (a: bigint, b: bigint): bigint => (a < b ? a : b);
/** `start`, or the next index after it (cyclically) that satisfies `has`; `start` when none does. */
const firstWith = (start: number, n: number, has: (i: number) => boolean): number =>
  range(n)
    .map((k) => (start + k) % n)
    .find(has) ?? start;

/**
 * `share` basis points of `reference`; above 10,000 it is strictly beyond `reference`, by 0.01 token
 * per basis point over, so that "beyond" means something even when the reference is zero.
 */
const scaled = (reference: bigint, share: number): bigint =>
  share <= 10_000 ? (reference * BigInt(share)) / BPS : reference + (BigInt(share - 10_000) * E18) / 100n;

// ---------------------------------------------------------------- fixture

const wallet = (label: string): Wallet =>
  new Wallet(keccak256(toUtf8Bytes(`chit invariants ${label}`)), ethers.provider);

/** A hub with a small stake, consumers and providers as funded Wallets, providers registered with fresh beneficiaries. */
async function invariantsFixture() {
  const base = await deployRegistryFixture();
  const { deployer, operator, relayer, stranger, token, registry, registryAddress, chainId } = base;
  await token.connect(operator).approve(registryAddress, HUB_STAKE);
  await registry.connect(operator).registerHub(HUB_STAKE, HUB_FEE, HUB_URL);
  const hubAddress = await registry.hubOf(operator.address);
  const hub = (await ethers.getContractAt('Hub', hubAddress)) as unknown as Hub;

  const consumers = range(CONSUMERS).map((i) => wallet(`consumer ${i}`));
  const providers = range(PROVIDERS).map((i) => wallet(`provider ${i}`));
  const beneficiaries = range(PROVIDERS).map((i) => wallet(`beneficiary ${i}`).address);
  const treasury = wallet('treasury').address;
  for (const account of [...consumers, ...providers]) await setBalance(account.address, 100n * E18);
  for (const consumer of consumers) await token.mint(consumer.address, CONSUMER_TOKENS);
  for (const [i, provider] of providers.entries()) {
    await registry.connect(provider).registerIdentity(beneficiaries[i]);
  }
  // The operator funds stake and free funds; the stranger deposits for consumers.
  await token.connect(operator).approve(hubAddress, MaxUint256);
  await token.connect(stranger).approve(hubAddress, MaxUint256);
  for (const consumer of consumers) await hub.connect(stranger).depositFor(consumer.address, OPENING_DEPOSIT);

  return {
    token,
    hub,
    hubAddress,
    tokenAddress: await token.getAddress(),
    chainId,
    operator,
    relayer,
    depositor: stranger,
    settler: deployer,
    consumers,
    providers,
    beneficiaries,
    treasury,
  };
}

type Fixture = Awaited<ReturnType<typeof invariantsFixture>>;

// ---------------------------------------------------------------- operations (plain data)

/**
 * Which signed promise a settlement submits: the consumer's (or, when it signed none, the next consumer's
 * that did); `back` 0 is the newest, higher is older (stale once newer ones settled).
 */
interface ConsumerPick {
  consumer: number;
  back: number;
  /** Submit the claim with its total raised by one wei, which the signature no longer covers. */
  tamper: boolean;
}

/** Like {@link ConsumerPick}, for the hub's promises to a provider. */
interface ProviderPick {
  provider: number;
  back: number;
  /** Relayer fee in basis points of the provider's net payout; above 10,000 it is too high. */
  relayerShare: number;
  /** `total`: the hub signature no longer matches; `authorization`: the relayer fee is not signed by the provider;
   * `relayer`: the provider's authorization names another relayer than the submitter. */
  tamper: 'none' | 'total' | 'authorization' | 'relayer';
}

type Op =
  | {
      kind: 'deposit';
      consumer: number;
      amount: bigint;
      via: 'deposit' | 'depositFor' | 'permit' | 'frontRunPermit' | 'forgedPermit';
    }
  /** The consumer signs a promise (`share` of what it may still promise; beyond it above 10,000), the hub a matching one. */
  | { kind: 'promise'; consumer: number; provider: number; share: number }
  /** The operator signs a promise to a provider that no consumer pays for: it may be unable to pay it. */
  | { kind: 'hubPromise'; provider: number; amount: bigint }
  | { kind: 'settleConsumer'; pick: ConsumerPick }
  | { kind: 'settleConsumers'; picks: ConsumerPick[] }
  | { kind: 'settleProvider'; pick: ProviderPick; relayed: boolean }
  | { kind: 'settleProviders'; picks: ProviderPick[] }
  | { kind: 'requestExit'; consumer: number; share: number }
  /** For exits, the consumer or, when it has no exit pending, the next one that has. */
  | { kind: 'cancelExit'; consumer: number }
  | { kind: 'finalizeExit'; consumer: number }
  | { kind: 'instantExit'; consumer: number; share: number; variant: 'fresh' | 'expired' | 'replayed' }
  | { kind: 'scheduleFee'; fee: number }
  | { kind: 'addFreeFunds'; amount: bigint }
  | { kind: 'withdrawFreeFunds'; share: number }
  | { kind: 'increaseStake'; amount: bigint }
  | { kind: 'decreaseStake'; share: number }
  | { kind: 'advanceTime'; seconds: number };

const consumerArb = fc.nat({ max: CONSUMERS - 1 });
const providerArb = fc.nat({ max: PROVIDERS - 1 });
/** Basis points of a reference amount: mostly within it, sometimes zero, sometimes beyond it. */
const shareArb = fc.oneof(
  { weight: 10, arbitrary: fc.integer({ min: 1, max: 10_000 }) },
  { weight: 1, arbitrary: fc.constant(0) },
  { weight: 2, arbitrary: fc.integer({ min: 10_001, max: 15_000 }) },
);
const amountArb = fc.oneof(
  { weight: 12, arbitrary: fc.bigInt({ min: 1n, max: MAX_AMOUNT }) },
  { weight: 1, arbitrary: fc.constant(0n) },
);
const backArb = fc.oneof(
  { weight: 4, arbitrary: fc.constant(0) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 4 }) },
);
const consumerPickArb: fc.Arbitrary<ConsumerPick> = fc.record({
  consumer: consumerArb,
  back: backArb,
  tamper: fc.oneof({ weight: 15, arbitrary: fc.constant(false) }, { weight: 1, arbitrary: fc.constant(true) }),
});
const providerPickArb: fc.Arbitrary<ProviderPick> = fc.record({
  provider: providerArb,
  back: backArb,
  relayerShare: fc.oneof(
    { weight: 3, arbitrary: fc.constant(0) },
    { weight: 6, arbitrary: fc.integer({ min: 1, max: 10_000 }) },
    { weight: 1, arbitrary: fc.integer({ min: 10_001, max: 15_000 }) },
  ),
  tamper: fc.oneof(
    { weight: 20, arbitrary: fc.constant('none' as const) },
    { weight: 1, arbitrary: fc.constant('total' as const) },
    { weight: 1, arbitrary: fc.constant('authorization' as const) },
    { weight: 1, arbitrary: fc.constant('relayer' as const) },
  ),
});
const EXIT_DELAY = Number(PARAMETERS.exitDelay);
const FEE_DELAY = Number(PARAMETERS.feeDelay);
/** Time steps: short, about the exit delay, well past it, about the fee delay. */
const secondsArb = fc.oneof(
  fc.integer({ min: 1, max: 3_600 }),
  fc.integer({ min: EXIT_DELAY - 120, max: EXIT_DELAY + 120 }),
  fc.integer({ min: EXIT_DELAY, max: 2 * EXIT_DELAY }),
  fc.integer({ min: FEE_DELAY - 120, max: FEE_DELAY + 120 }),
);

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant('deposit'),
      consumer: consumerArb,
      amount: amountArb,
      via: fc.oneof(
        { weight: 3, arbitrary: fc.constantFrom('deposit', 'depositFor', 'permit') },
        { weight: 1, arbitrary: fc.constantFrom('frontRunPermit', 'forgedPermit') },
      ),
    }),
  },
  {
    weight: 7,
    arbitrary: fc.record({
      kind: fc.constant('promise'),
      consumer: consumerArb,
      provider: providerArb,
      share: shareArb,
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('hubPromise'),
      provider: providerArb,
      amount: fc.bigInt({ min: 1n, max: 3n * MAX_AMOUNT }),
    }),
  },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('settleConsumer'), pick: consumerPickArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('settleConsumers'),
      picks: fc.array(consumerPickArb, { minLength: 1, maxLength: 5 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({ kind: fc.constant('settleProvider'), pick: providerPickArb, relayed: fc.boolean() }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('settleProviders'),
      picks: fc.array(providerPickArb, { minLength: 1, maxLength: 5 }),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('requestExit'), consumer: consumerArb, share: shareArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancelExit'), consumer: consumerArb }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('finalizeExit'), consumer: consumerArb }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('instantExit'),
      consumer: consumerArb,
      share: shareArb,
      variant: fc.oneof(
        { weight: 3, arbitrary: fc.constant('fresh' as const) },
        { weight: 1, arbitrary: fc.constant('expired' as const) },
        { weight: 1, arbitrary: fc.constant('replayed' as const) },
      ),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('scheduleFee'),
      fee: fc.oneof(
        { weight: 6, arbitrary: fc.integer({ min: 0, max: PARAMETERS.maxFee }) },
        { weight: 1, arbitrary: fc.integer({ min: PARAMETERS.maxFee + 1, max: 65_535 }) },
      ),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('addFreeFunds'), amount: amountArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('withdrawFreeFunds'), share: shareArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('increaseStake'), amount: amountArb }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('decreaseStake'), share: shareArb }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('advanceTime'), seconds: secondsArb }) },
);

// ---------------------------------------------------------------- model

type CompactSig = { r: string; vs: string };

interface SignedConsumerClaim {
  consumer: string;
  total: bigint;
  agreementHash: string;
  preimage: string;
  signature: CompactSig;
}

interface SignedHubPromise {
  provider: string;
  total: bigint;
  preimage: string;
  hubSignature: CompactSig;
}

interface InstantExitGrant {
  amount: bigint;
  deadline: bigint;
  nonce: bigint;
  signature: string;
}

interface ConsumerModel {
  balance: bigint;
  settled: bigint;
  exit?: { amount: bigint; readyAt: bigint };
  /** Instant-exit nonce. */
  nonce: bigint;
  /** The hub's token allowance from this consumer. */
  allowance: bigint;
  /** The highest total this consumer ever signed. */
  signedMax: bigint;
  claims: SignedConsumerClaim[];
  agreementTotals: bigint[];
  grants: InstantExitGrant[];
}

interface ProviderModel {
  settled: bigint;
  /** The highest total the hub ever signed for this provider. */
  signedMax: bigint;
  promises: SignedHubPromise[];
}

interface Model {
  /** Timestamp of the latest block. */
  now: bigint;
  stake: bigint;
  freeFunds: bigint;
  stakeOwed: bigint;
  fee: bigint;
  pendingFee: bigint;
  pendingFeeAt: bigint;
  consumers: ConsumerModel[];
  providers: ProviderModel[];
  /** Expected token balance of every account the test watches. */
  tokens: Map<string, bigint>;
  preimages: number;
}

/** Facts read from the hub's events, independent of the model's arithmetic. */
interface Ledger {
  deposits: bigint[];
  exits: bigint[];
  consumerSettled: bigint[];
  hubFees: bigint[];
  relayerFees: bigint[];
}

type Outcome = { ok: true; receipt: TransactionReceipt } | { ok: false; error: string };

/** What a step did, for the failure report and the statistics. */
type StepResult = 'ok' | `revert ${string}` | `skip ${string}`;

const stats = new Map<string, Map<string, number>>();
const count = (op: Op, result: StepResult): void => {
  const kind =
    op.kind === 'deposit' ? `deposit/${op.via}` : op.kind === 'instantExit' ? `instantExit/${op.variant}` : op.kind;
  const key = result.startsWith('skip') ? 'skip' : result;
  const byResult = stats.get(kind) ?? new Map<string, number>();
  byResult.set(key, (byResult.get(key) ?? 0) + 1);
  stats.set(kind, byResult);
};

function revertData(error: unknown, depth = 0): string | undefined {
  if (depth > 6 || typeof error !== 'object' || error === null) return undefined;
  const record = error as Record<string, unknown>;
  if (typeof record.data === 'string' && /^0x[0-9a-fA-F]{8}/.test(record.data)) return record.data;
  for (const key of ['data', 'error', 'info', 'cause']) {
    const found = revertData(record[key], depth + 1);
    if (found) return found;
  }
  return undefined;
}

class World {
  readonly log: string[] = [];
  private readonly ledger: Ledger = {
    deposits: range(CONSUMERS).map(() => OPENING_DEPOSIT),
    exits: range(CONSUMERS).map(() => 0n),
    consumerSettled: range(CONSUMERS).map(() => 0n),
    hubFees: range(PROVIDERS).map(() => 0n),
    relayerFees: range(PROVIDERS).map(() => 0n),
  };

  private constructor(
    private readonly f: Fixture,
    private readonly model: Model,
    private readonly watched: { name: string; address: string }[],
    /** Token balances at the start, before any step. */
    private readonly initial: Map<string, bigint>,
  ) {}

  static async start(f: Fixture): Promise<World> {
    const watched = [
      { name: 'hub', address: f.hubAddress },
      ...f.consumers.map((c, i) => ({ name: `consumer ${i}`, address: c.address })),
      ...f.providers.map((p, i) => ({ name: `provider ${i}`, address: p.address })),
      ...f.beneficiaries.map((b, i) => ({ name: `beneficiary ${i}`, address: b })),
      { name: 'relayer', address: f.relayer.address },
      { name: 'operator', address: f.operator.address },
      { name: 'depositor', address: f.depositor.address },
      { name: 'settler', address: f.settler.address },
      { name: 'treasury', address: f.treasury },
    ];
    const tokens = new Map<string, bigint>();
    for (const { address } of watched) tokens.set(address, await f.token.balanceOf(address));
    expect(tokens.get(f.hubAddress)).to.equal(HUB_STAKE + BigInt(CONSUMERS) * OPENING_DEPOSIT);
    const model: Model = {
      now: BigInt(await time.latest()),
      stake: HUB_STAKE,
      freeFunds: 0n,
      stakeOwed: 0n,
      fee: BigInt(HUB_FEE),
      pendingFee: BigInt(HUB_FEE),
      pendingFeeAt: 0n,
      consumers: range(CONSUMERS).map(() => ({
        balance: OPENING_DEPOSIT,
        settled: 0n,
        nonce: 0n,
        allowance: 0n,
        signedMax: 0n,
        claims: [],
        agreementTotals: range(PROVIDERS).map(() => 0n),
        grants: [],
      })),
      providers: range(PROVIDERS).map(() => ({ settled: 0n, signedMax: 0n, promises: [] })),
      tokens,
      preimages: 0,
    };
    return new World(f, model, watched, new Map(tokens));
  }

  // ------------------------------------------------------------ plumbing

  /** The timestamp the next transaction will carry. */
  private get next(): bigint {
    return this.model.now + 1n;
  }

  private feeAt(timestamp: bigint): bigint {
    const m = this.model;
    return m.pendingFeeAt !== 0n && timestamp >= m.pendingFeeAt ? m.pendingFee : m.fee;
  }

  private move(from: string, to: string, amount: bigint): void {
    const { tokens } = this.model;
    tokens.set(from, (tokens.get(from) ?? 0n) - amount);
    tokens.set(to, (tokens.get(to) ?? 0n) + amount);
  }

  private tokensOf(address: string): bigint {
    return this.model.tokens.get(address) ?? 0n;
  }

  /** Sends one transaction in a block of its own at timestamp `next`, and records its hub events. */
  private async attempt(send: (overrides: typeof GAS) => Promise<ContractTransactionResponse>): Promise<Outcome> {
    this.model.now = this.next;
    await time.setNextBlockTimestamp(this.model.now);
    try {
      const receipt = await (await send(GAS)).wait();
      if (!receipt) throw new Error('no receipt');
      this.record(receipt);
      return { ok: true, receipt };
    } catch (error) {
      return { ok: false, error: this.errorName(error) };
    }
  }

  private errorName(error: unknown): string {
    const data = revertData(error);
    if (!data) return `(no revert data: ${String((error as Error).message ?? error).split('\n')[0]})`;
    for (const iface of [this.f.hub.interface, this.f.token.interface]) {
      const parsed = iface.parseError(data);
      if (parsed) return parsed.name;
    }
    return `(unknown error ${data.slice(0, 10)})`;
  }

  /** Fails unless the transaction reverted with `expected`, or succeeded when `expected` is undefined. */
  private expectOutcome(outcome: Outcome, expected: string | undefined): StepResult {
    if (expected === undefined) {
      if (!outcome.ok) throw new Error(`the model expected success, the contract reverted with ${outcome.error}`);
      return 'ok';
    }
    if (outcome.ok) throw new Error(`the model expected a revert with ${expected}, the transaction succeeded`);
    if (outcome.error !== expected) {
      throw new Error(`the model expected a revert with ${expected}, the contract reverted with ${outcome.error}`);
    }
    return `revert ${expected}`;
  }

  private record(receipt: TransactionReceipt): void {
    const { hub, consumers, providers } = this.f;
    const consumerIndex = (address: string) => consumers.findIndex((c) => c.address === address);
    const providerIndex = (address: string) => providers.findIndex((p) => p.address === address);
    for (const log of receipt.logs) {
      if (log.address !== this.f.hubAddress) continue;
      const event = hub.interface.parseLog(log);
      if (!event) continue;
      const a = event.args;
      switch (event.name) {
        case 'Deposited':
          this.ledger.deposits[consumerIndex(a.consumer)] += a.amount;
          break;
        case 'ConsumerSettled':
          this.ledger.consumerSettled[consumerIndex(a.consumer)] += a.amount;
          break;
        case 'ExitFinalized':
        case 'InstantExited':
          this.ledger.exits[consumerIndex(a.consumer)] += a.amount;
          break;
        case 'ProviderSettled':
          this.ledger.hubFees[providerIndex(a.provider)] += a.hubFee;
          this.ledger.relayerFees[providerIndex(a.provider)] += a.relayerFee;
          break;
      }
    }
  }

  // ------------------------------------------------------------ operations

  async apply(op: Op): Promise<StepResult> {
    switch (op.kind) {
      case 'deposit':
        return this.deposit(op);
      case 'promise':
        return this.promise(op);
      case 'hubPromise':
        await this.signHubPromise(op.provider, op.amount, this.newPreimage());
        return 'ok';
      case 'settleConsumer':
        return this.settleConsumers([op.pick], true);
      case 'settleConsumers':
        return this.settleConsumers(op.picks, false);
      case 'settleProvider':
        return this.settleProviders([op.pick], true, op.relayed);
      case 'settleProviders':
        return this.settleProviders(op.picks, false, true);
      case 'requestExit':
        return this.requestExit(op);
      case 'cancelExit':
        return this.cancelExit(op);
      case 'finalizeExit':
        return this.finalizeExit(op);
      case 'instantExit':
        return this.instantExit(op);
      case 'scheduleFee':
        return this.scheduleFee(op);
      case 'addFreeFunds':
        return this.addFreeFunds(op);
      case 'withdrawFreeFunds':
        return this.withdrawFreeFunds(op);
      case 'increaseStake':
        return this.increaseStake(op);
      case 'decreaseStake':
        return this.decreaseStake(op);
      case 'advanceTime':
        this.model.now += BigInt(op.seconds);
        await time.increaseTo(this.model.now);
        return 'ok';
    }
  }

  private async deposit(op: Extract<Op, { kind: 'deposit' }>): Promise<StepResult> {
    const { hub, token, hubAddress } = this.f;
    const consumer = this.f.consumers[op.consumer];
    const c = this.model.consumers[op.consumer];
    const { amount, via } = op;
    const payer = via === 'depositFor' ? this.f.depositor.address : consumer.address;
    const expectedTransfer =
      amount === 0n ? 'HubZeroAmount' : this.tokensOf(payer) < amount ? 'ERC20InsufficientBalance' : undefined;
    let expected = expectedTransfer;
    let outcome: Outcome;

    if (via === 'deposit') {
      if (amount > 0n) {
        this.expectOutcome(
          await this.attempt((o) => token.connect(consumer).approve(hubAddress, amount, o)),
          undefined,
        );
        c.allowance = amount;
      }
      outcome = await this.attempt((o) => hub.connect(consumer).deposit(amount, o));
    } else if (via === 'depositFor') {
      outcome = await this.attempt((o) => hub.connect(this.f.depositor).depositFor(consumer.address, amount, o));
    } else if (via === 'forgedPermit') {
      // A permit the consumer never signed: refused, whatever allowance the consumer gave.
      const junk = `0x${'11'.repeat(32)}`;
      expected = amount === 0n ? 'HubZeroAmount' : 'HubPermitFailed';
      outcome = await this.attempt((o) =>
        hub.connect(this.f.relayer).depositWithPermit(consumer.address, amount, this.next + 3_600n, 27, junk, junk, o),
      );
    } else {
      const deadline = this.next + 3_600n;
      const { v, r, s } = await this.signPermit(op.consumer, amount, deadline);
      if (via === 'frontRunPermit') {
        // Someone submits the permit to the token first; the deposit must still go through on the allowance.
        const frontRun = await this.attempt((o) =>
          token.connect(this.f.depositor).permit(consumer.address, hubAddress, amount, deadline, v, r, s, o),
        );
        this.expectOutcome(frontRun, undefined);
      }
      // Either way the allowance is now `amount` (the permit is undone with the deposit if the deposit reverts).
      if (via === 'frontRunPermit' || expectedTransfer === undefined) c.allowance = amount;
      outcome = await this.attempt((o) =>
        hub.connect(this.f.relayer).depositWithPermit(consumer.address, amount, deadline, v, r, s, o),
      );
    }

    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok && via !== 'depositFor') c.allowance -= amount;
    if (outcome.ok) {
      c.balance += amount;
      this.move(payer, hubAddress, amount);
    }
    return result;
  }

  /** The consumer's EIP-2612 permit for the hub to take `amount`. */
  private async signPermit(index: number, amount: bigint, deadline: bigint): Promise<Signature> {
    const { token, hubAddress } = this.f;
    const consumer = this.f.consumers[index];
    const domain = {
      name: await token.name(),
      version: '1',
      chainId: this.f.chainId,
      verifyingContract: this.f.tokenAddress,
    };
    const types = {
      Permit: [
        { name: 'owner', type: 'address' },
        { name: 'spender', type: 'address' },
        { name: 'value', type: 'uint256' },
        { name: 'nonce', type: 'uint256' },
        { name: 'deadline', type: 'uint256' },
      ],
    };
    const nonce = await token.nonces(consumer.address);
    const value = { owner: consumer.address, spender: hubAddress, value: amount, nonce, deadline };
    return Signature.from(await consumer.signTypedData(domain, types, value));
  }

  /** The consumer signs a promise to the hub, and the hub a promise to the provider, with one hashlock. */
  private async promise(op: Extract<Op, { kind: 'promise' }>): Promise<StepResult> {
    const c = this.model.consumers[op.consumer];
    const provider = this.f.providers[op.provider].address;
    // What the hub lets a consumer promise: its balance, less a pending exit, beyond what it settled.
    const unpromised = c.balance - (c.exit?.amount ?? 0n) + c.settled - c.signedMax;
    const increment = scaled(unpromised > 0n ? unpromised : 0n, op.share);
    if (increment === 0n) return 'skip nothing to promise';

    const preimage = this.newPreimage();
    c.signedMax += increment;
    c.agreementTotals[op.provider] += increment;
    const claim = await consumerClaim({
      hub: this.f.hubAddress,
      chainId: this.f.chainId,
      consumer: this.f.consumers[op.consumer],
      total: c.signedMax,
      provider,
      agreement: {
        id: agreementId(op.consumer * PROVIDERS + op.provider + 1),
        total: c.agreementTotals[op.provider],
      },
      preimage,
    });
    c.claims.push({ ...claim, total: c.signedMax } as SignedConsumerClaim);

    await this.signHubPromise(op.provider, increment, preimage);
    return 'ok';
  }

  private newPreimage(): string {
    this.model.preimages += 1;
    return keccak256(toUtf8Bytes(`preimage ${this.model.preimages}`));
  }

  /** The operator raises its cumulative promise to `provider` by `increment`, under the hashlock of `preimage`. */
  private async signHubPromise(index: number, increment: bigint, preimage: string): Promise<void> {
    const p = this.model.providers[index];
    const provider = this.f.providers[index].address;
    p.signedMax += increment;
    const hubSignature = await signTyped(
      this.f.operator,
      hubDomain(this.f.hubAddress, this.f.chainId),
      hubTypes,
      'HubPromise',
      { provider, total: p.signedMax, hashlock: keccak256(preimage) },
    );
    p.promises.push({ provider, total: p.signedMax, preimage, hubSignature: compact(hubSignature) });
  }

  private async settleConsumers(picks: ConsumerPick[], single: boolean): Promise<StepResult> {
    const signed = (i: number) => this.model.consumers[i].claims.length > 0;
    const chosen = picks.flatMap((pick) => {
      const index = firstWith(pick.consumer, CONSUMERS, signed);
      const { claims } = this.model.consumers[index];
      if (claims.length === 0) return [];
      const claim = claims[claims.length - 1 - (pick.back % claims.length)];
      return [{ index, claim: pick.tamper ? { ...claim, total: claim.total + 1n } : claim, pick }];
    });
    if (chosen.length === 0) return 'skip no consumer promise signed';

    // Simulate on copies of the channels.
    const channels = this.model.consumers.map((c) => ({ balance: c.balance, settled: c.settled }));
    let moved = 0n;
    let expected: string | undefined;
    for (const { index, claim, pick } of chosen) {
      const channel = channels[index];
      if (pick.tamper) {
        expected = 'HubInvalidSignature';
        break;
      }
      const nothingToSettle =
        claim.total <= channel.settled
          ? 'HubConsumerPromiseStale'
          : channel.balance === 0n
            ? 'HubConsumerBalanceEmpty'
            : undefined;
      if (nothingToSettle) {
        // The single form rejects what the batch form skips.
        if (!single) continue;
        expected = nothingToSettle;
        break;
      }
      const amount = min(claim.total - channel.settled, channel.balance);
      channel.balance -= amount;
      channel.settled += amount;
      moved += amount;
    }

    const hub = this.f.hub.connect(this.f.settler);
    const claims = chosen.map(({ claim }) => claim);
    const outcome = await this.attempt((o) =>
      single ? hub.settleConsumer(claims[0], o) : hub.settleConsumers(claims, o),
    );
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      for (const [i, channel] of channels.entries()) {
        this.model.consumers[i].balance = channel.balance;
        this.model.consumers[i].settled = channel.settled;
      }
      this.model.freeFunds += moved;
    }
    return result;
  }

  private async settleProviders(picks: ProviderPick[], single: boolean, relayed: boolean): Promise<StepResult> {
    const signed = (i: number) => this.model.providers[i].promises.length > 0;
    const chosen = picks.flatMap((pick) => {
      const index = firstWith(pick.provider, PROVIDERS, signed);
      const { promises } = this.model.providers[index];
      if (promises.length === 0) return [];
      return [{ index, promise: promises[promises.length - 1 - (pick.back % promises.length)], pick }];
    });
    if (chosen.length === 0) return 'skip no hub promise signed';

    const m = this.model;
    const fee = this.feeAt(this.next);
    const settled = m.providers.map((p) => p.settled);
    const payouts: { beneficiary: string; net: bigint; relayerFee: bigint }[] = [];
    let expected: string | undefined;
    const claims: IHub.ProviderClaimStruct[] = [];
    for (const { index, promise, pick } of chosen) {
      const amount = promise.total > settled[index] ? promise.total - settled[index] : 0n;
      const hubFee = (amount * fee) / BPS;
      const relayerFee = relayed ? scaled(amount - hubFee, pick.relayerShare) : 0n;
      claims.push(await this.providerClaim(index, promise, pick, relayerFee));
      if (expected) continue;
      if (pick.tamper === 'total') {
        expected = 'HubInvalidSignature';
      } else if (amount === 0n) {
        // Stale: the single form rejects it, the batch form skips it.
        if (single) expected = 'HubProviderPromiseStale';
      } else if (relayerFee > amount - hubFee) {
        expected = 'HubRelayerFeeTooHigh';
      } else if (relayerFee > 0n && (pick.tamper === 'authorization' || pick.tamper === 'relayer')) {
        expected = 'HubInvalidSignature';
      } else {
        settled[index] = promise.total;
        payouts.push({ beneficiary: this.f.beneficiaries[index], net: amount - hubFee - relayerFee, relayerFee });
      }
    }
    // The outflow comes from free funds, then from the stake (punishing the hub), else the claim fails.
    const outflow = payouts.reduce((sum, { net, relayerFee }) => sum + net + relayerFee, 0n);
    const fromStake = outflow > m.freeFunds ? outflow - m.freeFunds : 0n;
    if (!expected && fromStake > m.stake) expected = 'HubInsufficientFunds';

    const sender = relayed ? this.f.relayer : this.f.providers[chosen[0].index];
    const hub = this.f.hub.connect(sender);
    const outcome = await this.attempt((o) =>
      single ? hub.settleProvider(claims[0], o) : hub.settleProviders(claims, o),
    );
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      for (const [i, total] of settled.entries()) m.providers[i].settled = total;
      m.freeFunds -= outflow - fromStake;
      m.stake -= fromStake;
      m.stakeOwed += fromStake;
      for (const { beneficiary, net, relayerFee } of payouts) {
        this.move(this.f.hubAddress, beneficiary, net);
        this.move(this.f.hubAddress, sender.address, relayerFee);
      }
    }
    return result;
  }

  private async providerClaim(index: number, promise: SignedHubPromise, pick: ProviderPick, relayerFee: bigint) {
    let providerSignature: CompactSig = EMPTY_SIGNATURE;
    if (relayerFee > 0n) {
      // The provider consents to the relayer fee paid to the relayer; a tampered claim has someone else
      // sign it, or names the provider itself as the relayer while the relayer submits it.
      const signer = pick.tamper === 'authorization' ? this.f.relayer : this.f.providers[index];
      const relayer = pick.tamper === 'relayer' ? this.f.providers[index].address : this.f.relayer.address;
      const hubPromise = { provider: promise.provider, total: promise.total, hashlock: keccak256(promise.preimage) };
      providerSignature = compact(
        await signTyped(signer, hubDomain(this.f.hubAddress, this.f.chainId), hubTypes, 'SettlementAuthorization', {
          hubPromise,
          relayerFee,
          relayer,
        }),
      );
    }
    return {
      provider: promise.provider,
      total: pick.tamper === 'total' ? promise.total + 1n : promise.total,
      preimage: promise.preimage,
      relayerFee,
      hubSignature: promise.hubSignature,
      providerSignature,
    };
  }

  private async requestExit(op: Extract<Op, { kind: 'requestExit' }>): Promise<StepResult> {
    const c = this.model.consumers[op.consumer];
    const amount = scaled(c.balance, op.share);
    const expected = amount === 0n ? 'HubZeroAmount' : amount > c.balance ? 'HubInsufficientBalance' : undefined;
    const outcome = await this.attempt((o) => this.f.hub.connect(this.f.consumers[op.consumer]).requestExit(amount, o));
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) c.exit = { amount, readyAt: this.model.now + PARAMETERS.exitDelay };
    return result;
  }

  /** The consumer `index`, or the next one with an exit pending. */
  private exiting(index: number): number {
    return firstWith(index, CONSUMERS, (i) => this.model.consumers[i].exit !== undefined);
  }

  private async cancelExit(op: Extract<Op, { kind: 'cancelExit' }>): Promise<StepResult> {
    const index = this.exiting(op.consumer);
    const c = this.model.consumers[index];
    const expected = c.exit ? undefined : 'HubNoExitPending';
    const outcome = await this.attempt((o) => this.f.hub.connect(this.f.consumers[index]).cancelExit(o));
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) c.exit = undefined;
    return result;
  }

  private async finalizeExit(op: Extract<Op, { kind: 'finalizeExit' }>): Promise<StepResult> {
    const index = this.exiting(op.consumer);
    const c = this.model.consumers[index];
    const consumer = this.f.consumers[index];
    const expected = !c.exit ? 'HubNoExitPending' : this.next < c.exit.readyAt ? 'HubExitNotReady' : undefined;
    // The hub may have settled promises during the timelock: the exit pays what is left, up to the request.
    const amount = c.exit ? min(c.exit.amount, c.balance) : 0n;
    const outcome = await this.attempt((o) => this.f.hub.connect(consumer).finalizeExit(o));
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      c.exit = undefined;
      c.balance -= amount;
      this.move(this.f.hubAddress, consumer.address, amount);
    }
    return result;
  }

  private async instantExit(op: Extract<Op, { kind: 'instantExit' }>): Promise<StepResult> {
    // A replay submits the consumer's (or the next one's) latest co-signature, whether or not it was used.
    const index =
      op.variant === 'replayed'
        ? firstWith(op.consumer, CONSUMERS, (i) => this.model.consumers[i].grants.length > 0)
        : op.consumer;
    const c = this.model.consumers[index];
    const consumer = this.f.consumers[index];
    let grant: InstantExitGrant;
    if (op.variant === 'replayed') {
      if (c.grants.length === 0) return 'skip no co-signature to replay';
      grant = c.grants[c.grants.length - 1];
    } else {
      const amount = scaled(c.balance, op.share);
      const deadline = op.variant === 'expired' ? this.next - 1n : this.next + INSTANT_EXIT_VALIDITY;
      const value = { consumer: consumer.address, amount, nonce: c.nonce, deadline };
      const signature = await instantExitSignature(this.f.operator, this.f.hubAddress, this.f.chainId, value);
      grant = { amount, deadline, nonce: c.nonce, signature };
      c.grants.push(grant);
    }
    const expected =
      this.next > grant.deadline
        ? 'HubSignatureExpired'
        : grant.amount === 0n
          ? 'HubZeroAmount'
          : grant.amount > c.balance
            ? 'HubInsufficientBalance'
            : grant.nonce !== c.nonce
              ? 'HubInvalidSignature'
              : undefined;
    const outcome = await this.attempt((o) =>
      this.f.hub.connect(consumer).instantExit(grant.amount, grant.deadline, grant.signature, o),
    );
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      c.balance -= grant.amount;
      c.nonce += 1n;
      this.move(this.f.hubAddress, consumer.address, grant.amount);
    }
    return result;
  }

  private async scheduleFee(op: Extract<Op, { kind: 'scheduleFee' }>): Promise<StepResult> {
    const m = this.model;
    const at = this.next;
    const expected = op.fee > PARAMETERS.maxFee ? 'HubFeeTooHigh' : undefined;
    const outcome = await this.attempt((o) => this.f.hub.connect(this.f.operator).scheduleFee(op.fee, o));
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      m.fee = this.feeAt(at);
      m.pendingFee = BigInt(op.fee);
      m.pendingFeeAt = at + PARAMETERS.feeDelay;
    }
    return result;
  }

  private async addFreeFunds(op: Extract<Op, { kind: 'addFreeFunds' }>): Promise<StepResult> {
    const expected = op.amount === 0n ? 'HubZeroAmount' : undefined;
    const outcome = await this.attempt((o) => this.f.hub.connect(this.f.operator).addFreeFunds(op.amount, o));
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      this.model.freeFunds += op.amount;
      this.move(this.f.operator.address, this.f.hubAddress, op.amount);
    }
    return result;
  }

  private async withdrawFreeFunds(op: Extract<Op, { kind: 'withdrawFreeFunds' }>): Promise<StepResult> {
    const m = this.model;
    const amount = scaled(m.freeFunds, op.share);
    const expected = amount === 0n ? 'HubZeroAmount' : amount > m.freeFunds ? 'HubInsufficientFreeFunds' : undefined;
    const outcome = await this.attempt((o) =>
      this.f.hub.connect(this.f.operator).withdrawFreeFunds(this.f.treasury, amount, o),
    );
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      m.freeFunds -= amount;
      this.move(this.f.hubAddress, this.f.treasury, amount);
    }
    return result;
  }

  private async increaseStake(op: Extract<Op, { kind: 'increaseStake' }>): Promise<StepResult> {
    const m = this.model;
    const expected = op.amount === 0n ? 'HubZeroAmount' : undefined;
    const outcome = await this.attempt((o) => this.f.hub.connect(this.f.operator).increaseStake(op.amount, o));
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      m.stake += op.amount;
      m.stakeOwed = m.stakeOwed > op.amount ? m.stakeOwed - op.amount : 0n;
      this.move(this.f.operator.address, this.f.hubAddress, op.amount);
    }
    return result;
  }

  private async decreaseStake(op: Extract<Op, { kind: 'decreaseStake' }>): Promise<StepResult> {
    const m = this.model;
    const spare = m.stake > PARAMETERS.minStake ? m.stake - PARAMETERS.minStake : 0n;
    const amount = scaled(spare, op.share);
    const expected =
      amount === 0n
        ? 'HubZeroAmount'
        : m.stakeOwed > 0n
          ? 'HubInvalidStatus'
          : amount > m.stake
            ? 'HubInsufficientStake'
            : m.stake - amount < PARAMETERS.minStake
              ? 'HubStakeBelowMinimum'
              : undefined;
    const outcome = await this.attempt((o) => this.f.hub.connect(this.f.operator).decreaseStake(amount, o));
    const result = this.expectOutcome(outcome, expected);
    if (outcome.ok) {
      m.stake -= amount;
      this.move(this.f.hubAddress, this.f.operator.address, amount);
    }
    return result;
  }

  // ------------------------------------------------------------ checks

  /** The invariants, from on-chain state and events only; then the model against the chain. */
  async check(): Promise<void> {
    const { hub, token, consumers, providers, beneficiaries, hubAddress } = this.f;
    const m = this.model;
    const [hubTokens, stake, freeFunds, stakeOwed, punished, config] = await Promise.all([
      token.balanceOf(hubAddress),
      hub.stake(),
      hub.freeFunds(),
      hub.stakeOwed(),
      hub.isPunished(),
      hub.config(),
    ]);
    const channels = await Promise.all(consumers.map((c) => hub.consumerChannel(c.address)));
    const exits = await Promise.all(consumers.map((c) => hub.exitRequest(c.address)));
    const nonces = await Promise.all(consumers.map((c) => hub.nonces(c.address)));
    const providerSettled = await Promise.all(providers.map((p) => hub.providerSettled(p.address)));
    const balances = await Promise.all(this.watched.map(({ address }) => token.balanceOf(address)));
    const received = (address: string) =>
      balances[this.watched.findIndex((w) => w.address === address)] - (this.initial.get(address) ?? 0n);

    // 1. The hub holds exactly the consumers' balances, the stake and the free funds.
    const consumerBalances = channels.reduce((sum, channel) => sum + channel.balance, 0n);
    expect(hubTokens, 'invariant 1: hub tokens == consumer balances + stake + free funds').to.equal(
      consumerBalances + stake + freeFunds,
    );

    // 2. No provider is paid beyond what the hub signed, and every settled token is accounted for.
    for (const i of range(PROVIDERS)) {
      expect(providerSettled[i] <= m.providers[i].signedMax, `invariant 2: provider ${i} settled <= hub-signed`).to.be
        .true;
      expect(
        received(beneficiaries[i]) + this.ledger.relayerFees[i] + this.ledger.hubFees[i],
        `invariant 2: provider ${i} beneficiary + relayer fees + hub fees == settled`,
      ).to.equal(providerSettled[i]);
    }
    expect(received(this.f.relayer.address), 'invariant 2: relayer received == relayer fees').to.equal(
      this.ledger.relayerFees.reduce((sum, fee) => sum + fee, 0n),
    );

    // 3. No consumer pays beyond what it signed, and its channel is deposits less exits less settlements.
    for (const i of range(CONSUMERS)) {
      expect(channels[i].settled <= m.consumers[i].signedMax, `invariant 3: consumer ${i} settled <= signed`).to.be
        .true;
      expect(
        this.ledger.deposits[i] - this.ledger.exits[i] - this.ledger.consumerSettled[i],
        `invariant 3: consumer ${i} deposits - exits - settled == balance`,
      ).to.equal(channels[i].balance);
      expect(this.ledger.consumerSettled[i], `invariant 3: consumer ${i} settled events == settled`).to.equal(
        channels[i].settled,
      );
    }

    // 4. Every watched account holds exactly what the model says: nobody gained more.
    for (const [i, { name, address }] of this.watched.entries()) {
      expect(balances[i], `invariant 4: tokens of ${name}`).to.equal(this.tokensOf(address));
    }

    // The hub's state is the model's (after a revert: unchanged).
    expect(stake, 'model: stake').to.equal(m.stake);
    expect(freeFunds, 'model: free funds').to.equal(m.freeFunds);
    expect(stakeOwed, 'model: stake owed').to.equal(m.stakeOwed);
    expect(punished, 'model: punished').to.equal(m.stakeOwed > 0n);
    expect(config.fee, 'model: fee').to.equal(m.fee);
    expect(config.pendingFee, 'model: pending fee').to.equal(m.pendingFee);
    expect(config.pendingFeeAt, 'model: pending fee at').to.equal(m.pendingFeeAt);
    for (const i of range(CONSUMERS)) {
      const c = m.consumers[i];
      expect(channels[i].balance, `model: consumer ${i} balance`).to.equal(c.balance);
      expect(channels[i].settled, `model: consumer ${i} settled`).to.equal(c.settled);
      expect(exits[i].amount, `model: consumer ${i} exit amount`).to.equal(c.exit?.amount ?? 0n);
      expect(exits[i].readyAt, `model: consumer ${i} exit readyAt`).to.equal(c.exit?.readyAt ?? 0n);
      expect(nonces[i], `model: consumer ${i} nonce`).to.equal(c.nonce);
    }
    for (const i of range(PROVIDERS)) {
      expect(providerSettled[i], `model: provider ${i} settled`).to.equal(m.providers[i].settled);
    }
  }
}

async function runSequence(ops: Op[]): Promise<void> {
  const world = await World.start(await loadFixture(invariantsFixture));
  await world.check();
  for (const [i, op] of ops.entries()) {
    const label = `step ${i + 1}/${ops.length} ${fc.stringify(op)}`;
    try {
      const result = await world.apply(op);
      count(op, result);
      world.log.push(`${label} -> ${result}`);
      await world.check();
    } catch (error) {
      const history = world.log.length > 0 ? `\nsteps run:\n  ${world.log.join('\n  ')}` : '';
      throw new Error(`${label}: ${(error as Error).message}${history}`);
    }
  }
}

describe('Hub invariants', () => {
  it(`hold over ${RUNS} random sequences of up to ${MAX_STEPS} operations`, async function () {
    this.timeout(Math.max(300_000, RUNS * MAX_STEPS * 2_000));
    await fc.assert(
      fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: MAX_STEPS, size: 'max' }), runSequence),
      {
        numRuns: RUNS,
        seed: SEED,
        path: PATH,
        endOnFailure: PATH !== undefined,
      },
    );
  });

  after(() => {
    if (!STATS) return;
    for (const [kind, byResult] of [...stats.entries()].sort()) {
      const parts = [...byResult.entries()].sort().map(([result, n]) => `${result}: ${n}`);
      console.log(`    ${kind.padEnd(24)} ${parts.join(', ')}`);
    }
  });
});
