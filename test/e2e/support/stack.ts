/**
 * The e2e harness: a whole Chit deployment from real parts, and the parties that use it.
 *
 *   const stack = await startStack({ hubEnv: { SETTLEMENT_SCAN_INTERVAL_MS: '500' } });
 *   ...
 *   await stack.stop(); // in `after`: hub, database, Redis keys, anvil
 *
 * `startStack(options)` brings up, for one test file:
 * - `stack.chain`: anvil with Chit deployed by scripts/local-chain.ts (`url`, `deployment`, `hub`,
 *   `registry`, `token` addresses, demo `accounts`, `operatorKey`, viem `rpc` and `test` clients) and
 *   `mine(n)`, `increaseTime(seconds)` (mines a block), `timestamp()`, `snapshot()` / `revert(id)`,
 *   `setAutomine(on)`, `wallet(account)`, `send(hashPromise)` (waits, throws decoded reverts).
 * - `stack.hub`: the hub as a child process (`node hub/dist/main.js start`) on a fixed free port, so
 *   its `url` survives restarts: `client` (a HubClient), `env`, `start(overrides?)`, `stop()` (SIGTERM,
 *   waits), `kill(signal = 'SIGKILL')`, `restart(overrides?)` (overrides are merged into `env` and kept),
 *   `running`, `logs()` (its last output lines; CHIT_E2E_HUB_LOGS=1 also echoes them).
 * - `stack.db`: a pg Pool on the hub's own database (random name, dropped at stop), for the books.
 * - `stack.redis`: `url`, `prefix` (the hub's random QUEUE_PREFIX; its keys are deleted at stop).
 * - `stack.clock`: a {@link SimClock} for sessions (`advance(ms)`); ledgers keep real time, since the hub
 *   checks recovery and exit requests against its own clock.
 * - `stack.relayer`: the hub's RELAYER_KEY account (its own, so relayer fees show in its balance);
 *   `stack.sponsor`: a third party with gas that mints test tokens and submits other parties' permits.
 * - `stack.read`: on-chain figures (`tokenBalance`, `ethBalance`, `consumerChannel`, `providerSettled`,
 *   `beneficiaryOf`, `hubFigures()` with freeFunds, stake, stakeOwed, punished, tokenBalance).
 * - `stack.newConsumer({ tokens, deposit, via, gas, key })`: a fresh funded consumer whose deposit the hub has
 *   seen (`via`: 'deposit' | 'permit' | 'relayed-permit' (no gas: the sponsor submits its permit)).
 * - `stack.newProvider({ register, beneficiary, registrationFee, gas, store, fetch })`: a fresh provider
 *   (`register`: 'direct' | 'relayed' (through the hub's relayer endpoint, no gas) | 'none') with a
 *   ProviderLedger on the hub.
 * - `stack.connect(consumer, provider, { prices, consumerPrices, intervalMs, ... })`: a {@link Link}, a
 *   provider session and a consumer session over a simulated wire, driven by `stack.clock`.
 * - `until(what, probe, ms)`: polls until `probe` gives a truthy value.
 *
 * Fault tests build on the same pieces: `hub.kill()` / `hub.restart()` mid-session, `hub.restart({
 * REDIS_URL })` against a Redis of their own, `chain.snapshot()` / `revert()` for reorgs, `hub.restart({
 * RPC_URL: 'http://127.0.0.1:<closed port>' })`, a provider made again on a fresh `store`. Next to this
 * file (faults.test.ts uses them):
 * - `RedisServer` (redis-server.ts): a redis-server of the test's own on a free port, `kill()` (SIGKILL)
 *   and `restart()` empty on the same port, `keys(pattern)`. Never the run's shared Redis.
 * - `TcpProxy` (tcp-proxy.ts): a TCP proxy to a port (anvil's), `cut()` (connections reset, the port
 *   closed) and `restore()`; give the hub its `url` as RPC_URL to take the chain away for real.
 * - `FaultyFetch` (faulty-fetch.ts): a `fetch` for `newProvider({ fetch })` that records every request and
 *   puts a fault on the requests to one path (`once` / `always`): hold it, or forward it and lose the
 *   answer; `Gate`, a one-shot signal to sequence such faults.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { freePort, testTokenAbi } from '@chit/devstack';
import {
  ConsumerLedger,
  chitTokenAbi,
  deposit as depositAction,
  depositWithPermit,
  getConsumerChannel,
  HubClient,
  HubError,
  hubAbi,
  MemoryStore,
  ProviderLedger,
  registerIdentity,
  registryAbi,
  type Store,
  signDepositPermit,
  signRegisterIdentity,
  waitForTransaction,
} from '@chit/sdk';
import Redis from 'ioredis';
import { Pool } from 'pg';
import {
  type Account,
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  type Hash,
  type Hex,
  http,
  parseEther,
  parseSignature,
  type TransactionReceipt,
} from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import type { Deployment } from '../../../deploy/chit';
import { startLocalChain } from '../../../scripts/local-chain';
import { Link, type LinkOptions, SimClock } from './session';

const HUB_MAIN = path.join(__dirname, '..', '..', '..', 'hub', 'dist', 'main.js');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` every 100 ms until it gives a truthy value, or fails naming `what` after `ms`. */
export async function until<T>(what: string, probe: () => Promise<T | undefined | null | false>, ms = 30_000) {
  const deadline = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms} ms waiting for ${what}${last ? ` (last error: ${last})` : ''}`);
    }
    await sleep(100);
  }
}

/** Runs tasks one at a time (one account's transactions, in nonce order). */
class Serial {
  #tail: Promise<unknown> = Promise.resolve();
  run<T>(task: () => Promise<T>): Promise<T> {
    const next = this.#tail.then(task, task);
    this.#tail = next.catch(() => {});
    return next;
  }
}

export interface StackOptions {
  /** Hub settings on top of the e2e defaults (fast follower, small batch window, no scan unless set). */
  hubEnv?: Record<string, string>;
}

export type Stack = Awaited<ReturnType<typeof startStack>>;
export type Consumer = Awaited<ReturnType<Stack['newConsumer']>>;
export type Provider = Awaited<ReturnType<Stack['newProvider']>>;

/** The hub as a child process on a fixed port. */
export class HubProcess {
  readonly url: string;
  readonly client: HubClient;
  #child: ChildProcess | undefined;
  #lines: string[] = [];

  constructor(
    readonly port: number,
    public env: Record<string, string>,
  ) {
    this.url = `http://127.0.0.1:${port}`;
    this.client = new HubClient({ url: this.url });
  }

  /** The hub's process id while it runs. */
  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && this.#child.exitCode === null && this.#child.signalCode === null;
  }

  /** The hub's last output lines. */
  logs(): string {
    return this.#lines.join('\n');
  }

  /** Starts the hub (settings `env` merged with `overrides`, which are kept) and waits until it listens. */
  async start(overrides: Record<string, string> = {}): Promise<void> {
    if (this.running) throw new Error('the hub is running already');
    this.env = { ...this.env, ...overrides };
    // CHIT_E2E_HUB_NODE_FLAGS: extra node flags for the hub process (`--cpu-prof` to profile it in a bench).
    const flags = process.env.CHIT_E2E_HUB_NODE_FLAGS?.split(' ').filter(Boolean) ?? [];
    const child = spawn(process.execPath, [...flags, HUB_MAIN, 'start'], {
      env: { ...process.env, ...this.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.#child = child;
    const echo = process.env.CHIT_E2E_HUB_LOGS === '1';
    let listening = false;
    const onData = (chunk: Buffer) => {
      for (const line of chunk.toString().split('\n')) {
        if (!line) continue;
        if (line.includes('listening on')) listening = true;
        this.#lines.push(line);
        if (echo) process.stderr.write(`[hub:${this.port}] ${line}\n`);
      }
      if (this.#lines.length > 400) this.#lines = this.#lines.slice(-300);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    const deadline = Date.now() + 60_000;
    while (!listening) {
      if (child.exitCode !== null) throw new Error(`the hub exited (${child.exitCode}):\n${this.logs()}`);
      if (Date.now() > deadline) throw new Error(`the hub did not start within 60 s:\n${this.logs()}`);
      await sleep(50);
    }
  }

  /** Stops the hub with SIGTERM (a graceful shutdown) and waits for it to exit. */
  stop(): Promise<void> {
    return this.kill('SIGTERM');
  }

  /** Sends `signal` and waits for the process to exit (SIGKILL after 15 s). */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.#child;
    if (!child || !this.running) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill(signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    await exited;
    clearTimeout(timer);
  }

  /** Stops the hub and starts it again, with `overrides` merged into its settings. */
  async restart(overrides: Record<string, string> = {}): Promise<void> {
    await this.stop();
    await this.start(overrides);
  }
}

/** Brings up anvil with Chit, a database, a queue prefix and the hub process. See the top of this file. */
export async function startStack(options: StackOptions = {}) {
  const postgresUrl = process.env.CHIT_E2E_POSTGRES_URL;
  const redisUrl = process.env.CHIT_E2E_REDIS_URL;
  if (!postgresUrl || !redisUrl) throw new Error('run the e2e suite with mocha --config test/e2e/.mocharc.json');
  const cleanups: (() => Promise<unknown>)[] = [];
  const stop = async () => {
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
  };

  try {
    // Chain: anvil with the Registry, the first hub (demo account #0 operates it) and the test token.
    const hubPort = await freePort();
    const local = await startLocalChain(await freePort(), `http://127.0.0.1:${hubPort}`);
    cleanups.push(async () => {
      local.anvil.process.kill('SIGKILL');
    });
    const deployment: Deployment = local.deployment;
    const url = local.anvil.url;
    const transport = http(url);
    const rpc = createPublicClient({ chain: foundry, transport, pollingInterval: 50 });
    const test = createTestClient({ chain: foundry, mode: 'anvil', transport });
    const wallet = (account: Account) => createWalletClient({ account, chain: foundry, transport });
    const hubAddress = deployment.hub.address as Address;
    const registry = deployment.registry.address as Address;
    const token = deployment.token.address as Address;
    const operatorKey = local.accounts[0]!.privateKey as Hex;

    const send = async (sent: Promise<{ hash: Hash }> | Promise<Hash>): Promise<TransactionReceipt> => {
      const result = await sent;
      const hash = typeof result === 'string' ? result : result.hash;
      // Polls for the receipt first: viem's block-watching wait (under the SDK's waitForTransaction)
      // now and then rejects a transaction anvil has mined with TransactionReceiptNotFoundError. Then
      // the SDK's wait returns at once, decoding a revert into its typed error.
      await until(`the receipt of ${hash}`, () => rpc.getTransactionReceipt({ hash }), 60_000);
      return waitForTransaction(rpc, { hash });
    };
    const chain = {
      url,
      deployment,
      hub: hubAddress,
      registry,
      token,
      accounts: local.accounts,
      operatorKey,
      rpc,
      test,
      wallet,
      send,
      mine: (blocks = 1) => test.mine({ blocks }),
      /** Moves the chain's clock `seconds` ahead and mines a block at the new time. */
      async increaseTime(seconds: number | bigint) {
        await test.increaseTime({ seconds: Number(seconds) });
        await test.mine({ blocks: 1 });
      },
      timestamp: async () => (await rpc.getBlock({ blockTag: 'latest' })).timestamp,
      snapshot: () => test.snapshot(),
      revert: (id: Hex) => test.revert({ id }),
      setAutomine: (on: boolean) => test.setAutomine(on),
    };

    // A gas-funded account of the test's own.
    const fundedAccount = async (eth = parseEther('100'), key = generatePrivateKey()) => {
      const account = privateKeyToAccount(key);
      await test.setBalance({ address: account.address, value: eth });
      return account;
    };
    const relayerKey = generatePrivateKey();
    const relayer = await fundedAccount(parseEther('100'), relayerKey);
    const sponsor = await fundedAccount();
    const sponsorWallet = wallet(sponsor);
    const sponsorQueue = new Serial();
    const mint = (to: Address, amount: bigint) =>
      sponsorQueue.run(() =>
        send(
          sponsorWallet.writeContract({ address: token, abi: testTokenAbi, functionName: 'mint', args: [to, amount] }),
        ),
      );

    // Postgres: a database of the stack's own; the hub migrates it at start.
    const dbName = `chit_e2e_${randomBytes(6).toString('hex')}`;
    const admin = new Pool({ connectionString: postgresUrl, max: 1 });
    admin.on('error', () => {});
    await admin.query(`CREATE DATABASE ${dbName}`);
    const dbUrl = new URL(postgresUrl);
    dbUrl.pathname = `/${dbName}`;
    const db = new Pool({ connectionString: dbUrl.toString(), max: 4 });
    db.on('error', () => {});
    cleanups.push(async () => {
      await db.end();
      await admin.query(`DROP DATABASE IF EXISTS ${dbName} WITH (FORCE)`);
      await admin.end();
    });

    // Redis: a queue prefix of the stack's own, whose keys go at the end.
    const prefix = `chit-e2e-${randomBytes(6).toString('hex')}`;
    cleanups.push(async () => {
      const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
      redis.on('error', () => {});
      await redis.connect();
      let cursor = '0';
      do {
        const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== '0');
      redis.disconnect();
    });

    const hub = new HubProcess(hubPort, {
      DATABASE_URL: dbUrl.toString(),
      REDIS_URL: redisUrl,
      RPC_URL: url,
      HUB_ADDRESS: hubAddress,
      OPERATOR_KEY: operatorKey,
      RELAYER_KEY: relayerKey,
      HOST: '127.0.0.1',
      PORT: String(hubPort),
      LOG_LEVEL: process.env.CHIT_E2E_HUB_LOG_LEVEL ?? 'warn',
      QUEUE_PREFIX: prefix,
      CONFIRMATIONS: '0',
      FOLLOWER_POLL_MS: '100',
      SETTLEMENT_BATCH_WINDOW_MS: '300',
      SETTLEMENT_SCAN_INTERVAL_MS: '3600000',
      SETTLEMENT_RECONCILE_INTERVAL_MS: '1000',
      SETTLEMENT_BACKOFF_MS: '200',
      TX_POLL_INTERVAL_MS: '100',
      QUEUE_LOCK_MS: '5000',
      ...options.hubEnv,
    });
    cleanups.push(() => hub.kill('SIGKILL'));
    await hub.start();

    const read = {
      tokenBalance: (who: Address) =>
        rpc.readContract({ address: token, abi: chitTokenAbi, functionName: 'balanceOf', args: [who] }),
      ethBalance: (who: Address) => rpc.getBalance({ address: who }),
      consumerChannel: (consumer: Address) => getConsumerChannel(rpc, { hub: hubAddress, consumer }),
      providerSettled: (provider: Address) =>
        rpc.readContract({ address: hubAddress, abi: hubAbi, functionName: 'providerSettled', args: [provider] }),
      beneficiaryOf: (identity: Address) =>
        rpc.readContract({ address: registry, abi: registryAbi, functionName: 'beneficiaryOf', args: [identity] }),
      async hubFigures() {
        const [freeFunds, stake, stakeOwed, punished, tokenBalance] = await Promise.all([
          rpc.readContract({ address: hubAddress, abi: hubAbi, functionName: 'freeFunds' }),
          rpc.readContract({ address: hubAddress, abi: hubAbi, functionName: 'stake' }),
          rpc.readContract({ address: hubAddress, abi: hubAbi, functionName: 'stakeOwed' }),
          rpc.readContract({ address: hubAddress, abi: hubAbi, functionName: 'isPunished' }),
          rpc.readContract({ address: token, abi: chitTokenAbi, functionName: 'balanceOf', args: [hubAddress] }),
        ]);
        return { freeFunds, stake, stakeOwed, punished, tokenBalance };
      },
    };
    const [operator, hubFee] = await Promise.all([
      rpc.readContract({ address: hubAddress, abi: hubAbi, functionName: 'operator' }),
      rpc.readContract({ address: hubAddress, abi: hubAbi, functionName: 'currentFee' }),
    ]);
    const clock = new SimClock();

    /** The hub's books balance of `consumer` (0 before the follower has seen a deposit). */
    const booksBalance = async (consumer: Address) => {
      try {
        return (await hub.client.consumer(consumer)).balance;
      } catch (error) {
        if (error instanceof HubError && error.code === 'UNKNOWN_CONSUMER') return 0n;
        throw error;
      }
    };

    /** A fresh consumer with `tokens` (default 100) and, when `deposit` is set, a channel the hub has seen. */
    async function newConsumer(
      parameters: {
        tokens?: bigint;
        deposit?: bigint;
        /** 'deposit' (approve + deposit), 'permit' (its own permit) or 'relayed-permit' (no gas; the sponsor submits). */
        via?: 'deposit' | 'permit' | 'relayed-permit';
        /** Gas coin; default 10 ETH, none for 'relayed-permit'. */
        gas?: boolean;
        /** Its key; default a fresh one. */
        key?: Hex;
      } = {},
    ) {
      const via = parameters.via ?? 'deposit';
      const gas = parameters.gas ?? via !== 'relayed-permit';
      const key = parameters.key ?? generatePrivateKey();
      const account = gas ? await fundedAccount(parseEther('10'), key) : privateKeyToAccount(key);
      const tokens = parameters.tokens ?? parseEther('100');
      if (tokens > 0n) await mint(account.address, tokens);
      const consumer = {
        key,
        account,
        address: account.address,
        wallet: wallet(account),
        tokens,
        ledger: new ConsumerLedger({ hub: hubAddress, chainId: deployment.chainId, account, store: new MemoryStore() }),
        /** Deposits `amount` `how`, and waits until the hub's books show it. */
        async deposit(amount: bigint, how: 'deposit' | 'permit' | 'relayed-permit' = via) {
          const before = await booksBalance(account.address);
          if (how === 'deposit') {
            await send(depositAction(consumer.wallet, { hub: hubAddress, amount, token }));
          } else {
            const permit = await signDepositPermit(consumer.wallet, {
              hub: hubAddress,
              token,
              amount,
              deadline: (await chain.timestamp()) + 3_600n,
            });
            const submitter = how === 'permit' ? consumer.wallet : sponsorWallet;
            const submit = () => send(depositWithPermit(submitter, { permit }));
            await (how === 'permit' ? submit() : sponsorQueue.run(submit));
          }
          await until(`the hub to see ${account.address}'s deposit`, async () => {
            return (await booksBalance(account.address)) === before + amount;
          });
        },
      };
      if (parameters.deposit) await consumer.deposit(parameters.deposit, via);
      return consumer;
    }

    /** A fresh provider identity, registered with its beneficiary as asked, with a ProviderLedger on the hub. */
    async function newProvider(
      parameters: {
        register?: 'direct' | 'relayed' | 'none';
        /** Its payout address; default a fresh one. */
        beneficiary?: Address;
        /** Tokens a relayed registration pays the hub's relayer (the provider is minted them). */
        registrationFee?: bigint;
        /** Gas coin; default 10 ETH, none for a relayed registration. */
        gas?: boolean;
        store?: Store;
        /** The fetch of its HubClient (to watch or interrupt its requests). */
        fetch?: typeof globalThis.fetch;
        key?: Hex;
      } = {},
    ) {
      const register = parameters.register ?? 'direct';
      const gas = parameters.gas ?? register !== 'relayed';
      const key = parameters.key ?? generatePrivateKey();
      const account = privateKeyToAccount(key);
      if (gas) await test.setBalance({ address: account.address, value: parseEther('10') });
      const beneficiary = parameters.beneficiary ?? privateKeyToAccount(generatePrivateKey()).address;
      const providerWallet = wallet(account);
      const registrationFee = parameters.registrationFee ?? 0n;
      if (register === 'direct') {
        await send(registerIdentity(providerWallet, { registry, beneficiary }));
      } else if (register === 'relayed') {
        if (registrationFee > 0n) {
          // The Registry takes the fee from the identity: it needs the tokens and an allowance, given
          // by a permit that the sponsor submits (the identity has no gas).
          await mint(account.address, registrationFee);
          const permit = await signDepositPermit(providerWallet, {
            hub: registry,
            token,
            amount: registrationFee,
            deadline: (await chain.timestamp()) + 3_600n,
          });
          const { r, s, v, yParity } = parseSignature(permit.signature);
          await sponsorQueue.run(() =>
            send(
              sponsorWallet.writeContract({
                address: token,
                abi: chitTokenAbi,
                functionName: 'permit',
                args: [
                  account.address,
                  registry,
                  registrationFee,
                  permit.deadline,
                  Number(v ?? 27n + BigInt(yParity)),
                  r,
                  s,
                ],
              }),
            ),
          );
        }
        // The registration names the hub's relayer, from its quote: no one else can submit it and take the fee.
        const { relayer: hubRelayer } = await hub.client.relayQuote('identity');
        const signed = await signRegisterIdentity(providerWallet, {
          registry,
          beneficiary,
          relayerFee: registrationFee,
          relayer: hubRelayer,
        });
        const job = await hub.client.relayIdentity({
          identity: account.address,
          beneficiary,
          relayerFee: registrationFee,
          signature: signed.signature,
        });
        const done = await until(`the relayed registration of ${account.address}`, async () => {
          const status = await hub.client.settlement(job.id);
          return status.status === 'confirmed' || status.status === 'failed' ? status : undefined;
        });
        if (done.status !== 'confirmed')
          throw new Error(`relayed registration ${job.id} failed: ${done.error?.code}: ${done.error?.message}`);
      }
      const client = new HubClient({ url: hub.url, ...(parameters.fetch ? { fetch: parameters.fetch } : {}) });
      return {
        account,
        key,
        address: account.address,
        wallet: providerWallet,
        beneficiary,
        registrationFee,
        hub: client,
        ledger: new ProviderLedger({
          hub: client,
          account,
          store: parameters.store ?? new MemoryStore(),
          expect: { hub: hubAddress, chainId: deployment.chainId, operator },
        }),
      };
    }

    return {
      chain,
      hub,
      db,
      redis: { url: redisUrl, prefix },
      clock,
      relayer,
      sponsor,
      operator,
      /** The hub fee in basis points, as the contract has it now. */
      hubFee: Number(hubFee),
      read,
      booksBalance,
      mint,
      newConsumer,
      newProvider,
      /** Opens a provider session and a consumer session between them, on `stack.clock`. */
      connect: (consumer: { ledger: ConsumerLedger }, provider: { ledger: ProviderLedger }, linkOptions: LinkOptions) =>
        new Link(consumer.ledger, provider.ledger, clock, linkOptions),
      stop,
    };
  } catch (error) {
    await stop();
    throw error;
  }
}
