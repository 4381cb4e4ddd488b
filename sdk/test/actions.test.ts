import assert from 'node:assert/strict';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { testTokenAbi } from '@chit/devstack';
import {
  type Address,
  type Hash,
  type Hex,
  keccak256,
  type LocalAccount,
  parseEther,
  recoverAddress,
  recoverTypedDataAddress,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import {
  ChitError,
  ContractCallError,
  type ContractErrorArgs,
  type ContractErrorName,
  ContractRevertError,
  cancelExit,
  consumerPromiseDigest,
  decodeContractError,
  deposit,
  depositWithPermit,
  finalizeExit,
  getConsumerChannel,
  getHubInfo,
  getProviderChannel,
  hubAbi,
  instantExit,
  listHubs,
  newHashlock,
  PreimageMismatchError,
  registerIdentity,
  registerIdentityRelayed,
  registerIdentityTypes,
  registryAbi,
  registryDomain,
  requestExit,
  type SignedConsumerPromise,
  type SignedHubPromise,
  setBeneficiary,
  setBeneficiaryRelayed,
  setBeneficiaryTypes,
  settleConsumer,
  settleConsumers,
  settlementAuthorizationDigest,
  settleProvider,
  settleProviders,
  settleProviderWithBeneficiary,
  signConsumerPromise,
  signDepositPermit,
  signHubPromise,
  signInstantExit,
  signRegisterIdentity,
  signSetBeneficiary,
  signSettlementAuthorization,
  toConsumerClaim,
  waitForTransaction,
} from '../src/index.js';
import { type ChainWalletClient, FIRST_HUB, PARAMETERS, startChain, type TestChain } from './support/chain.js';

const ZERO_ADDRESS = '0x0000000000000000000000000000000000000000';
const ether = (value: string) => parseEther(value);
/** The first hub's fee on `amount`, rounded down as the contract does. */
const hubFee = (amount: bigint) => (amount * BigInt(FIRST_HUB.fee)) / 10_000n;

let chain: TestChain;
let hub: Address;
let registry: Address;
let token: Address;
let operator: ChainWalletClient;
let consumer: ChainWalletClient;
let provider: ChainWalletClient;
let relayer: ChainWalletClient;
let other: ChainWalletClient;
let beneficiary: Address;
let snapshot: Hex;

/** Waits for a sent transaction and checks it succeeded. */
async function mined(sent: { hash: Hash } | Hash | Promise<{ hash: Hash } | Hash>): Promise<void> {
  const result = await sent;
  const receipt = await waitForTransaction(chain.publicClient, {
    hash: typeof result === 'string' ? result : result.hash,
  });
  assert.equal(receipt.status, 'success');
}

/** Asserts that `action` rejects with the contract error `name` and exactly `args`. */
async function rejectsWith<name extends ContractErrorName>(
  action: Promise<unknown>,
  name: name,
  args: ContractErrorArgs<name>,
): Promise<ContractRevertError<name>> {
  const error = await action.then(
    () => assert.fail(`expected ${name}`),
    (e: unknown) => e,
  );
  assert.ok(error instanceof ContractRevertError, `expected a ContractRevertError, got ${error}`);
  assert.ok(error instanceof ChitError);
  assert.equal(error.code, 'CONTRACT_REVERT');
  assert.equal(error.errorName, name, error.message);
  assert.deepEqual(error.args, args);
  return error as ContractRevertError<name>;
}

/** Asserts that `action` rejects with an SDK error of `code` before anything reached the chain. */
async function rejectsWithCode(action: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(action, (error: unknown) => {
    assert.ok(error instanceof ChitError, `expected a ChitError, got ${error}`);
    assert.equal(error.code, code);
    return true;
  });
}

const balanceOf = (owner: Address) =>
  chain.publicClient.readContract({ address: token, abi: testTokenAbi, functionName: 'balanceOf', args: [owner] });
const allowance = (owner: Address, spender: Address) =>
  chain.publicClient.readContract({
    address: token,
    abi: testTokenAbi,
    functionName: 'allowance',
    args: [owner, spender],
  });
const registryNonce = (identity: Address) =>
  chain.publicClient.readContract({ address: registry, abi: registryAbi, functionName: 'nonces', args: [identity] });
const sentCount = (address: Address) => chain.publicClient.getTransactionCount({ address });
const freeFunds = () => chain.publicClient.readContract({ address: hub, abi: hubAbi, functionName: 'freeFunds' });
const latestTimestamp = async () => (await chain.publicClient.getBlock()).timestamp;
const timestampOf = async (hash: Hash) => {
  const receipt = await chain.publicClient.getTransactionReceipt({ hash });
  return (await chain.publicClient.getBlock({ blockNumber: receipt.blockNumber })).timestamp;
};
const travel = async (seconds: bigint) => {
  await chain.testClient.increaseTime({ seconds: Number(seconds) });
  await chain.testClient.mine({ blocks: 1 });
};
const approve = (wallet: ChainWalletClient, spender: Address, amount: bigint) =>
  mined(wallet.writeContract({ address: token, abi: testTokenAbi, functionName: 'approve', args: [spender, amount] }));
const addFreeFunds = async (amount: bigint) => {
  await approve(operator, hub, amount);
  await mined(operator.writeContract({ address: hub, abi: hubAbi, functionName: 'addFreeFunds', args: [amount] }));
};

/** A consumer promise of `total` to the first hub, paying `agreementTotal` to the provider. */
async function consumerPromise(
  signer: LocalAccount,
  total: bigint,
): Promise<{ promise: SignedConsumerPromise; preimage: Hex }> {
  const { preimage, hashlock } = newHashlock();
  const promise = await signConsumerPromise(signer, {
    hub,
    chainId: chain.chain.id,
    consumer: signer.address,
    total,
    hashlock,
    agreement: { provider: provider.account.address, id: keccak256(hashlock), total },
  });
  return { promise, preimage };
}

/** A hub promise of `total` to `to`, signed by the first hub's operator. */
async function hubPromise(to: Address, total: bigint): Promise<{ promise: SignedHubPromise; preimage: Hex }> {
  const { preimage, hashlock } = newHashlock();
  const promise = await signHubPromise(chain.account(0), {
    hub,
    chainId: chain.chain.id,
    provider: to,
    total,
    hashlock,
  });
  return { promise, preimage };
}

describe('contract actions on anvil', () => {
  before(async () => {
    chain = await startChain();
    ({ hub, registry, token } = chain);
    operator = chain.deployer;
    consumer = chain.wallet(chain.account(1));
    provider = chain.wallet(chain.account(2));
    relayer = chain.wallet(chain.account(3));
    other = chain.wallet(chain.account(5));
    beneficiary = chain.account(4).address;
    for (const wallet of [operator, consumer, other]) await chain.mint(wallet.account.address, ether('1000'));
  });

  after(async () => {
    await chain?.stop();
  });

  beforeEach(async () => {
    snapshot = await chain.testClient.snapshot();
  });

  afterEach(async () => {
    await chain.testClient.revert({ id: snapshot });
  });

  describe('registerIdentity', () => {
    it('registers the sender with its beneficiary', async () => {
      await mined(registerIdentity(provider, { registry, beneficiary }));
      assert.deepEqual(await getProviderChannel(chain.publicClient, { hub, provider: provider.account.address }), {
        settled: 0n,
        beneficiary,
        registered: true,
      });
    });

    it('pays the identity itself when no beneficiary is given', async () => {
      await mined(registerIdentity(provider, { registry }));
      const channel = await getProviderChannel(chain.publicClient, {
        hub,
        provider: provider.account.address,
        registry,
      });
      assert.equal(channel.beneficiary, provider.account.address);
      assert.equal(channel.registered, true);
    });

    describe('when the identity is already registered', () => {
      it('reverts with RegistryIdentityAlreadyRegistered before sending', async () => {
        await mined(registerIdentity(provider, { registry }));
        const sent = await sentCount(provider.account.address);
        const error = await rejectsWith(registerIdentity(provider, { registry }), 'RegistryIdentityAlreadyRegistered', {
          identity: provider.account.address,
        });
        assert.equal(error.contractAddress, registry);
        assert.equal(error.functionName, 'registerIdentity');
        assert.match(error.shortMessage, /is already registered/);
        assert.match(error.details ?? '', /setBeneficiary/);
        assert.equal(await sentCount(provider.account.address), sent);
      });
    });
  });

  describe('registerIdentityRelayed', () => {
    it('registers an identity that holds no ETH, sent by a relayer', async () => {
      const identity = chain.wallet(privateKeyToAccount(generatePrivateKey()));
      assert.equal(await chain.publicClient.getBalance({ address: identity.account.address }), 0n);
      const registration = await signRegisterIdentity(identity, {
        registry,
        beneficiary,
        relayer: relayer.account.address,
      });
      assert.equal(registration.nonce, 0n);
      assert.equal(registration.relayerFee, 0n);
      await mined(registerIdentityRelayed(relayer, { registration }));
      const channel = await getProviderChannel(chain.publicClient, { hub, provider: identity.account.address });
      assert.deepEqual(channel, { settled: 0n, beneficiary, registered: true });
      assert.equal(await registryNonce(identity.account.address), 1n);
    });

    it('pays the relayer its fee from the identity', async () => {
      const fee = ether('2');
      await approve(other, registry, fee);
      const registration = await signRegisterIdentity(other, {
        registry,
        relayerFee: fee,
        relayer: relayer.account.address,
      });
      assert.equal(registration.beneficiary, ZERO_ADDRESS);
      await mined(registerIdentityRelayed(relayer, { registration }));
      assert.equal(await balanceOf(relayer.account.address), fee);
      assert.equal(await balanceOf(other.account.address), ether('998'));
      const channel = await getProviderChannel(chain.publicClient, { hub, provider: other.account.address });
      assert.equal(channel.beneficiary, other.account.address);
    });

    describe('when the identity has not approved the relayer fee', () => {
      it("reverts with the token's ERC20InsufficientAllowance", async () => {
        const registration = await signRegisterIdentity(other, {
          registry,
          relayerFee: ether('2'),
          relayer: relayer.account.address,
        });
        await rejectsWith(registerIdentityRelayed(relayer, { registration }), 'ERC20InsufficientAllowance', {
          spender: registry,
          allowance: 0n,
          needed: ether('2'),
        });
      });
    });

    describe('when the signature is replayed', () => {
      it('reverts with RegistryInvalidSignature: its nonce is spent', async () => {
        const registration = await signRegisterIdentity(provider, { registry, relayer: relayer.account.address });
        await mined(registerIdentityRelayed(relayer, { registration }));
        // the Registry checks it against nonce 1 now, so it recovers to some other key
        const recovered = await recoveredOf(registration);
        assert.notEqual(recovered, provider.account.address);
        const error = await rejectsWith(
          registerIdentityRelayed(relayer, { registration }),
          'RegistryInvalidSignature',
          {
            identity: provider.account.address,
            recovered,
          },
        );
        assert.match(error.details ?? '', /nonce/);
      });
    });

    describe("when an outside party copies the relayer's registration and sends it first", () => {
      it('reverts with RegistryInvalidSignature, nothing moves, and the named relayer then registers and takes the fee', async () => {
        const fee = ether('2');
        await approve(other, registry, fee);
        const registration = await signRegisterIdentity(other, {
          registry,
          relayerFee: fee,
          relayer: relayer.account.address,
        });
        // Its own keys and gas: what a mempool watcher has.
        const frontRunner = chain.wallet(privateKeyToAccount(generatePrivateKey()));
        await chain.testClient.setBalance({ address: frontRunner.account.address, value: ether('1') });
        const recovered = await recoveredOf(registration, frontRunner.account.address);
        assert.notEqual(recovered, other.account.address);
        const error = await rejectsWith(
          registerIdentityRelayed(frontRunner, { registration }),
          'RegistryInvalidSignature',
          { identity: other.account.address, recovered },
        );
        assert.match(error.details ?? '', /relayer it names/);
        assert.equal(await balanceOf(frontRunner.account.address), 0n);
        assert.equal(await balanceOf(other.account.address), ether('1000'));
        assert.equal(await registryNonce(other.account.address), 0n);

        await mined(registerIdentityRelayed(relayer, { registration }));
        assert.equal(await balanceOf(relayer.account.address), fee);
        assert.equal(await balanceOf(frontRunner.account.address), 0n);
        assert.equal(await balanceOf(other.account.address), ether('998'));
        assert.equal(await registryNonce(other.account.address), 1n);
      });
    });
  });

  describe('setBeneficiary', () => {
    it('changes where the earnings go', async () => {
      await mined(registerIdentity(provider, { registry }));
      await mined(setBeneficiary(provider, { registry, beneficiary }));
      const channel = await getProviderChannel(chain.publicClient, { hub, provider: provider.account.address });
      assert.equal(channel.beneficiary, beneficiary);
    });

    describe('when the identity is not registered', () => {
      it('reverts with RegistryIdentityNotRegistered', async () => {
        await rejectsWith(setBeneficiary(provider, { registry, beneficiary }), 'RegistryIdentityNotRegistered', {
          identity: provider.account.address,
        });
      });
    });

    describe('when the beneficiary is the zero address', () => {
      it('reverts with RegistryZeroAddress', async () => {
        await mined(registerIdentity(provider, { registry }));
        await rejectsWith(setBeneficiary(provider, { registry, beneficiary: ZERO_ADDRESS }), 'RegistryZeroAddress', {});
      });
    });
  });

  describe('setBeneficiaryRelayed', () => {
    it("submits the identity's signed change and spends its nonce", async () => {
      await mined(registerIdentity(provider, { registry }));
      const nonce = await registryNonce(provider.account.address);
      const change = await signSetBeneficiary(provider, { registry, beneficiary });
      assert.equal(change.nonce, nonce);
      await mined(setBeneficiaryRelayed(relayer, { change }));
      const channel = await getProviderChannel(chain.publicClient, { hub, provider: provider.account.address });
      assert.equal(channel.beneficiary, beneficiary);
      assert.equal(await registryNonce(provider.account.address), nonce + 1n);
    });

    describe('when the change names another identity than its signer', () => {
      it('reverts with RegistryInvalidSignature naming the signer', async () => {
        await mined(registerIdentity(other, { registry }));
        const change = {
          ...(await signSetBeneficiary(provider, { registry, beneficiary })),
          identity: other.account.address,
        };
        const recovered = await recoveredOf(change);
        await rejectsWith(setBeneficiaryRelayed(relayer, { change }), 'RegistryInvalidSignature', {
          identity: other.account.address,
          recovered,
        });
      });
    });
  });

  describe('deposit', () => {
    it('approves the hub when its allowance is short, then deposits', async () => {
      const result = await deposit(consumer, { hub, amount: ether('100') });
      assert.ok(result.approvalHash);
      await mined(result);
      assert.deepEqual(await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address }), {
        balance: ether('100'),
        settled: 0n,
        exit: null,
      });
      assert.equal(await balanceOf(consumer.account.address), ether('900'));
      assert.equal(await balanceOf(hub), PARAMETERS.minStake + ether('100'));
      assert.equal(await allowance(consumer.account.address, hub), 0n);
    });

    it('skips the approval when the allowance suffices', async () => {
      await approve(consumer, hub, ether('50'));
      const sent = await sentCount(consumer.account.address);
      const result = await deposit(consumer, { hub, amount: ether('50'), token });
      assert.equal(result.approvalHash, undefined);
      await mined(result);
      assert.equal(await sentCount(consumer.account.address), sent + 1);
      const channel = await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address });
      assert.equal(channel.balance, ether('50'));
    });

    it("credits another consumer's channel (depositFor)", async () => {
      await mined(deposit(other, { hub, amount: ether('10'), consumer: consumer.account.address }));
      const credited = await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address });
      const payer = await getConsumerChannel(chain.publicClient, { hub, consumer: other.account.address });
      assert.equal(credited.balance, ether('10'));
      assert.equal(payer.balance, 0n);
      assert.equal(await balanceOf(other.account.address), ether('990'));
    });

    describe('when the consumer holds too few tokens', () => {
      it('reverts with ERC20InsufficientBalance before sending the approval', async () => {
        const sent = await sentCount(consumer.account.address);
        await rejectsWith(deposit(consumer, { hub, amount: ether('1001') }), 'ERC20InsufficientBalance', {
          sender: consumer.account.address,
          balance: ether('1000'),
          needed: ether('1001'),
        });
        assert.equal(await sentCount(consumer.account.address), sent);
        assert.equal(await allowance(consumer.account.address, hub), 0n);
      });
    });

    describe('when the hub takes no new consumers', () => {
      it('reverts with HubConsumersPaused', async () => {
        await mined(
          operator.writeContract({ address: hub, abi: hubAbi, functionName: 'setConsumersPaused', args: [true] }),
        );
        const error = await rejectsWith(deposit(consumer, { hub, amount: ether('1') }), 'HubConsumersPaused', {
          consumer: consumer.account.address,
        });
        assert.match(error.details ?? '', /another hub/);
      });
    });

    describe('when the amount is zero', () => {
      it('reverts with HubZeroAmount', async () => {
        await rejectsWith(deposit(consumer, { hub, amount: 0n }), 'HubZeroAmount', {});
      });
    });

    describe('when the hub is closing', () => {
      it("reverts with HubNotAcceptingDeposits naming the hub's status", async () => {
        await mined(operator.writeContract({ address: hub, abi: hubAbi, functionName: 'requestClose' }));
        const error = await rejectsWith(deposit(consumer, { hub, amount: ether('1') }), 'HubNotAcceptingDeposits', {
          status: 3,
        });
        assert.equal(error.shortMessage, 'The hub takes no deposits while closing');
      });
    });
  });

  describe('depositWithPermit', () => {
    it('lets a relayer deposit for a consumer that holds no ETH', async () => {
      const gasless = chain.wallet(privateKeyToAccount(generatePrivateKey()));
      await chain.mint(gasless.account.address, ether('20'));
      const permit = await signDepositPermit(gasless, {
        hub,
        amount: ether('20'),
        deadline: (await latestTimestamp()) + 600n,
      });
      assert.equal(permit.token, token);
      assert.equal(permit.nonce, 0n);
      await mined(depositWithPermit(relayer, { permit }));
      assert.deepEqual(await getConsumerChannel(chain.publicClient, { hub, consumer: gasless.account.address }), {
        balance: ether('20'),
        settled: 0n,
        exit: null,
      });
      assert.equal(await balanceOf(gasless.account.address), 0n);
      assert.equal(await chain.publicClient.getBalance({ address: gasless.account.address }), 0n);
      assert.equal(await sentCount(gasless.account.address), 0);
    });

    it('is submitted by the consumer itself just as well', async () => {
      const permit = await signDepositPermit(consumer, { hub, amount: ether('5'), token });
      await mined(depositWithPermit(consumer, { permit }));
      const channel = await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address });
      assert.equal(channel.balance, ether('5'));
    });

    describe("when the chain's clock runs ahead of this machine's", () => {
      it('signs a default deadline one hour of block time ahead, which the token accepts', async () => {
        await travel(86_400n);
        const permit = await signDepositPermit(consumer, { hub, amount: ether('5') });
        assert.equal(permit.deadline, (await latestTimestamp()) + 3600n);
        await mined(depositWithPermit(relayer, { permit }));
        const channel = await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address });
        assert.equal(channel.balance, ether('5'));
      });
    });

    describe('when the permit has expired', () => {
      it('reverts with HubPermitFailed', async () => {
        const deadline = (await latestTimestamp()) + 60n;
        const permit = await signDepositPermit(consumer, { hub, amount: ether('5'), deadline });
        await travel(120n);
        await rejectsWith(depositWithPermit(relayer, { permit }), 'HubPermitFailed', {
          consumer: consumer.account.address,
        });
      });
    });

    describe('when the amount was changed after signing', () => {
      it('reverts with HubPermitFailed', async () => {
        const permit = await signDepositPermit(consumer, { hub, amount: ether('5') });
        await rejectsWith(
          depositWithPermit(relayer, { permit: { ...permit, amount: ether('6') } }),
          'HubPermitFailed',
          {
            consumer: consumer.account.address,
          },
        );
      });
    });
  });

  describe('exits', () => {
    beforeEach(async () => {
      await mined(deposit(consumer, { hub, amount: ether('100') }));
    });

    it('requestExit records the exit, ready after the exit delay', async () => {
      const { hash } = await requestExit(consumer, { hub, amount: ether('40') });
      await mined(hash);
      const channel = await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address });
      assert.deepEqual(channel, {
        balance: ether('100'),
        settled: 0n,
        exit: { amount: ether('40'), readyAt: (await timestampOf(hash)) + PARAMETERS.exitDelay },
      });
    });

    describe('when the exit asks for more than the balance', () => {
      it('requestExit reverts with HubInsufficientBalance', async () => {
        const error = await rejectsWith(
          requestExit(consumer, { hub, amount: ether('101') }),
          'HubInsufficientBalance',
          { consumer: consumer.account.address, balance: ether('100'), needed: ether('101') },
        );
        assert.equal(
          error.shortMessage,
          `The channel of ${consumer.account.address} holds ${ether('100')}, less than the ${ether('101')} asked for`,
        );
      });
    });

    it('cancelExit withdraws the pending exit', async () => {
      await mined(requestExit(consumer, { hub, amount: ether('40') }));
      await mined(cancelExit(consumer, { hub }));
      const channel = await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address });
      assert.equal(channel.exit, null);
      assert.equal(channel.balance, ether('100'));
    });

    describe('when no exit is pending', () => {
      it('cancelExit reverts with HubNoExitPending', async () => {
        await rejectsWith(cancelExit(consumer, { hub }), 'HubNoExitPending', { consumer: consumer.account.address });
      });

      it('finalizeExit reverts with HubNoExitPending', async () => {
        await rejectsWith(finalizeExit(consumer, { hub }), 'HubNoExitPending', { consumer: consumer.account.address });
      });
    });

    describe('before the exit delay has passed', () => {
      it('finalizeExit reverts with HubExitNotReady and says when', async () => {
        const { hash } = await requestExit(consumer, { hub, amount: ether('40') });
        await mined(hash);
        const readyAt = (await timestampOf(hash)) + PARAMETERS.exitDelay;
        const error = await rejectsWith(finalizeExit(consumer, { hub }), 'HubExitNotReady', {
          consumer: consumer.account.address,
          readyAt,
        });
        assert.match(error.shortMessage, new RegExp(new Date(Number(readyAt) * 1000).toISOString()));
      });
    });

    it('finalizeExit pays the exit after the delay', async () => {
      await mined(requestExit(consumer, { hub, amount: ether('40') }));
      await travel(PARAMETERS.exitDelay);
      const result = await finalizeExit(consumer, { hub });
      assert.equal(result.amount, ether('40'));
      await mined(result);
      assert.deepEqual(await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address }), {
        balance: ether('60'),
        settled: 0n,
        exit: null,
      });
      assert.equal(await balanceOf(consumer.account.address), ether('940'));
    });

    it('finalizeExit pays only what is left when the hub settled during the delay', async () => {
      await mined(requestExit(consumer, { hub, amount: ether('100') }));
      await mined(settleConsumer(operator, await consumerPromise(chain.account(1), ether('70'))));
      await travel(PARAMETERS.exitDelay);
      const result = await finalizeExit(consumer, { hub });
      assert.equal(result.amount, ether('30'));
      await mined(result);
      assert.deepEqual(await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address }), {
        balance: 0n,
        settled: ether('70'),
        exit: null,
      });
      assert.equal(await balanceOf(consumer.account.address), ether('930'));
    });

    describe('instantExit', () => {
      const signExit = async (amount: bigint, deadline: bigint, signer = chain.account(0)) =>
        signInstantExit(signer, {
          hub,
          chainId: chain.chain.id,
          consumer: consumer.account.address,
          amount,
          nonce: await chain.publicClient.readContract({
            address: hub,
            abi: hubAbi,
            functionName: 'nonces',
            args: [consumer.account.address],
          }),
          deadline,
        });

      it("pays out at once with the hub's signature", async () => {
        const deadline = (await latestTimestamp()) + 300n;
        const signature = await signExit(ether('25'), deadline);
        await mined(instantExit(consumer, { hub, amount: ether('25'), deadline, signature }));
        const channel = await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address });
        assert.equal(channel.balance, ether('75'));
        assert.equal(await balanceOf(consumer.account.address), ether('925'));
        const nonce = await chain.publicClient.readContract({
          address: hub,
          abi: hubAbi,
          functionName: 'nonces',
          args: [consumer.account.address],
        });
        assert.equal(nonce, 1n);
      });

      describe('when the signature has expired', () => {
        it('reverts with HubSignatureExpired', async () => {
          const deadline = (await latestTimestamp()) + 60n;
          const signature = await signExit(ether('25'), deadline);
          await travel(120n);
          const error = await rejectsWith(
            instantExit(consumer, { hub, amount: ether('25'), deadline, signature }),
            'HubSignatureExpired',
            { deadline },
          );
          assert.match(error.details ?? '', /Ask the hub for a new one/);
        });
      });

      describe('when the signature is not the operator’s', () => {
        it('reverts with HubInvalidSignature naming the operator and the signer', async () => {
          const deadline = (await latestTimestamp()) + 300n;
          const signature = await signExit(ether('25'), deadline, chain.account(5));
          await rejectsWith(
            instantExit(consumer, { hub, amount: ether('25'), deadline, signature }),
            'HubInvalidSignature',
            { expected: operator.account.address, recovered: other.account.address },
          );
        });
      });
    });
  });

  describe('consumer settlement', () => {
    beforeEach(async () => {
      await mined(deposit(consumer, { hub, amount: ether('100') }));
      await mined(deposit(other, { hub, amount: ether('10') }));
    });

    it('settleConsumer moves the unsettled part of the promise to the free funds', async () => {
      const result = await settleConsumer(relayer, await consumerPromise(chain.account(1), ether('30')));
      assert.equal(result.amount, ether('30'));
      await mined(result);
      assert.deepEqual(await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address }), {
        balance: ether('70'),
        settled: ether('30'),
        exit: null,
      });
      assert.equal(await freeFunds(), ether('30'));

      const later = await settleConsumer(relayer, await consumerPromise(chain.account(1), ether('45')));
      assert.equal(later.amount, ether('15'));
      await mined(later);
      assert.equal(await freeFunds(), ether('45'));
    });

    describe('when the promise is stale', () => {
      it('reverts with HubConsumerPromiseStale', async () => {
        const claim = await consumerPromise(chain.account(1), ether('30'));
        await mined(settleConsumer(relayer, claim));
        await rejectsWith(settleConsumer(relayer, claim), 'HubConsumerPromiseStale', {
          consumer: consumer.account.address,
          total: ether('30'),
          settled: ether('30'),
        });
      });
    });

    describe('when the preimage does not open the hashlock', () => {
      it('throws PreimageMismatchError without sending', async () => {
        const { promise } = await consumerPromise(chain.account(1), ether('30'));
        await assert.rejects(
          settleConsumer(relayer, { promise, preimage: newHashlock().preimage }),
          PreimageMismatchError,
        );
      });
    });

    describe('when the signature is not the consumer’s', () => {
      it('reverts with HubInvalidSignature', async () => {
        const { promise, preimage } = await consumerPromise(chain.account(5), ether('5'));
        const forged = { ...promise, consumer: consumer.account.address };
        const recovered = await recoveredConsumer(forged);
        const error = await rejectsWith(settleConsumer(relayer, { promise: forged, preimage }), 'HubInvalidSignature', {
          expected: consumer.account.address,
          recovered,
        });
        assert.equal(error.contractAddress, hub);
        assert.equal(error.functionName, 'settleConsumer');
      });
    });

    describe('when the promise is for another chain', () => {
      it('throws CHAIN_MISMATCH without sending', async () => {
        const { promise, preimage } = await consumerPromise(chain.account(1), ether('5'));
        await rejectsWithCode(
          settleConsumer(relayer, { promise: { ...promise, chainId: 1 }, preimage }),
          'CHAIN_MISMATCH',
        );
      });
    });

    it('settleConsumers settles a batch and skips stale claims', async () => {
      const stale = await consumerPromise(chain.account(1), ether('20'));
      await mined(settleConsumer(relayer, stale));
      const claims = [
        stale,
        await consumerPromise(chain.account(1), ether('50')),
        await consumerPromise(chain.account(5), ether('4')),
      ];
      const result = await settleConsumers(relayer, { hub, claims });
      assert.equal(result.amount, ether('34'));
      await mined(result);
      const first = await getConsumerChannel(chain.publicClient, { hub, consumer: consumer.account.address });
      const second = await getConsumerChannel(chain.publicClient, { hub, consumer: other.account.address });
      assert.deepEqual([first.balance, first.settled], [ether('50'), ether('50')]);
      assert.deepEqual([second.balance, second.settled], [ether('6'), ether('4')]);
      assert.equal(await freeFunds(), ether('54'));
    });

    describe('when a promise of the batch is for another hub', () => {
      it('settleConsumers throws HUB_MISMATCH without sending', async () => {
        const claim = await consumerPromise(chain.account(1), ether('5'));
        await rejectsWithCode(
          settleConsumers(relayer, { hub, claims: [{ ...claim, promise: { ...claim.promise, hub: registry } }] }),
          'HUB_MISMATCH',
        );
      });
    });

    describe('when one signature of the batch is forged', () => {
      it('settleConsumers reverts with HubInvalidSignature', async () => {
        const good = await consumerPromise(chain.account(1), ether('5'));
        const bad = await consumerPromise(chain.account(5), ether('5'));
        const forged = { ...bad.promise, total: ether('9') };
        const recovered = await recoveredConsumer(forged);
        await rejectsWith(
          settleConsumers(relayer, { hub, claims: [good, { promise: forged, preimage: bad.preimage }] }),
          'HubInvalidSignature',
          { expected: other.account.address, recovered },
        );
      });
    });

    it('settleConsumers refuses an empty batch', async () => {
      await rejectsWithCode(settleConsumers(relayer, { hub, claims: [] }), 'NOTHING_TO_SETTLE');
    });
  });

  describe('provider settlement', () => {
    beforeEach(async () => {
      await mined(registerIdentity(provider, { registry, beneficiary }));
      await addFreeFunds(ether('100'));
    });

    it('settleProvider pays the beneficiary the promise less the hub fee', async () => {
      const result = await settleProvider(provider, await hubPromise(provider.account.address, ether('50')));
      const payout = ether('50') - hubFee(ether('50'));
      assert.equal(result.payout, payout);
      await mined(result);
      assert.equal(await balanceOf(beneficiary), payout);
      assert.equal(await freeFunds(), ether('100') - payout);
      assert.deepEqual(await getProviderChannel(chain.publicClient, { hub, provider: provider.account.address }), {
        settled: ether('50'),
        beneficiary,
        registered: true,
      });
    });

    it('settleProvider pays a relayer the fee the provider authorized', async () => {
      const { promise, preimage } = await hubPromise(provider.account.address, ether('50'));
      const fee = ether('1');
      const authorization = await signSettlementAuthorization(chain.account(2), promise, fee, relayer.account.address);
      const result = await settleProvider(relayer, { promise, preimage, relayer: { fee, authorization } });
      const payout = ether('50') - hubFee(ether('50')) - fee;
      assert.equal(result.payout, payout);
      await mined(result);
      assert.equal(await balanceOf(relayer.account.address), fee);
      assert.equal(await balanceOf(beneficiary), payout);
      assert.equal(await freeFunds(), ether('100') - payout - fee);
    });

    describe('when the relayer fee is not authorized by the provider', () => {
      it('reverts with HubInvalidSignature', async () => {
        const { promise, preimage } = await hubPromise(provider.account.address, ether('50'));
        const authorization = await signSettlementAuthorization(
          chain.account(3),
          promise,
          ether('1'),
          relayer.account.address,
        );
        await rejectsWith(
          settleProvider(relayer, { promise, preimage, relayer: { fee: ether('1'), authorization } }),
          'HubInvalidSignature',
          { expected: provider.account.address, recovered: relayer.account.address },
        );
      });
    });

    describe('when another account than the relayer the authorization names sends it', () => {
      it('reverts with HubInvalidSignature, and the named relayer then settles', async () => {
        const { promise, preimage } = await hubPromise(provider.account.address, ether('50'));
        const fee = ether('1');
        const authorization = await signSettlementAuthorization(
          chain.account(2),
          promise,
          fee,
          relayer.account.address,
        );
        const otherBefore = await balanceOf(other.account.address);
        const recovered = await recoverAddress({
          hash: settlementAuthorizationDigest(promise, fee, other.account.address),
          signature: authorization,
        });
        await rejectsWith(
          settleProvider(other, { promise, preimage, relayer: { fee, authorization } }),
          'HubInvalidSignature',
          {
            expected: provider.account.address,
            recovered,
          },
        );
        await mined(settleProvider(relayer, { promise, preimage, relayer: { fee, authorization } }));
        assert.equal(await balanceOf(relayer.account.address), fee);
        assert.equal(await balanceOf(other.account.address), otherBefore);
      });
    });

    describe('when the relayer fee exceeds the payout', () => {
      it('reverts with HubRelayerFeeTooHigh', async () => {
        const { promise, preimage } = await hubPromise(provider.account.address, ether('1'));
        const fee = ether('1');
        const authorization = await signSettlementAuthorization(
          chain.account(2),
          promise,
          fee,
          relayer.account.address,
        );
        await rejectsWith(
          settleProvider(relayer, { promise, preimage, relayer: { fee, authorization } }),
          'HubRelayerFeeTooHigh',
          { relayerFee: fee, payout: ether('1') - hubFee(ether('1')) },
        );
      });
    });

    describe('when the promise is stale', () => {
      it('reverts with HubProviderPromiseStale', async () => {
        const claim = await hubPromise(provider.account.address, ether('10'));
        await mined(settleProvider(provider, claim));
        await rejectsWith(settleProvider(provider, claim), 'HubProviderPromiseStale', {
          provider: provider.account.address,
          total: ether('10'),
          settled: ether('10'),
        });
      });
    });

    describe('when the free funds fall short', () => {
      it('pays from the stake and the hub reads as punished', async () => {
        const total = ether('150');
        const payout = total - hubFee(total);
        await mined(settleProvider(provider, await hubPromise(provider.account.address, total)));
        assert.equal(await balanceOf(beneficiary), payout);
        const info = await getHubInfo(chain.publicClient, { hub });
        assert.equal(info.status, 'punished');
        assert.equal(info.freeFunds, 0n);
        assert.equal(info.stakeOwed, payout - ether('100'));
        assert.equal(info.stake, PARAMETERS.minStake - (payout - ether('100')));
      });
    });

    describe('when free funds and stake together fall short', () => {
      it('reverts with HubInsufficientFunds', async () => {
        const total = ether('2000');
        await rejectsWith(
          settleProvider(provider, await hubPromise(provider.account.address, total)),
          'HubInsufficientFunds',
          { needed: total - hubFee(total), available: ether('100') + PARAMETERS.minStake },
        );
      });
    });

    it('settleProviders pays several providers in one transaction and skips stale claims', async () => {
      const stale = await hubPromise(provider.account.address, ether('5'));
      await mined(settleProvider(provider, stale));
      const fee = ether('0.5');
      const second = await hubPromise(other.account.address, ether('20'));
      const authorization = await signSettlementAuthorization(
        chain.account(5),
        second.promise,
        fee,
        relayer.account.address,
      );
      const result = await settleProviders(relayer, {
        hub,
        claims: [
          stale,
          await hubPromise(provider.account.address, ether('30')),
          { ...second, relayer: { fee, authorization } },
        ],
      });
      const first = ether('25') - hubFee(ether('25'));
      const secondPayout = ether('20') - hubFee(ether('20')) - fee;
      assert.equal(result.payout, first + secondPayout);
      await mined(result);
      assert.equal(await balanceOf(beneficiary), ether('5') - hubFee(ether('5')) + first);
      assert.equal(await balanceOf(other.account.address), ether('1000') + secondPayout);
      assert.equal(await balanceOf(relayer.account.address), fee);
      const settled = await getProviderChannel(chain.publicClient, { hub, provider: other.account.address });
      assert.deepEqual(settled, { settled: ether('20'), beneficiary: other.account.address, registered: false });
    });

    describe('when a promise of the batch is signed by another key', () => {
      it('settleProviders reverts with HubInvalidSignature', async () => {
        const { hashlock, preimage } = newHashlock();
        const forged = await signHubPromise(chain.account(5), {
          hub,
          chainId: chain.chain.id,
          provider: provider.account.address,
          total: ether('10'),
          hashlock,
        });
        await rejectsWith(
          settleProviders(relayer, { hub, claims: [{ promise: forged, preimage }] }),
          'HubInvalidSignature',
          { expected: operator.account.address, recovered: other.account.address },
        );
      });
    });

    it('settleProviderWithBeneficiary redirects the earnings and pays the new beneficiary at once', async () => {
      const fresh = chain.account(6).address;
      const change = await signSetBeneficiary(provider, { registry, beneficiary: fresh });
      const result = await settleProviderWithBeneficiary(relayer, {
        ...(await hubPromise(provider.account.address, ether('40'))),
        beneficiary: change,
      });
      const payout = ether('40') - hubFee(ether('40'));
      assert.equal(result.payout, payout);
      await mined(result);
      assert.equal(await balanceOf(fresh), payout);
      assert.equal(await balanceOf(beneficiary), 0n);
      const channel = await getProviderChannel(chain.publicClient, { hub, provider: provider.account.address });
      assert.deepEqual(channel, { settled: ether('40'), beneficiary: fresh, registered: true });
    });

    describe('when the beneficiary change was already used', () => {
      it('settleProviderWithBeneficiary reverts with RegistryInvalidSignature', async () => {
        const change = await signSetBeneficiary(provider, { registry, beneficiary: chain.account(6).address });
        await mined(setBeneficiaryRelayed(relayer, { change }));
        const claim = await hubPromise(provider.account.address, ether('40'));
        const recovered = await recoveredOf(change);
        await rejectsWith(
          settleProviderWithBeneficiary(relayer, { ...claim, beneficiary: change }),
          'RegistryInvalidSignature',
          { identity: provider.account.address, recovered },
        );
        assert.equal(await balanceOf(chain.account(6).address), 0n);
      });
    });

    describe('when the beneficiary change is not the provider’s', () => {
      it('settleProviderWithBeneficiary throws IDENTITY_MISMATCH without sending', async () => {
        const change = await signSetBeneficiary(other, { registry, beneficiary });
        await rejectsWithCode(
          settleProviderWithBeneficiary(relayer, {
            ...(await hubPromise(provider.account.address, ether('40'))),
            beneficiary: change,
          }),
          'IDENTITY_MISMATCH',
        );
      });
    });
  });

  describe('getHubInfo', () => {
    it('reads a fresh hub', async () => {
      assert.deepEqual(await getHubInfo(chain.publicClient, { hub }), {
        hub,
        operator: operator.account.address,
        token,
        registry,
        status: 'active',
        consumersPaused: false,
        fee: FIRST_HUB.fee,
        pendingFee: null,
        stake: PARAMETERS.minStake,
        stakeOwed: 0n,
        freeFunds: 0n,
        closesAt: null,
      });
    });

    it('shows a scheduled fee until it takes effect', async () => {
      const hash = await operator.writeContract({
        address: hub,
        abi: hubAbi,
        functionName: 'scheduleFee',
        args: [250],
      });
      await mined(hash);
      const effectiveAt = (await timestampOf(hash)) + PARAMETERS.feeDelay;
      const before = await getHubInfo(chain.publicClient, { hub });
      assert.equal(before.fee, FIRST_HUB.fee);
      assert.deepEqual(before.pendingFee, { fee: 250, effectiveAt });
      await travel(PARAMETERS.feeDelay);
      const afterDelay = await getHubInfo(chain.publicClient, { hub });
      assert.equal(afterDelay.fee, 250);
      assert.equal(afterDelay.pendingFee, null);
    });

    it('shows a closing hub and when it closes', async () => {
      await mined(
        operator.writeContract({ address: hub, abi: hubAbi, functionName: 'setConsumersPaused', args: [true] }),
      );
      const hash = await operator.writeContract({ address: hub, abi: hubAbi, functionName: 'requestClose' });
      await mined(hash);
      const info = await getHubInfo(chain.publicClient, { hub });
      assert.equal(info.status, 'closing');
      assert.equal(info.consumersPaused, true);
      assert.equal(info.closesAt, (await timestampOf(hash)) + PARAMETERS.closeDelay);
    });
  });

  describe('getConsumerChannel', () => {
    it('reads an unknown consumer as an empty channel', async () => {
      assert.deepEqual(await getConsumerChannel(chain.publicClient, { hub, consumer: beneficiary }), {
        balance: 0n,
        settled: 0n,
        exit: null,
      });
    });
  });

  describe('listHubs', () => {
    it('pages through the hubs with their URL, fee, stake and status', async () => {
      const operators = [chain.wallet(chain.account(6)), chain.wallet(chain.account(7))];
      const stakes = [ether('1500'), ether('1000')];
      for (const [i, wallet] of operators.entries()) {
        await chain.mint(wallet.account.address, stakes[i]!);
        await approve(wallet, registry, stakes[i]!);
        await mined(
          wallet.writeContract({
            address: registry,
            abi: registryAbi,
            functionName: 'registerHub',
            args: [stakes[i]!, 50 * (i + 1), `https://hub${i + 2}.example`],
          }),
        );
      }
      await mined(operator.writeContract({ address: hub, abi: hubAbi, functionName: 'requestClose' }));
      const hubOf = (wallet: ChainWalletClient) =>
        chain.publicClient.readContract({
          address: registry,
          abi: registryAbi,
          functionName: 'hubOf',
          args: [wallet.account.address],
        });

      const first = await listHubs(chain.publicClient, { registry, limit: 2 });
      assert.equal(first.total, 3);
      assert.equal(first.nextOffset, 2);
      assert.deepEqual(first.hubs, [
        {
          hub,
          operator: operator.account.address,
          url: FIRST_HUB.url,
          fee: FIRST_HUB.fee,
          stake: PARAMETERS.minStake,
          status: 'closing',
        },
        {
          hub: await hubOf(operators[0]!),
          operator: operators[0]!.account.address,
          url: 'https://hub2.example',
          fee: 50,
          stake: ether('1500'),
          status: 'active',
        },
      ]);
      const second = await listHubs(chain.publicClient, { registry, offset: first.nextOffset!, limit: 2 });
      assert.equal(second.nextOffset, null);
      assert.deepEqual(second.hubs, [
        {
          hub: await hubOf(operators[1]!),
          operator: operators[1]!.account.address,
          url: 'https://hub3.example',
          fee: 100,
          stake: ether('1000'),
          status: 'active',
        },
      ]);
      assert.deepEqual(await listHubs(chain.publicClient, { registry, offset: 3 }), {
        hubs: [],
        total: 3,
        nextOffset: null,
      });
    });
  });

  describe('waitForTransaction', () => {
    it('returns the receipt of a mined transaction', async () => {
      const { hash } = await deposit(consumer, { hub, amount: ether('1') });
      const receipt = await waitForTransaction(consumer, { hash });
      assert.equal(receipt.status, 'success');
      assert.equal(receipt.transactionHash, hash);
    });

    describe('when the transaction reverted on-chain', () => {
      it('throws the decoded revert of a front-run settlement', async () => {
        await mined(deposit(consumer, { hub, amount: ether('10') }));
        const claim = await consumerPromise(chain.account(1), ether('5'));
        await chain.testClient.setAutomine(false);
        try {
          // The first settles through the SDK; the second, sent without simulation in the same block,
          // finds the promise already settled when it is mined.
          const first = await settleConsumer(relayer, claim);
          const second = await other.writeContract({
            address: hub,
            abi: hubAbi,
            functionName: 'settleConsumer',
            args: [toConsumerClaim(claim.promise, claim.preimage)],
            gas: 300_000n,
          });
          await chain.testClient.mine({ blocks: 1 });
          await mined(first);
          const error = await rejectsWith(waitForTransaction(other, { hash: second }), 'HubConsumerPromiseStale', {
            consumer: consumer.account.address,
            total: ether('5'),
            settled: ether('5'),
          });
          assert.equal(error.contractAddress?.toLowerCase(), hub.toLowerCase());
          assert.equal(error.functionName, 'settleConsumer');
          const receipt = await chain.publicClient.getTransactionReceipt({ hash: second });
          assert.equal(receipt.status, 'reverted');
        } finally {
          await chain.testClient.setAutomine(true);
        }
      });
    });
  });

  describe('errors', () => {
    it('decodeContractError decodes raw revert data of any Chit contract', () => {
      const error = decodeContractError(
        '0xfb8f41b2000000000000000000000000d8fc5e1bc1649fe55004b606a92a2501d603fc4d0000000000000000000000000000000000000000000000000de0b6b3a76400000000000000000000000000000000000000000000000000001bc16d674ec80000',
      );
      assert.ok(error instanceof ContractRevertError);
      assert.ok(error.is('ERC20InsufficientAllowance'));
      assert.deepEqual(error.args, {
        spender: '0xd8FC5e1bC1649fE55004b606a92a2501D603fC4d',
        allowance: ether('1'),
        needed: ether('2'),
      });
      assert.equal(error.is('HubZeroAmount'), false);
    });

    it('decodeContractError wraps unknown revert data in a ContractCallError', () => {
      const error = decodeContractError('0xdeadbeef');
      assert.ok(error instanceof ContractCallError);
      assert.equal(error.revertData, '0xdeadbeef');
    });

    it('a write without an account throws ACCOUNT_REQUIRED', async () => {
      await rejectsWithCode(cancelExit(chain.publicClient, { hub }), 'ACCOUNT_REQUIRED');
    });

    it('a call to an address without code throws a ContractCallError', async () => {
      await assert.rejects(finalizeExit(consumer, { hub: beneficiary }), (error: unknown) => {
        assert.ok(error instanceof ContractCallError, String(error));
        assert.equal(error.code, 'CONTRACT_CALL_FAILED');
        return true;
      });
    });
  });
});

/** The address a Registry signature recovers to when checked against the identity's current nonce, a
 * registration sent by `sender` (the Registry's `relayer`: its own, by default). */
async function recoveredOf(
  signed: { registry: Address; chainId: number; identity: Address; beneficiary: Address; signature: Hex } & (
    | { relayerFee: bigint; relayer: Address }
    | object
  ),
  sender?: Address,
): Promise<Address> {
  const nonce = await registryNonce(signed.identity);
  const domain = registryDomain({ registry: signed.registry, chainId: signed.chainId });
  if ('relayerFee' in signed) {
    return recoverTypedDataAddress({
      domain,
      types: registerIdentityTypes,
      primaryType: 'RegisterIdentity',
      message: {
        identity: signed.identity,
        beneficiary: signed.beneficiary,
        relayerFee: signed.relayerFee,
        relayer: sender ?? signed.relayer,
        nonce,
      },
      signature: signed.signature,
    });
  }
  return recoverTypedDataAddress({
    domain,
    types: setBeneficiaryTypes,
    primaryType: 'SetBeneficiary',
    message: { identity: signed.identity, beneficiary: signed.beneficiary, nonce },
    signature: signed.signature,
  });
}

/** The address a consumer promise's signature recovers to. */
async function recoveredConsumer(promise: SignedConsumerPromise): Promise<Address> {
  return recoverAddress({ hash: consumerPromiseDigest(promise), signature: promise.signature });
}
