import assert from 'node:assert/strict';
import { ensureRedis, type RunningService, testTokenAbi } from '@chit/devstack';
import {
  decodeHubAnswer,
  registerIdentity,
  registryAbi,
  signDepositPermit,
  signRegisterIdentity,
  signSetBeneficiary,
  waitForTransaction,
} from '@chit/sdk';
import {
  type Address,
  createPublicClient,
  createTestClient,
  createWalletClient,
  type Hex,
  http,
  type PublicClient,
  parseEther,
  parseEventLogs,
} from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { type RunningHub, startHub } from '../src/app';
import { loadConfig } from '../src/config/config';
import { toBytea } from '../src/db/bytes';
import { QueueName } from '../src/jobs/job.enums';
import { accountKey, startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';
import { fundIdentity } from './support/relay';

// Relayed Registry actions and their fee: the relayer fee of a registration must cover its gas at the
// current price, and the Registry must be able to take it from the identity (balance and allowance);
// a beneficiary change pays the relayer nothing on-chain, so the hub relays it only when it is free.

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

const ether = (n: number) => parseEther(String(n));
const lower = (address: string) => address.toLowerCase() as Hex;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Gas the hub assumes for a relayed registration / beneficiary change before it measured its own; with
 * a permit, the permit's transaction too. */
const GAS = { identity: 90_000n, 'identity-permit': 165_000n, beneficiary: 60_000n };
const ceilDiv = (a: bigint, b: bigint) => (a + b - 1n) / b;

describe('relayed Registry actions and their fee', function () {
  this.timeout(60_000);
  let chain: Awaited<ReturnType<typeof startChain>>;
  let redis: RunningService;
  let rpc: PublicClient;
  let registry: Address;
  let token: Address;
  const cleanups: (() => Promise<unknown>)[] = [];

  const test = () => createTestClient({ chain: foundry, mode: 'anvil', transport: http(chain.url) });
  const wallet = (account: PrivateKeyAccount) =>
    createWalletClient({ account, chain: foundry, transport: http(chain.url) });
  /** Account 1 of anvil: has gas, submits the permits of identities that have none. */
  const payer = () => wallet(privateKeyToAccount(accountKey(1)));

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    redis = await ensureRedis();
    registry = chain.deployment.registry.address as Address;
    token = chain.deployment.token.address as Address;
    rpc = createPublicClient({ chain: foundry, transport: http(chain.url) });
  });
  afterEach(async () => {
    while (cleanups.length > 0) await cleanups.pop()!().catch(() => {});
  });
  after(async () => {
    await redis?.stop();
    chain?.stop();
  });

  async function hub(overrides: Record<string, string> = {}) {
    const db = await createTestDatabase();
    cleanups.push(() => db.drop());
    const running = await startHub(
      loadConfig({
        DATABASE_URL: db.url,
        REDIS_URL: redis.url,
        RPC_URL: chain.url,
        HUB_ADDRESS: chain.deployment.hub.address,
        OPERATOR_KEY: chain.operatorKey,
        PORT: '0',
        LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
        CONFIRMATIONS: '0',
        QUEUE_PREFIX: queuePrefix(redis.url, 'relay'),
        SETTLEMENT_SCAN_INTERVAL_MS: '3600000',
        TX_POLL_INTERVAL_MS: '100',
        ...overrides,
      }),
    );
    cleanups.push(() => running.close());
    return { running, db };
  }

  const post = (running: RunningHub, route: string, body: unknown) =>
    fetch(`${running.url}${route}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const get = async (running: RunningHub, route: string) => {
    const response = await fetch(`${running.url}${route}`);
    return { status: response.status, body: (await response.json()) as Json };
  };

  async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 20_000): Promise<T> {
    const deadline = Date.now() + ms;
    for (;;) {
      const value = await probe();
      if (value) return value;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await sleep(100);
    }
  }

  const read = {
    nonce: (identity: Address) =>
      rpc.readContract({ address: registry, abi: registryAbi, functionName: 'nonces', args: [identity] }),
    registered: (identity: Address) =>
      rpc.readContract({ address: registry, abi: registryAbi, functionName: 'isRegistered', args: [identity] }),
    beneficiary: (identity: Address) =>
      rpc.readContract({ address: registry, abi: registryAbi, functionName: 'beneficiaryOf', args: [identity] }),
    tokens: (who: Address) =>
      rpc.readContract({ address: token, abi: testTokenAbi, functionName: 'balanceOf', args: [who] }),
  };

  /** The hub changed nothing for `identity`: no settlement, no transaction, no job, the chain as it was. */
  async function nothingChanged(running: RunningHub, db: { pool: import('pg').Pool }, identity: Address) {
    const { rows } = await db.pool.query(
      'SELECT (SELECT count(*)::int FROM settlements WHERE subject = $1) AS settlements, (SELECT count(*)::int FROM transactions) AS transactions',
      [toBytea(lower(identity))],
    );
    assert.deepEqual(rows, [{ settlements: 0, transactions: 0 }]);
    const counts = await running.context.settlement.queues
      .queue(QueueName.Relay)
      .getJobCounts('active', 'wait', 'delayed', 'failed', 'completed');
    assert.deepEqual(counts, { active: 0, wait: 0, delayed: 0, failed: 0, completed: 0 });
    assert.equal(await read.nonce(identity), 0n);
    assert.equal(await read.registered(identity), false);
  }

  /** An identity without a gas token, holding `tokens` and an allowance of `allowance` to the Registry. */
  async function identityWith(tokens: bigint, allowance: bigint) {
    const client = wallet(privateKeyToAccount(generatePrivateKey()));
    await fundIdentity(payer(), client, { token, registry, tokens, allowance });
    return client;
  }

  /** The identity's signed registration as the body carries it, naming `relayer`: by default the hub's
   * (with no RELAYER_KEY, the operator's account). */
  async function registration(
    identity: ReturnType<typeof wallet>,
    relayerFee: bigint,
    beneficiary: Address,
    relayer: Address = privateKeyToAccount(chain.operatorKey).address,
  ) {
    const signed = await signRegisterIdentity(identity, { registry, beneficiary, relayerFee, relayer });
    return {
      identity: identity.account.address,
      beneficiary,
      relayerFee: relayerFee.toString(),
      signature: signed.signature,
    };
  }

  /** The identity's EIP-2612 permit of `value` to the Registry, as the body's `permit` carries it. */
  async function permitOf(identity: ReturnType<typeof wallet>, value: bigint, deadline?: bigint) {
    const signed = await signDepositPermit(identity, { hub: registry, token, amount: value, deadline });
    return { deadline: signed.deadline.toString(), signature: signed.signature };
  }

  describe('GET /v1/quotes/relay', () => {
    it('quotes gas x gas price x margin for each kind with the hub’s relayer, and refuses a missing or unknown kind with MALFORMED', async () => {
      const { running } = await hub();
      for (const kind of ['identity', 'identity-permit', 'beneficiary'] as const) {
        const { status, body } = await get(running, `/v1/quotes/relay?kind=${kind}`);
        assert.equal(status, 200, JSON.stringify(body));
        const quote = decodeHubAnswer('relayQuote', body);
        assert.equal(quote.kind, kind);
        // No RELAYER_KEY: the operator's account sends the relayed transactions.
        assert.equal(quote.relayer, privateKeyToAccount(chain.operatorKey).address);
        assert.ok(quote.gasPrice > 0n);
        assert.equal(quote.relayerFee, ceilDiv(quote.gasPrice * GAS[kind] * 12_000n, 10_000n));
        assert.ok(quote.validUntil > BigInt(Math.floor(Date.now() / 1000)));
      }
      for (const query of ['?kind=consumer', '']) {
        const { status, body } = await get(running, `/v1/quotes/relay${query}`);
        assert.equal(status, 400);
        assert.equal(body.code, 'MALFORMED');
        assert.equal(body.details.path, 'kind');
      }
    });
  });

  describe('POST /v1/relay/identities', () => {
    it('refuses a registration that names another relayer than the hub’s with INVALID_SIGNATURE, and changes nothing', async () => {
      const { running, db } = await hub();
      const identity = await identityWith(ether(1), ether(1));
      const beneficiary = privateKeyToAccount(generatePrivateKey()).address;
      const quote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=identity')).body);
      const elsewhere = privateKeyToAccount(generatePrivateKey()).address;
      const response = await post(
        running,
        '/v1/relay/identities',
        await registration(identity, quote.relayerFee, beneficiary, elsewhere),
      );
      assert.equal(response.status, 400);
      const error: Json = await response.json();
      assert.equal(error.code, 'INVALID_SIGNATURE');
      assert.deepEqual(error.details, { identity: identity.account.address, nonce: '0', relayer: quote.relayer });
      await nothingChanged(running, db, identity.account.address);
      assert.equal(await read.tokens(identity.account.address), ether(1));
    });

    it('refuses a fee below the gas cost with RELAYER_FEE_TOO_LOW and the minimum, and changes nothing', async () => {
      const { running, db } = await hub();
      const identity = await identityWith(ether(1), ether(1));
      const beneficiary = privateKeyToAccount(generatePrivateKey()).address;
      // No block is mined between the quote and the request: the gas price is the same.
      const quote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=identity')).body);
      const minimum = quote.gasPrice * GAS.identity;
      assert.ok(minimum > 1n && minimum < quote.relayerFee);

      for (const fee of [0n, minimum - 1n]) {
        const response = await post(running, '/v1/relay/identities', await registration(identity, fee, beneficiary));
        assert.equal(response.status, 409);
        const error: Json = await response.json();
        assert.equal(error.code, 'RELAYER_FEE_TOO_LOW');
        assert.deepEqual(error.details, { relayerFee: fee.toString(), minimum: minimum.toString() });
      }
      await nothingChanged(running, db, identity.account.address);
      assert.equal(await read.tokens(identity.account.address), ether(1));
    });

    it('refuses a fee the Registry cannot take from the identity with RELAYER_FEE_UNPAYABLE, and changes nothing', async () => {
      const { running, db } = await hub();
      const beneficiary = privateKeyToAccount(generatePrivateKey()).address;
      // Tokens but no allowance to the Registry; an allowance but no tokens.
      const unapproved = await identityWith(ether(1), 0n);
      const poor = await identityWith(0n, ether(1));
      const quote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=identity')).body);
      const fee = quote.relayerFee;
      for (const [identity, balance, allowance] of [
        [unapproved, ether(1), 0n],
        [poor, 0n, ether(1)],
      ] as const) {
        const response = await post(running, '/v1/relay/identities', await registration(identity, fee, beneficiary));
        assert.equal(response.status, 409);
        const error: Json = await response.json();
        assert.equal(error.code, 'RELAYER_FEE_UNPAYABLE');
        assert.deepEqual(error.details, {
          relayerFee: fee.toString(),
          balance: balance.toString(),
          allowance: allowance.toString(),
          token,
          spender: registry,
        });
        await nothingChanged(running, db, identity.account.address);
      }
    });

    it('accepts the quoted fee: the identity is registered on-chain and the relayer is paid the fee, once', async () => {
      const { running, db } = await hub();
      const identity = await identityWith(ether(1), ether(1));
      const beneficiary = privateKeyToAccount(generatePrivateKey()).address;
      const relayer = privateKeyToAccount(chain.operatorKey).address;
      const quote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=identity')).body);
      const relayerBefore = await read.tokens(relayer);

      const body = await registration(identity, quote.relayerFee, beneficiary);
      const response = await post(running, '/v1/relay/identities', body);
      assert.equal(response.status, 202);
      const job = decodeHubAnswer('job', await response.json());
      assert.equal(job.id, `identity-${lower(identity.account.address)}-0`);
      const settled = await until('the registration confirmed', async () => {
        const { body: state } = await get(running, `/v1/settlements/${job.id}`);
        return state.status === 'confirmed' && state;
      });

      assert.equal(await read.registered(identity.account.address), true);
      assert.equal(await read.beneficiary(identity.account.address), beneficiary);
      assert.equal(await read.nonce(identity.account.address), 1n);
      assert.equal(await read.tokens(identity.account.address), ether(1) - quote.relayerFee);
      assert.equal((await read.tokens(relayer)) - relayerBefore, quote.relayerFee);
      const receipt = await waitForTransaction(rpc, { hash: settled.txHash });
      const [event] = parseEventLogs({ abi: registryAbi, logs: receipt.logs, eventName: 'IdentityRegistered' });
      assert.deepEqual(event?.args, {
        identity: identity.account.address,
        beneficiary,
        relayer,
        relayerFee: quote.relayerFee,
      });
      const { rows } = await db.pool.query(`SELECT kind, claims, status FROM transactions`);
      assert.deepEqual(rows, [{ kind: 'identity', claims: 1, status: 'mined' }]);
    });
  });

  describe('POST /v1/relay/identities with the identity’s permit of the fee', () => {
    it('registers an identity that holds tokens, no allowance and no gas: the relayer submits the permit first', async () => {
      const { running, db } = await hub();
      const identity = await identityWith(ether(1), 0n);
      const beneficiary = privateKeyToAccount(generatePrivateKey()).address;
      const relayer = privateKeyToAccount(chain.operatorKey).address;
      const quote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=identity-permit')).body);
      const relayerBefore = await read.tokens(relayer);

      const body = {
        ...(await registration(identity, quote.relayerFee, beneficiary)),
        permit: await permitOf(identity, quote.relayerFee),
      };
      const response = await post(running, '/v1/relay/identities', body);
      assert.equal(response.status, 202, JSON.stringify(await response.clone().json()));
      const job = decodeHubAnswer('job', await response.json());
      await until('the registration confirmed', async () => {
        const { body: state } = await get(running, `/v1/settlements/${job.id}`);
        return state.status === 'confirmed' && state;
      });

      assert.equal(await read.registered(identity.account.address), true);
      assert.equal(await read.beneficiary(identity.account.address), beneficiary);
      assert.equal(await read.tokens(identity.account.address), ether(1) - quote.relayerFee);
      assert.equal((await read.tokens(relayer)) - relayerBefore, quote.relayerFee);
      assert.equal(await rpc.getBalance({ address: identity.account.address }), 0n);
      // The permit's transaction carries no claim: the gas measured per registration stays the registration's.
      const { rows } = await db.pool.query('SELECT kind, claims, status FROM transactions ORDER BY nonce');
      assert.deepEqual(rows, [
        { kind: 'identity', claims: 0, status: 'mined' },
        { kind: 'identity', claims: 1, status: 'mined' },
      ]);
    });

    it('refuses a permit the token would not take with INVALID_SIGNATURE, and a fee that covers only the registration with RELAYER_FEE_TOO_LOW, changing nothing', async () => {
      const { running, db } = await hub();
      const identity = await identityWith(ether(1), 0n);
      const beneficiary = privateKeyToAccount(generatePrivateKey()).address;
      const quote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=identity-permit')).body);
      const fee = quote.relayerFee;
      const { timestamp } = await rpc.getBlock();
      const stranger = wallet(privateKeyToAccount(generatePrivateKey()));
      for (const [what, permit, message] of [
        ['of another value', await permitOf(identity, fee + 1n), /not the identity’s EIP-2612 permit/],
        ['signed by another key', await permitOf(stranger, fee), /not the identity’s EIP-2612 permit/],
        ['expiring within a minute', await permitOf(identity, fee, timestamp + 30n), /expires too soon/],
      ] as const) {
        const response = await post(running, '/v1/relay/identities', {
          ...(await registration(identity, fee, beneficiary)),
          permit,
        });
        const error: Json = await response.json();
        assert.equal(response.status, 400, `${what}: ${JSON.stringify(error)}`);
        assert.equal(error.code, 'INVALID_SIGNATURE', what);
        assert.match(error.message, message, what);
      }

      const identityQuote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=identity')).body);
      const response = await post(running, '/v1/relay/identities', {
        ...(await registration(identity, identityQuote.relayerFee, beneficiary)),
        permit: await permitOf(identity, identityQuote.relayerFee),
      });
      assert.equal(response.status, 409);
      const error: Json = await response.json();
      assert.equal(error.code, 'RELAYER_FEE_TOO_LOW');
      assert.equal(error.details.minimum, (quote.gasPrice * GAS['identity-permit']).toString());
      assert.match(error.message, /kind=identity-permit/);
      await nothingChanged(running, db, identity.account.address);
    });
  });

  describe('POST /v1/relay/beneficiaries', () => {
    it('refuses a change the Registry pays no fee for with RELAYER_FEE_TOO_LOW, and changes nothing', async () => {
      const { running, db } = await hub();
      // Registered by itself (it had gas then); the hub is asked to relay its beneficiary change for free.
      const identity = wallet(privateKeyToAccount(generatePrivateKey()));
      await test().setBalance({ address: identity.account.address, value: ether(1) });
      await waitForTransaction(rpc, await registerIdentity(identity, { registry }));
      const change = await signSetBeneficiary(identity, {
        registry,
        beneficiary: privateKeyToAccount(generatePrivateKey()).address,
      });
      const quote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=beneficiary')).body);

      const response = await post(running, '/v1/relay/beneficiaries', {
        identity: identity.account.address,
        beneficiary: change.beneficiary,
        signature: change.signature,
      });
      assert.equal(response.status, 409);
      const error: Json = await response.json();
      assert.equal(error.code, 'RELAYER_FEE_TOO_LOW');
      assert.deepEqual(error.details, { relayerFee: '0', minimum: (quote.gasPrice * GAS.beneficiary).toString() });

      const { rows } = await db.pool.query('SELECT count(*)::int AS n FROM settlements');
      assert.equal(rows[0].n, 0);
      assert.equal(await read.nonce(identity.account.address), 1n);
      assert.equal(await read.beneficiary(identity.account.address), identity.account.address);
    });

    it('relays it when the hub charges nothing for gas (RELAYER_TOKENS_PER_WEI=0)', async () => {
      const { running } = await hub({ RELAYER_TOKENS_PER_WEI: '0' });
      const identity = await identityWith(0n, 0n);
      const first = await post(
        running,
        '/v1/relay/identities',
        await registration(identity, 0n, identity.account.address),
      );
      assert.equal(first.status, 202);
      await until('the registration confirmed', async () => read.registered(identity.account.address));

      const quote = decodeHubAnswer('relayQuote', (await get(running, '/v1/quotes/relay?kind=beneficiary')).body);
      assert.equal(quote.relayerFee, 0n);
      const beneficiary = privateKeyToAccount(generatePrivateKey()).address;
      const change = await signSetBeneficiary(identity, { registry, beneficiary });
      const response = await post(running, '/v1/relay/beneficiaries', {
        identity: identity.account.address,
        beneficiary,
        signature: change.signature,
      });
      assert.equal(response.status, 202);
      const { id } = decodeHubAnswer('job', await response.json());
      await until(
        'the change confirmed',
        async () => (await get(running, `/v1/settlements/${id}`)).body.status === 'confirmed',
      );
      assert.equal(await read.beneficiary(identity.account.address), beneficiary);
    });
  });
});
