/**
 * `chit`, the command line, run as a child process (`node --import tsx src/main.ts`) against anvil
 * (the SDK's sdk/test/support/chain.ts) and the reference hub (sdk/test/support/reference-hub.ts), each
 * test with its own identity
 * and keystore, config in a temporary XDG_CONFIG_HOME, and the password in CHIT_PASSWORD.
 *
 * The reference hub serves info, exchange, reveal, recovery, quotes and settlements. A thin front in
 * this file serves the endpoints it lacks, from the chain and the reference hub's books:
 * `GET /v1/consumers/{address}`, `GET /v1/providers/{address}`, `POST /v1/exits/instant` (the consumer's
 * signed request checked, then signed with the operator key) and `POST /v1/relay/identities|beneficiaries` (submitted at once with a relayer
 * account); the rest is passed through.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  chitTokenAbi,
  decodeMessage,
  encodeMessage,
  getConsumerChannel,
  getProviderChannel,
  HubClient,
  hubAbi,
  newHashlock,
  registerIdentityRelayed,
  registryAbi,
  type SignedHubPromise,
  sealPreimage,
  setBeneficiaryRelayed,
  signConsumerPromise,
  signHubPromise,
  signInstantExit,
  verifyInstantExitRequest,
  waitForTransaction,
} from '@chit/sdk';
import { decryptKeystoreJson } from 'ethers/wallet';
import { type Address, bytesToHex, getAddress, type Hex, keccak256, parseEther, parseSignature } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import {
  type ChainWalletClient,
  FIRST_HUB,
  PARAMETERS,
  startChain,
  type TestChain,
} from '../../sdk/test/support/chain.js';
import { type ReferenceHub, startReferenceHub } from '../../sdk/test/support/reference-hub.js';

const PACKAGE = fileURLToPath(new URL('..', import.meta.url));
const CLI = path.join(PACKAGE, 'src', 'main.ts');
const PASSWORD = 'correct horse battery staple';

let chain: TestChain;
let reference: ReferenceHub;
let front: HubFront;
let relayer: ChainWalletClient;
let home: string;

interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `chit args…` with the test's environment plus `env` (a value of undefined removes a variable). With
 * `terminal`, it runs on a pseudo-terminal (util-linux `script`), and `answer` is typed once `question`
 * shows; stdout then holds everything the terminal showed, stderr included.
 */
function chit(
  args: string[],
  options: {
    env?: Record<string, string | undefined>;
    input?: string;
    terminal?: { question: RegExp; answer: string };
  } = {},
): Promise<Run> {
  const env: Record<string, string | undefined> = Object.fromEntries(
    Object.entries(process.env).filter(([key]) => !key.startsWith('CHIT_') && key !== 'XDG_CONFIG_HOME'),
  );
  Object.assign(
    env,
    {
      HOME: home,
      XDG_CONFIG_HOME: path.join(home, 'config'),
      CHIT_RPC_URL: chain.url,
      CHIT_HUB_URL: front.url,
      CHIT_PASSWORD: PASSWORD,
    },
    options.env,
  );
  for (const [key, value] of Object.entries(env)) if (value === undefined) delete env[key];
  const command = [process.execPath, '--import', 'tsx', CLI, ...args];
  const { terminal } = options;
  const quote = (word: string) => `'${word.replaceAll("'", "'\\''")}'`;
  return new Promise((resolve, reject) => {
    const child = terminal
      ? spawn('script', ['-q', '-e', '-c', command.map(quote).join(' '), '/dev/null'], {
          cwd: PACKAGE,
          env: env as NodeJS.ProcessEnv,
          stdio: ['pipe', 'pipe', 'pipe'],
        })
      : spawn(command[0]!, command.slice(1), {
          cwd: PACKAGE,
          env: env as NodeJS.ProcessEnv,
          stdio: ['pipe', 'pipe', 'pipe'],
        });
    let stdout = '';
    let stderr = '';
    let asked = false;
    child.stdout.on('data', (chunk) => {
      stdout += chunk;
      if (terminal && !asked && terminal.question.test(stdout)) {
        asked = true;
        child.stdin.write(terminal.answer);
      }
    });
    child.stderr.on('data', (chunk) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    if (!terminal) child.stdin.end(options.input ?? '');
  });
}

/** Asserts a run succeeded and returns its JSON output. */
// biome-ignore lint/suspicious/noExplicitAny: the CLI's JSON output, checked field by field.
function ok(run: Run): any {
  assert.equal(run.code, 0, `expected success, got ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  return run.stdout.trimStart().startsWith('{') ? JSON.parse(run.stdout) : run.stdout;
}

/** Asserts a run failed with exit code 1 and an error on stderr that says what to do next. */
function failed(run: Run): string {
  assert.equal(run.code, 1, `expected failure, got ${run.code}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  assert.match(run.stderr, /^error: .+\n(.*\n)*\s+→ .+/m, `no error with a hint:\n${run.stderr}`);
  return run.stderr;
}

/** A fresh identity: its key, saved with `chit identity import` to its own keystore (with light scrypt
 * parameters, to unlock fast), and funded with gas. */
async function identity(
  tokens = 0n,
  gas = parseEther('1'),
): Promise<{ key: Hex; address: Address; env: Record<string, string> }> {
  const key = generatePrivateKey();
  const { address } = privateKeyToAccount(key);
  const keystore = path.join(home, 'keys', `${address}.json`);
  const env = { CHIT_KEYSTORE: keystore };
  const imported = ok(await chit(['identity', 'import', '--light-kdf', '--json'], { env, input: `${key}\n` }));
  assert.equal(imported.address, address);
  if (gas > 0n) await chain.testClient.setBalance({ address, value: gas });
  if (tokens > 0n) await chain.mint(address, tokens);
  return { key, address, env };
}

const tokenBalance = (owner: Address) =>
  chain.publicClient.readContract({
    address: chain.token,
    abi: chitTokenAbi,
    functionName: 'balanceOf',
    args: [owner],
  });
const beneficiaryOf = (identity: Address) =>
  chain.publicClient.readContract({
    address: chain.registry,
    abi: registryAbi,
    functionName: 'beneficiaryOf',
    args: [identity],
  });
const hubFee = (amount: bigint) => (amount * BigInt(FIRST_HUB.fee)) / 10_000n;

describe('chit', () => {
  before(async () => {
    home = mkdtempSync(path.join(tmpdir(), 'chit-cli-'));
    chain = await startChain();
    const operatorKey = bytesToHex(chain.account(0).getHdKey().privateKey!);
    reference = await startReferenceHub({ hub: chain.hub, chainId: chain.chain.id, operatorKey, fee: FIRST_HUB.fee });
    relayer = chain.wallet(chain.account(3));
    front = await startHubFront();
    // Free funds, so that provider settlements do not come out of the stake.
    const operator = chain.deployer;
    await chain.mint(operator.account.address, parseEther('500'));
    const approve = await operator.writeContract({
      address: chain.token,
      abi: chitTokenAbi,
      functionName: 'approve',
      args: [chain.hub, parseEther('500')],
    });
    await waitForTransaction(chain.publicClient, { hash: approve });
    const fund = await operator.writeContract({
      address: chain.hub,
      abi: hubAbi,
      functionName: 'addFreeFunds',
      args: [parseEther('500')],
    });
    await waitForTransaction(chain.publicClient, { hash: fund });
  });

  after(async () => {
    await front?.stop();
    await reference?.stop();
    await chain?.stop();
    if (home) rmSync(home, { recursive: true, force: true });
  });

  describe('identity', () => {
    it('new saves an encrypted keystore, never the key, and show prints the address', async () => {
      const created = ok(await chit(['identity', 'new', '--json']));
      const file = path.join(home, 'config', 'chit', 'keystore.json');
      assert.equal(created.keystore, file);
      assert.equal(statSync(file).mode & 0o777, 0o600);
      const text = readFileSync(file, 'utf8');
      const keystore = JSON.parse(text);
      assert.equal(keystore.Crypto.kdf, 'scrypt');
      assert.equal(keystore.Crypto.kdfparams.n, 131072);
      const { address, privateKey } = await decryptKeystoreJson(text, PASSWORD);
      assert.equal(address, created.address);
      assert.ok(!text.toLowerCase().includes(privateKey.slice(2).toLowerCase()), 'the plain key is in the keystore');

      const shown = ok(await chit(['identity', 'show', '--json']));
      assert.equal(shown.address, created.address);
      assert.equal(shown.registered, false);
      assert.equal(shown.beneficiary, created.address);
      assert.equal(shown.eth, '0');
      assert.equal(shown.tokens, '0');
    });

    it('fund gives an unfunded identity ETH and test tokens on the local chain, enough to register', async () => {
      const fresh = await identity(0n, 0n);
      const run = await chit(['identity', 'fund', '--json'], { env: fresh.env });
      const funded = ok(run);
      assert.deepEqual(
        [funded.chainId, funded.eth, funded.ethBalance, funded.tokens, funded.tokenBalance, funded.token],
        [31337, '10', '10', '1000', '1000', chain.token],
      );
      assert.match(funded.transaction, /^0x[0-9a-f]{64}$/);
      assert.match(run.stderr, /waiting for confirmation \(1\/1\): mint 0x/);
      assert.equal(await tokenBalance(fresh.address), parseEther('1000'));
      // The node's last development account sent the mint, not the hub's operator (#0), whose nonces the
      // hub allocates: the identity's ETH is all there.
      const mint = await chain.publicClient.getTransactionReceipt({ hash: funded.transaction });
      assert.equal(getAddress(mint.from), chain.account(9).address);
      assert.equal(await chain.publicClient.getBalance({ address: fresh.address }), parseEther('10'));

      // What failed with "too little ETH" before: the next documented step.
      ok(await chit(['beneficiary', 'set', chain.account(7).address], { env: fresh.env }));
      assert.equal(await beneficiaryOf(fresh.address), chain.account(7).address);

      const more = ok(await chit(['identity', 'fund', '--eth', '0.5', '--tokens', '0', '--json'], { env: fresh.env }));
      assert.deepEqual([more.eth, more.tokens, more.transaction], ['0.5', '0', null]);
      assert.equal(
        await chain.publicClient.getBalance({ address: fresh.address }),
        BigInt(parseEther(more.ethBalance)),
      );
      assert.equal(await tokenBalance(fresh.address), parseEther('1000'));

      // Tokens and no gas, and no password asked: what a relayed registration starts from.
      const gasless = await identity(0n, 0n);
      const tokensOnly = ok(
        await chit(['identity', 'fund', '--eth', '0', '--tokens', '5', '--json'], {
          env: { ...gasless.env, CHIT_PASSWORD: undefined },
        }),
      );
      assert.deepEqual([tokensOnly.ethBalance, tokensOnly.tokenBalance], ['0', '5']);
      assert.equal(await chain.publicClient.getBalance({ address: gasless.address }), 0n);
    });

    describe('when the chain is not a local one', () => {
      it('fund refuses before asking the node for anything but its chain id, and says what to do', async () => {
        const fresh = await identity(0n, 0n);
        const node = await startFakeNode(1);
        try {
          const run = await chit(['identity', 'fund', '--json'], { env: { ...fresh.env, CHIT_RPC_URL: node.url } });
          assert.equal(run.code, 1);
          assert.equal(run.stdout, '');
          const { error } = JSON.parse(run.stderr);
          assert.equal(error.code, 'NOT_A_LOCAL_CHAIN');
          assert.equal(
            error.message,
            `chit identity fund works only on a local development chain (chain 31337); the RPC node at ${node.url} is on chain 1`,
          );
          assert.match(error.hint, /from a wallet of yours/);
          assert.deepEqual([...new Set(node.methods)], ['eth_chainId']);
        } finally {
          await node.stop();
        }
        assert.equal(await chain.publicClient.getBalance({ address: fresh.address }), 0n);
      });
    });

    describe('when a keystore exists', () => {
      it('new refuses to replace it and says how', async () => {
        const stderr = failed(await chit(['identity', 'new']));
        assert.match(stderr, /A keystore already exists at .*keystore\.json/);
        assert.match(stderr, /--force/);
      });
    });

    it('import reads the key from stdin or a file and keeps only the encrypted form', async () => {
      const key = generatePrivateKey();
      const keystore = path.join(home, 'imported.json');
      const fromStdin = ok(
        await chit(['identity', 'import', '--json'], { env: { CHIT_KEYSTORE: keystore }, input: key.slice(2) }),
      );
      assert.equal(fromStdin.address, privateKeyToAccount(key).address);
      const text = readFileSync(keystore, 'utf8');
      assert.ok(!text.includes(key.slice(2)), 'the plain key is in the keystore');

      const keyFile = path.join(home, 'key.txt');
      writeFileSync(keyFile, `${key}\n`);
      // --keystore wins over CHIT_KEYSTORE (which holds a keystore already, and would be refused).
      const other = path.join(home, 'other.json');
      const fromFile = ok(
        await chit(
          ['identity', 'import', '--private-key-file', keyFile, '--keystore', other, '--light-kdf', '--json'],
          {
            env: { CHIT_KEYSTORE: keystore },
          },
        ),
      );
      assert.deepEqual(fromFile, { address: privateKeyToAccount(key).address, keystore: other });
      const light = JSON.parse(readFileSync(other, 'utf8'));
      assert.deepEqual([light.Crypto.kdf, light.Crypto.kdfparams.n], ['scrypt', 4096]);
      const { privateKey } = await decryptKeystoreJson(readFileSync(other, 'utf8'), PASSWORD);
      assert.equal(privateKey, key);
    });

    describe('when the input is not a private key', () => {
      it('import fails and says what a key looks like', async () => {
        const stderr = failed(
          await chit(['identity', 'import'], { env: { CHIT_KEYSTORE: path.join(home, 'bad.json') }, input: '0x1234' }),
        );
        assert.match(stderr, /not a private key/);
        assert.match(stderr, /64 hex digits/);
      });
    });
  });

  describe('consumer', () => {
    let consumer: Awaited<ReturnType<typeof identity>>;

    before(async () => {
      consumer = await identity(parseEther('100'));
    });

    it('deposit approves and deposits, with progress on stderr, and balance shows it', async () => {
      const run = await chit(['deposit', '12.5', '--json'], { env: consumer.env });
      const deposited = ok(run);
      assert.equal(deposited.amount, '12.5');
      assert.equal(deposited.balance, '12.5');
      assert.equal(deposited.hubBalance, '12.5', 'it waited for the hub to see the deposit');
      assert.match(deposited.transactions.approval, /^0x[0-9a-f]{64}$/);
      assert.match(run.stderr, /waiting for confirmation \(1\/2\)/);
      assert.match(run.stderr, /waiting for confirmation \(2\/2\): deposit 0x/);

      const permit = ok(await chit(['deposit', '2.5', '--permit', '--json'], { env: consumer.env }));
      assert.equal(permit.transactions.approval, null);
      const channel = await getConsumerChannel(chain.publicClient, { hub: chain.hub, consumer: consumer.address });
      assert.equal(channel.balance, parseEther('15'));

      const balance = ok(await chit(['balance', '--json'], { env: consumer.env }));
      assert.equal(balance.address, consumer.address);
      assert.equal(balance.hub, chain.hub);
      assert.deepEqual(balance.consumer.onChain, { balance: '15', settled: '0', pendingExit: null });
      assert.deepEqual(balance.consumer.hub, {
        balance: '15',
        promised: '0',
        credited: '0',
        available: '15',
        pendingExit: null,
      });
      assert.equal(balance.provider.hub, null);

      const human = ok(await chit(['balance'], { env: consumer.env }));
      assert.match(human, /balance: +15 tCHIT/);
      assert.match(human, /available: +15 tCHIT/);
    });

    it('exit request, then finalize after the exit delay, pays out', async () => {
      const requested = ok(await chit(['exit', 'request', '5', '--json'], { env: consumer.env }));
      assert.equal(requested.amount, '5');

      // Too early: the contract refuses, and the message says when to come back.
      const stderr = failed(await chit(['exit', 'finalize'], { env: consumer.env }));
      assert.match(stderr, /can be finalized only from \d{4}-\d\d-\d\dT/);
      assert.match(stderr, /HubExitNotReady/);
      assert.match(stderr, /→ Run `chit exit finalize` again after/);

      await chain.testClient.increaseTime({ seconds: Number(PARAMETERS.exitDelay) });
      await chain.testClient.mine({ blocks: 1 });
      const before = await tokenBalance(consumer.address);
      const finalized = ok(await chit(['exit', 'finalize', '--json'], { env: consumer.env }));
      assert.equal(finalized.amount, '5');
      assert.equal(await tokenBalance(consumer.address), before + parseEther('5'));
    });

    it("exit instant takes tokens out at once with the hub's co-signature", async () => {
      const before = await getConsumerChannel(chain.publicClient, { hub: chain.hub, consumer: consumer.address });
      const run = await chit(['exit', 'instant', '2', '--json'], { env: consumer.env });
      assert.equal(ok(run).amount, '2');
      assert.match(run.stderr, /asking the hub .* to co-sign/);
      const after = await getConsumerChannel(chain.publicClient, { hub: chain.hub, consumer: consumer.address });
      assert.equal(after.balance, before.balance - parseEther('2'));
      assert.ok(front.requests.includes('POST /v1/exits/instant'));
    });

    describe("when the chain's clock runs ahead of this machine's", () => {
      it('deposit --permit signs a deadline in block time, and deposits', async () => {
        const ahead = await identity(parseEther('10'));
        await chain.testClient.increaseTime({ seconds: 7_200 });
        await chain.testClient.mine({ blocks: 1 });
        const deposited = ok(await chit(['deposit', '3', '--permit', '--json'], { env: ahead.env }));
        assert.equal(deposited.balance, '3');
        const channel = await getConsumerChannel(chain.publicClient, { hub: chain.hub, consumer: ahead.address });
        assert.equal(channel.balance, parseEther('3'));
      });
    });

    describe('when the amount has more decimals than the token', () => {
      it('deposit refuses it before anything is sent', async () => {
        const stderr = failed(await chit(['deposit', '0.0000000000000000001'], { env: consumer.env }));
        assert.match(stderr, /more than the token's 18 decimals/);
      });
    });

    describe('when the password is wrong', () => {
      it('fails without sending and points at CHIT_PASSWORD', async () => {
        const nonce = await chain.publicClient.getTransactionCount({ address: consumer.address });
        const stderr = failed(await chit(['deposit', '1'], { env: { ...consumer.env, CHIT_PASSWORD: 'wrong' } }));
        assert.match(stderr, /The password does not open the keystore/);
        assert.match(stderr, /CHIT_PASSWORD/);
        assert.equal(await chain.publicClient.getTransactionCount({ address: consumer.address }), nonce);
      });
    });

    describe('when no RPC URL is set', () => {
      it('fails and names the flag, the variable and the config file', async () => {
        const stderr = failed(await chit(['balance'], { env: { ...consumer.env, CHIT_RPC_URL: undefined } }));
        assert.match(stderr, /No RPC URL is set/);
        assert.match(stderr, /--rpc-url <url>, set CHIT_RPC_URL, or add "rpcUrl" to .*config\.json/);

        // With --json, the same error as JSON on stderr, and nothing on stdout.
        const run = await chit(['balance', '--json'], { env: { ...consumer.env, CHIT_RPC_URL: undefined } });
        assert.equal(run.code, 1);
        assert.equal(run.stdout, '');
        const { error } = JSON.parse(run.stderr);
        assert.equal(error.code, 'RPC_URL_MISSING');
        assert.match(error.hint, /CHIT_RPC_URL/);
      });
    });

    describe('when the transaction would revert', () => {
      it('reports the decoded revert in tokens, with what to do', async () => {
        const stderr = failed(await chit(['exit', 'request', '1000'], { env: consumer.env }));
        assert.match(stderr, /holds 8 tCHIT, less than the 1000 tCHIT asked for/);
        assert.match(stderr, /HubInsufficientBalance/);
        assert.match(stderr, /chit deposit <amount>/);
      });
    });
  });

  describe('provider', () => {
    let provider: Awaited<ReturnType<typeof identity>>;
    const consumer = privateKeyToAccount(generatePrivateKey());
    const hubClient = () => new HubClient({ url: reference.url });
    let previousPreimage: Hex | undefined;
    let agreementTotal = 0n;
    let consumerTotal = 0n;

    /** The consumer pays the provider `amount` more and the provider exchanges it at the reference hub. */
    async function earn(amount: bigint): Promise<SignedHubPromise> {
      const { preimage, hashlock } = newHashlock();
      agreementTotal += amount;
      consumerTotal += amount;
      const promise = await signConsumerPromise(consumer, {
        hub: chain.hub,
        chainId: chain.chain.id,
        consumer: consumer.address,
        total: consumerTotal,
        hashlock,
        agreement: { provider: provider.address, id: keccak256(consumer.address), total: agreementTotal },
      });
      const { hubPromise } = await hubClient().exchange({
        promise,
        encryptedPreimage: sealPreimage(reference.publicKey, preimage),
        ...(previousPreimage ? { previousPreimage } : {}),
      });
      previousPreimage = preimage;
      return hubPromise;
    }

    before(async () => {
      provider = await identity();
      reference.deposit(consumer.address, parseEther('100'));
    });

    it('beneficiary set registers the identity with its beneficiary, and --relayed changes it through the hub', async () => {
      const first = chain.account(7).address;
      const registered = ok(await chit(['beneficiary', 'set', first, '--json'], { env: provider.env }));
      assert.equal(registered.registered, true);
      assert.equal(await beneficiaryOf(provider.address), first);

      const second = chain.account(8).address;
      const run = await chit(['beneficiary', 'set', second.toLowerCase(), '--relayed', '--json'], {
        env: provider.env,
      });
      assert.equal(ok(run).beneficiary, second);
      assert.equal(await beneficiaryOf(provider.address), second);
      assert.match(run.stderr, /waiting for the hub's relayer/);
      assert.ok(front.requests.includes('POST /v1/relay/beneficiaries'));
    });

    describe('when the hub quotes a relayer fee', () => {
      afterEach(() => {
        front.relayFee = 0n;
      });

      it('beneficiary set --relayed registers an identity that holds tokens and no ETH, paying the relayer with its permit', async () => {
        front.relayFee = parseEther('0.01');
        const gasless = await identity(parseEther('1'), 0n);
        const relayerBefore = await tokenBalance(relayer.account.address);
        const permits = front.permits;
        const beneficiary = chain.account(7).address;
        const run = await chit(['beneficiary', 'set', beneficiary, '--relayed', '--json'], { env: gasless.env });
        assert.equal(ok(run).beneficiary, beneficiary);
        assert.match(
          run.stderr,
          /relayer fee: 0\.02 tCHIT, from this identity's tokens, with a permit that the relayer submits first/,
        );
        assert.equal(front.permits, permits + 1);
        assert.equal(await beneficiaryOf(gasless.address), beneficiary);
        assert.equal(await tokenBalance(gasless.address), parseEther('0.98'));
        assert.equal(await tokenBalance(relayer.account.address), relayerBefore + parseEther('0.02'));
        assert.equal(await chain.publicClient.getBalance({ address: gasless.address }), 0n);
      });

      it('beneficiary set --relayed refuses a registration the identity cannot pay, before signing anything', async () => {
        front.relayFee = parseEther('0.01');
        const gasless = await identity(parseEther('0.015'), 0n);
        const before = front.requests.length;
        const run = await chit(['beneficiary', 'set', chain.account(7).address, '--relayed', '--json'], {
          env: gasless.env,
        });
        assert.equal(run.code, 1);
        const { error } = JSON.parse(run.stderr);
        assert.equal(error.code, 'RELAYER_FEE_UNPAYABLE');
        // Without an allowance, the fee of a registration paid with a permit.
        assert.match(error.message, /0\.02 tCHIT, .* holds 0\.015 tCHIT and allows the Registry 0 tCHIT$/);
        // Asked for the quote, and sent nothing to relay.
        assert.ok(front.requests.slice(before).includes('GET /v1/quotes/relay'));
        assert.ok(!front.requests.slice(before).some((request) => request.startsWith('POST')));
        assert.equal(await beneficiaryOf(gasless.address), gasless.address);
      });

      it('beneficiary set --relayed refuses a beneficiary change the hub would pay for, pointing at the direct way', async () => {
        front.relayFee = parseEther('0.01');
        ok(await chit(['beneficiary', 'set', chain.account(7).address], { env: provider.env }));
        const stderr = failed(
          await chit(['beneficiary', 'set', chain.account(9).address, '--relayed'], { env: provider.env }),
        );
        assert.match(stderr, /carries no relayer fee/);
        assert.match(stderr, /without --relayed/);
        assert.equal(await beneficiaryOf(provider.address), chain.account(7).address);
      });
    });

    it('beneficiary set --relayed registers an identity that holds no ETH, through the hub', async () => {
      const gasless = await identity(0n, 0n);
      const beneficiary = chain.account(7).address;
      ok(await chit(['beneficiary', 'set', beneficiary, '--relayed'], { env: gasless.env }));
      assert.equal(await beneficiaryOf(gasless.address), beneficiary);
      assert.equal(await chain.publicClient.getBalance({ address: gasless.address }), 0n);
      assert.ok(front.requests.includes('POST /v1/relay/identities'));
    });

    describe('when the beneficiary is not an address', () => {
      it('beneficiary set refuses it', async () => {
        const stderr = failed(await chit(['beneficiary', 'set', '0x1234'], { env: provider.env }));
        assert.match(stderr, /not a valid address: 0x1234/);
      });
    });

    it('settle shows the fees and asks for confirmation; without a terminal it needs --yes', async () => {
      const promise = await earn(parseEther('7'));
      const run = await chit(['settle'], { env: provider.env });
      failed(run);
      assert.match(run.stdout, /To settle: +7 tCHIT/);
      assert.match(run.stdout, /Hub fee: +0\.07 tCHIT \(1\.00%\)/);
      assert.match(run.stdout, /You receive: +6\.93 tCHIT at 0x/);
      assert.match(run.stderr, /Confirmation needed/);
      assert.match(run.stderr, /--yes/);
      const channel = await getProviderChannel(chain.publicClient, { hub: chain.hub, provider: provider.address });
      assert.equal(channel.settled, 0n, 'settled without confirmation');
      assert.ok(reference.requests.includes('POST /v1/recovery'));
      assert.equal(promise.total, parseEther('7'));
    });

    it('settle --yes settles the latest hub promise on-chain to the beneficiary', async () => {
      const beneficiary = await beneficiaryOf(provider.address);
      const before = await tokenBalance(beneficiary);
      const run = await chit(['settle', '--yes', '--json'], { env: provider.env });
      const settled = ok(run);
      assert.deepEqual(
        {
          owed: settled.owed,
          hubFee: settled.hubFee,
          payout: settled.payout,
          fromStake: settled.fromStake,
          beneficiary: settled.beneficiary,
        },
        { owed: '7', hubFee: '0.07', payout: '6.93', fromStake: '0', beneficiary },
      );
      assert.doesNotMatch(run.stderr, /stake/);
      assert.equal(await tokenBalance(beneficiary), before + parseEther('7') - hubFee(parseEther('7')));
      const channel = await getProviderChannel(chain.publicClient, { hub: chain.hub, provider: provider.address });
      assert.equal(channel.settled, parseEther('7'));

      const again = ok(await chit(['settle', '--yes'], { env: provider.env }));
      assert.match(again, /Nothing to settle: the latest hub promise \(7 tCHIT\) is settled/);
    });

    it("settle --relayer hands the provider's authorization to the hub's relayer and waits for it", async () => {
      await earn(parseEther('3'));
      const running = chit(['settle', '--relayer', '--yes', '--json'], { env: provider.env });
      // Confirmed by the reference hub once the command has seen it queued.
      await until(() => front.requests.some((request) => request.startsWith('GET /v1/settlements/settlement-')));
      reference.confirmSettlements();
      const run = await running;
      const settled = ok(run);
      assert.equal(settled.owed, '3');
      assert.equal(settled.relayerFee, '0');
      assert.match(settled.settlement, /^settlement-/);
      // The first answer it prints is queued, or confirmed already when the reference hub confirmed the
      // settlement while that answer was being made (the front records a request as it arrives).
      assert.match(run.stderr, /waiting for the hub's relayer: provider settlement-\d+ (queued|confirmed)/);
    });

    it('withdraw --to pays everything owed to a new beneficiary in one transaction', async () => {
      // 7 + 3 + 2 earned, 7 settled on-chain: the relayed settlement above was only booked by the
      // reference hub, which sends no transaction.
      await earn(parseEther('2'));
      const owed = parseEther('5');
      const fresh = chain.account(9).address;
      const before = await tokenBalance(fresh);
      const withdrawn = ok(await chit(['withdraw', '--to', fresh, '--yes', '--json'], { env: provider.env }));
      assert.equal(withdrawn.beneficiary, fresh);
      assert.deepEqual([withdrawn.owed, withdrawn.payout], ['5', '4.95']);
      assert.equal(await tokenBalance(fresh), before + owed - hubFee(owed));
      assert.equal(await beneficiaryOf(provider.address), fresh);

      const nothing = ok(await chit(['withdraw', '--yes'], { env: provider.env }));
      assert.match(nothing, /Nothing to settle/);
    });

    it('balance shows what the hub says the provider earned', async () => {
      const balance = ok(await chit(['balance', '--json'], { env: provider.env }));
      assert.deepEqual(balance.provider.hub, { earned: '12', settled: '12', unsettled: '0' });
      assert.equal(balance.provider.onChain.settled, '12');
      assert.equal(balance.provider.onChain.registered, true);
    });

    describe('when the hub holds no promise for the identity', () => {
      it('settle says there is nothing to settle', async () => {
        const stranger = await identity();
        const run = ok(await chit(['settle', '--yes'], { env: stranger.env }));
        assert.match(run, /Nothing to settle: the hub holds no promise to this identity/);
      });
    });

    describe("when the hub's free funds cannot pay all of the settlement", () => {
      const operator = () => chain.deployer;
      const hubRead = (functionName: 'freeFunds' | 'stakeOwed') =>
        chain.publicClient.readContract({ address: chain.hub, abi: hubAbi, functionName });
      const punished = () =>
        chain.publicClient.readContract({ address: chain.hub, abi: hubAbi, functionName: 'isPunished' });
      const send = async (hash: Promise<Hex>) => {
        const receipt = await waitForTransaction(chain.publicClient, { hash: await hash });
        assert.equal(receipt.status, 'success');
      };
      let withdrawn = 0n;
      // Everything earned so far is settled: 4 more to settle, 3.96 paid out after the hub fee, of which
      // the 1 token left in the free funds pays 1 and the stake 2.96.
      const warning =
        "warning: the hub's free funds hold 1 tCHIT, so 2.96 tCHIT of the 3.96 tCHIT this settlement pays out comes from its stake: that marks the hub punished until its operator tops the stake up.";

      before(async () => {
        withdrawn = (await hubRead('freeFunds')) - parseEther('1');
        await send(
          operator().writeContract({
            address: chain.hub,
            abi: hubAbi,
            functionName: 'withdrawFreeFunds',
            args: [operator().account.address, withdrawn],
          }),
        );
        await earn(parseEther('4'));
      });

      after(async () => {
        // The operator ends the punishment and puts the free funds back, as it found them.
        const owed = await hubRead('stakeOwed');
        await chain.mint(operator().account.address, owed);
        const contract = { address: chain.hub, abi: hubAbi } as const;
        await send(
          operator().writeContract({
            address: chain.token,
            abi: chitTokenAbi,
            functionName: 'approve',
            args: [chain.hub, owed + withdrawn],
          }),
        );
        if (owed > 0n)
          await send(operator().writeContract({ ...contract, functionName: 'increaseStake', args: [owed] }));
        await send(operator().writeContract({ ...contract, functionName: 'addFreeFunds', args: [withdrawn] }));
        assert.equal(await punished(), false);
      });

      it('settle warns before asking, and its question names what the stake pays', async () => {
        const run = await chit(['settle'], {
          env: provider.env,
          terminal: { question: /\[y\/N\] /, answer: 'n\r' },
        });
        assert.equal(run.code, 1, run.stdout);
        // What the terminal showed, without readline's cursor moves.
        const shown = run.stdout.replace(new RegExp(`${'\u001b'}\\[[0-9;]*[A-Za-z]`, 'g'), '').replaceAll('\r\n', '\n');
        assert.ok(shown.includes(warning), shown);
        const beneficiary = chain.account(9).address;
        assert.ok(
          shown.includes(
            `Settle, paying 3.96 tCHIT to ${beneficiary}, 2.96 tCHIT of it from the hub's stake (which punishes the hub)? [y/N]`,
          ),
          shown,
        );
        assert.match(shown, /error: Not settled/);
        const channel = await getProviderChannel(chain.publicClient, { hub: chain.hub, provider: provider.address });
        assert.equal(channel.settled, parseEther('12'), 'settled though answered no');
        assert.equal(await punished(), false);
      });

      it('settle --yes warns all the same, and --json states what the stake paid', async () => {
        const run = await chit(['settle', '--yes', '--json'], { env: provider.env });
        const settled = ok(run);
        assert.ok(run.stderr.includes(warning), run.stderr);
        assert.deepEqual([settled.owed, settled.payout, settled.fromStake], ['4', '3.96', '2.96']);
        assert.equal(await hubRead('stakeOwed'), parseEther('2.96'));
        assert.equal(await punished(), true);
      });
    });
  });

  describe('promise verify', () => {
    const consumer = privateKeyToAccount(generatePrivateKey());
    let consumerFile: string;
    let hubFile: string;

    before(async () => {
      const { hashlock } = newHashlock();
      const promise = await signConsumerPromise(consumer, {
        hub: chain.hub,
        chainId: chain.chain.id,
        consumer: consumer.address,
        total: parseEther('12'),
        hashlock,
        agreement: { provider: chain.account(2).address, id: keccak256(hashlock), total: parseEther('7') },
      });
      consumerFile = path.join(home, 'consumer-promise.json');
      writeFileSync(consumerFile, JSON.stringify(encodeMessage(promise), null, 2));
      const hubPromise = await signHubPromise(chain.account(0), {
        hub: chain.hub,
        chainId: chain.chain.id,
        provider: chain.account(2).address,
        total: parseEther('7'),
        hashlock,
      });
      hubFile = path.join(home, 'hub-promise.json');
      writeFileSync(hubFile, JSON.stringify(encodeMessage(hubPromise)));
    });

    it('accepts a consumer promise signed by its consumer (exit 0)', async () => {
      const run = ok(await chit(['promise', 'verify', consumerFile]));
      assert.match(run, new RegExp(`^VALID: a consumer promise signed by its consumer ${consumer.address}`));
      assert.match(run, /promises 12 tokens in total/);
    });

    it("accepts a hub promise signed by the hub's operator, read on-chain or given", async () => {
      const onChain = ok(await chit(['promise', 'verify', hubFile, '--json']));
      assert.deepEqual(
        [onChain.valid, onChain.type, onChain.signer],
        [true, 'hubPromise', chain.deployer.account.address],
      );
      const offline = await chit(['promise', 'verify', '-', '--operator', chain.deployer.account.address], {
        env: { CHIT_RPC_URL: undefined, CHIT_HUB_URL: undefined },
        input: readFileSync(hubFile, 'utf8'),
      });
      assert.match(ok(offline), /^VALID: a hub promise/);
    });

    describe('when the promise was tampered with', () => {
      it('rejects it (exit 1) and says whose signature it carries', async () => {
        const tampered = JSON.parse(readFileSync(consumerFile, 'utf8'));
        tampered.total = parseEther('120').toString();
        const file = path.join(home, 'tampered.json');
        writeFileSync(file, JSON.stringify(tampered));
        const run = await chit(['promise', 'verify', file]);
        assert.equal(run.code, 1);
        assert.match(run.stdout, /^INVALID: the signature is from 0x[0-9a-fA-F]{40}, not from its consumer/);
        assert.match(run.stdout, new RegExp(consumer.address));
      });
    });

    describe('when the promise is signed by another key than the operator', () => {
      it('rejects the hub promise (exit 1)', async () => {
        const run = await chit(['promise', 'verify', hubFile, '--operator', chain.account(5).address]);
        assert.equal(run.code, 1);
        assert.match(run.stdout, /^INVALID: the signature is from .*, not from the hub's operator/);
      });
    });

    describe('when the promise is malformed', () => {
      it('rejects it (exit 1) naming the field', async () => {
        const malformed = { ...JSON.parse(readFileSync(consumerFile, 'utf8')), total: '-1' };
        const run = await chit(['promise', 'verify', '-', '--json'], { input: JSON.stringify(malformed) });
        assert.equal(run.code, 1);
        const verdict = JSON.parse(run.stdout);
        assert.equal(verdict.valid, false);
        assert.match(verdict.reason, /^Malformed consumerPromise: total: /);
      });
    });
  });

  describe('configuration', () => {
    it('takes flags over the environment over the config file', async () => {
      const file = path.join(home, 'precedence.json');
      writeFileSync(file, JSON.stringify({ rpcUrl: 'http://file.invalid:1', hub: chain.hub }));
      const env = { CHIT_RPC_URL: 'http://env.invalid:2', CHIT_HUB_URL: undefined };
      const fromFlag = ok(
        await chit(['config', '--json', '--config', file, '--rpc-url', 'http://flag.invalid:3'], { env }),
      );
      assert.deepEqual(fromFlag.rpcUrl, { value: 'http://flag.invalid:3', source: '--rpc-url' });
      assert.deepEqual(fromFlag.hub, { value: chain.hub, source: `${file} (hub)` });
      const fromEnv = ok(await chit(['config', '--json', '--config', file], { env }));
      assert.deepEqual(fromEnv.rpcUrl, { value: 'http://env.invalid:2', source: 'CHIT_RPC_URL' });
      const fromFile = ok(
        await chit(['config', '--json', '--config', file], { env: { ...env, CHIT_RPC_URL: undefined } }),
      );
      assert.deepEqual(fromFile.rpcUrl, { value: 'http://file.invalid:1', source: `${file} (rpcUrl)` });
    });

    it('reads the default config file from XDG_CONFIG_HOME, and the hub address from the hub URL', async () => {
      const xdg = path.join(home, 'xdg');
      mkdirSync(path.join(xdg, 'chit'), { recursive: true });
      writeFileSync(path.join(xdg, 'chit', 'config.json'), JSON.stringify({ rpcUrl: chain.url, hubUrl: front.url }));
      const env = { XDG_CONFIG_HOME: xdg, CHIT_RPC_URL: undefined, CHIT_HUB_URL: undefined };
      const listed = ok(await chit(['hubs', '--json'], { env }));
      assert.equal(listed.registry, chain.registry);
      assert.deepEqual(listed.hubs, [
        {
          hub: chain.hub,
          operator: chain.deployer.account.address,
          url: FIRST_HUB.url,
          fee: FIRST_HUB.fee,
          stake: '1000',
          status: 'active',
        },
      ]);
      const human = ok(await chit(['hubs'], { env }));
      assert.match(human, new RegExp(`^${chain.hub} +${FIRST_HUB.url} +1\\.00% +1000 +active$`, 'm'));
    });

    describe('when the config file has an unknown key', () => {
      it('fails naming the key and the known ones', async () => {
        const file = path.join(home, 'unknown-key.json');
        writeFileSync(file, JSON.stringify({ rpc: chain.url }));
        const stderr = failed(await chit(['balance', '--config', file]));
        assert.match(stderr, /unknown key "rpc"/);
        assert.match(stderr, /rpcUrl, keystore, hubUrl, hub, registry/);
      });
    });
  });

  it('prints help for every command', async () => {
    const run = ok(await chit(['--help']));
    for (const command of ['hubs', 'identity', 'deposit', 'balance', 'exit', 'settle', 'withdraw', 'beneficiary']) {
      assert.match(run, new RegExp(`^  ${command}\\b`, 'm'));
    }
    assert.match(ok(await chit(['settle', '--help'])), /--relayer[\s\S]*--yes[\s\S]*Global Options:[\s\S]*--rpc-url/);
  });
});

/** A JSON-RPC node that only answers eth_chainId (with `chainId`), and records every method asked for. */
async function startFakeNode(chainId: number): Promise<{ url: string; methods: string[]; stop(): Promise<void> }> {
  const methods: string[] = [];
  const server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      const answer = (call: { id: number; method: string }) => {
        methods.push(call.method);
        return call.method === 'eth_chainId'
          ? { jsonrpc: '2.0', id: call.id, result: `0x${chainId.toString(16)}` }
          : { jsonrpc: '2.0', id: call.id, error: { code: -32601, message: 'Method not found' } };
      };
      response.writeHead(200, { 'content-type': 'application/json' });
      response.end(JSON.stringify(Array.isArray(body) ? body.map(answer) : answer(body)));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    methods,
    stop: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Polls `condition` every 50 ms, for 20 s at most. */
async function until(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 400 && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 50));
  assert.ok(condition(), 'timed out');
}

interface HubFront {
  url: string;
  requests: string[];
  /** What `GET /v1/quotes/relay` quotes (0: this hub relays for free); twice that with a permit. */
  relayFee: bigint;
  /** Registrations relayed with the identity's permit of the fee. */
  permits: number;
  stop(): Promise<void>;
}

/** The endpoints the reference hub lacks, from the chain and its books; everything else is passed to it. */
async function startHubFront(): Promise<HubFront> {
  const requests: string[] = [];
  const jobs = new Map<string, { kind: string; txHash: Hex }>();
  const operator = chain.account(0);

  const routes: [
    RegExp,
    string,
    (
      match: RegExpExecArray,
      // biome-ignore lint/suspicious/noExplicitAny: a JSON body, read field by field.
      body: Record<string, any>,
      query: URLSearchParams,
    ) => Promise<[number, unknown]>,
  ][] = [
    [
      /^\/v1\/consumers\/(0x[0-9a-fA-F]{40})$/,
      'GET',
      async ([, raw]) => {
        const address = getAddress(raw!);
        const channel = await getConsumerChannel(chain.publicClient, { hub: chain.hub, consumer: address });
        const credited = reference.credited(address);
        if (channel.balance === 0n && credited === 0n)
          return [404, { code: 'UNKNOWN_CONSUMER', message: 'no channel' }];
        const exit = channel.exit?.amount ?? 0n;
        return [
          200,
          encodeMessage({
            address,
            balance: channel.balance,
            settled: channel.settled,
            promised: credited,
            credited,
            available: channel.balance - credited - exit,
            pendingExit: channel.exit,
            latestPromise: null,
          }),
        ];
      },
    ],
    [
      /^\/v1\/providers\/(0x[0-9a-fA-F]{40})$/,
      'GET',
      async ([, raw]) => {
        const address = getAddress(raw!);
        const earned = reference.providerTotal(address);
        if (earned === 0n) return [404, { code: 'UNKNOWN_PROVIDER', message: 'no promise' }];
        const { settled } = await getProviderChannel(chain.publicClient, { hub: chain.hub, provider: address });
        return [200, encodeMessage({ address, earned, settled, unsettled: earned - settled, latestPromise: null })];
      },
    ],
    [
      /^\/v1\/exits\/instant$/,
      'POST',
      async (_, body) => {
        const request = decodeMessage('instantExitRequest', body);
        const { consumer, amount, issuedAt } = request;
        if (!verifyInstantExitRequest({ hub: chain.hub, chainId: chain.chain.id, ...request })) {
          return [400, { code: 'INVALID_SIGNATURE', message: 'not signed by its consumer' }];
        }
        const now = BigInt(Math.floor(Date.now() / 1000));
        if (issuedAt > now + 300n || issuedAt < now - 300n) {
          return [400, { code: 'STALE_REQUEST', message: 'issuedAt is more than 5 minutes off' }];
        }
        const nonce = await chain.publicClient.readContract({
          address: chain.hub,
          abi: hubAbi,
          functionName: 'nonces',
          args: [consumer],
        });
        const deadline = (await chain.publicClient.getBlock()).timestamp + 300n;
        const exit = { hub: chain.hub, chainId: chain.chain.id, consumer, amount, nonce, deadline };
        const signature = await signInstantExit(operator, exit);
        return [200, encodeMessage({ consumer, amount, nonce, deadline, signature })];
      },
    ],
    [
      /^\/v1\/quotes\/relay$/,
      'GET',
      async (_, __, query) => [
        200,
        {
          kind: query.get('kind'),
          // A registration paid with a permit is two transactions: twice the fee.
          relayerFee: (query.get('kind') === 'identity-permit' ? 2n * front.relayFee : front.relayFee).toString(),
          // The account that sends the relayed transactions: the one a registration must name.
          relayer: relayer.account.address,
          gasPrice: '1000000000',
          validUntil: String(Math.floor(Date.now() / 1000) + 120),
        },
      ],
    ],
    [
      /^\/v1\/relay\/beneficiaries$/,
      'POST',
      async (_, body) => {
        const change = {
          registry: chain.registry,
          chainId: chain.chain.id,
          identity: getAddress(body.identity!),
          beneficiary: getAddress(body.beneficiary!),
          nonce: 0n,
          signature: body.signature as Hex,
        };
        const { hash } = await setBeneficiaryRelayed(relayer, { change });
        await waitForTransaction(chain.publicClient, { hash });
        const id = `relay-${jobs.size + 1}`;
        jobs.set(id, { kind: 'beneficiary', txHash: hash });
        return [202, { id, status: 'queued' }];
      },
    ],
    [
      /^\/v1\/relay\/identities$/,
      'POST',
      async (_, body) => {
        const registration = {
          registry: chain.registry,
          chainId: chain.chain.id,
          identity: getAddress(body.identity!),
          beneficiary: getAddress(body.beneficiary!),
          relayerFee: BigInt(body.relayerFee!),
          relayer: relayer.account.address,
          nonce: 0n,
          signature: body.signature as Hex,
        };
        if (body.permit) {
          // The identity's permit of the fee to the Registry, submitted first.
          front.permits += 1;
          const { r, s, v } = parseSignature(body.permit.signature as Hex);
          const permit = await relayer.writeContract({
            address: chain.token,
            abi: chitTokenAbi,
            functionName: 'permit',
            args: [
              registration.identity,
              chain.registry,
              registration.relayerFee,
              BigInt(body.permit.deadline),
              Number(v),
              r,
              s,
            ],
          });
          await waitForTransaction(chain.publicClient, { hash: permit });
        }
        const { hash } = await registerIdentityRelayed(relayer, { registration });
        await waitForTransaction(chain.publicClient, { hash });
        const id = `relay-${jobs.size + 1}`;
        jobs.set(id, { kind: 'identity', txHash: hash });
        return [202, { id, status: 'queued' }];
      },
    ],
    [
      /^\/v1\/settlements\/(relay-\d+)$/,
      'GET',
      async ([, id]) => {
        const job = jobs.get(id!);
        if (!job) return [404, { code: 'NOT_FOUND', message: 'no such job' }];
        return [200, { id, kind: job.kind, status: 'confirmed', txHash: job.txHash, error: null }];
      },
    ],
  ];

  const handle = async (request: IncomingMessage, response: ServerResponse) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    requests.push(`${request.method} ${url.pathname}`);
    for (const [pattern, method, route] of routes) {
      const match = pattern.exec(url.pathname);
      if (!match || request.method !== method) continue;
      const [status, body] = await route(match, text ? JSON.parse(text) : {}, url.searchParams);
      response.writeHead(status, { 'content-type': 'application/json' });
      response.end(JSON.stringify(body));
      return;
    }
    const passed = await fetch(`${reference.url}${url.pathname}${url.search}`, {
      method: request.method,
      headers: { 'content-type': 'application/json' },
      body: text || undefined,
    });
    response.writeHead(passed.status, { 'content-type': 'application/json' });
    response.end(await passed.text());
  };

  const server = createServer((request, response) => {
    handle(request, response).catch((error: unknown) => {
      response.writeHead(500, { 'content-type': 'application/json' });
      response.end(JSON.stringify({ code: 'INTERNAL', message: String(error) }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    relayFee: 0n,
    permits: 0,
    stop: () =>
      new Promise<void>((resolve, reject) => {
        server.closeAllConnections();
        server.close((error) => (error ? reject(error) : resolve()));
      }),
  };
}
