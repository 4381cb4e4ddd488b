import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { testTokenAbi } from '@chit/devstack';
import { getHubInfo, hubAbi, waitForTransaction } from '@chit/sdk';
import { type Address, createPublicClient, createWalletClient, getAddress, http, parseEther } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import { ChainService } from '../src/chain/chain.service';
import { ChainEvents } from '../src/chain/chain-events';
import { ChainFollower } from '../src/chain/follower/follower.service';
import { QueueName } from '../src/jobs/job.enums';
import { MetricsRepository } from '../src/metrics/metrics.repository';
import { MetricsService } from '../src/metrics/metrics.service';
import { ChainRepository } from '../src/repositories/chain.repository';
import { accountKey } from './support/chain';
import { exchangeOnce } from './support/exchange';
import { startTestStack, type TestStack } from './support/hub';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const QUEUE_STATES = ['waiting', 'paused', 'active', 'delayed', 'prioritized', 'failed'] as const;

/** Polls `probe` until it answers something truthy, for at most `ms`. */
async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe().catch(() => undefined);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/**
 * A TCP proxy to anvil that a test can make hang: open connections are dropped and new ones accepted
 * but never answered (a node that is up and silent, the worst case for a scrape).
 */
class HangingProxy {
  private hanging = false;
  private readonly sockets = new Set<Socket>();

  private constructor(private readonly server: Server) {}

  static async start(port: number): Promise<HangingProxy> {
    const proxy: HangingProxy = new HangingProxy(
      createServer((socket) => {
        proxy.sockets.add(socket);
        socket.on('close', () => proxy.sockets.delete(socket));
        socket.on('error', () => {});
        if (proxy.hanging) return;
        const upstream = createConnection({ host: '127.0.0.1', port });
        upstream.on('error', () => socket.destroy());
        socket.pipe(upstream).pipe(socket);
        socket.on('close', () => upstream.destroy());
      }),
    );
    await new Promise<void>((resolve) => proxy.server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get url(): string {
    const address = this.server.address();
    return `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  }

  hang(): void {
    this.hanging = true;
    for (const socket of this.sockets) socket.destroy();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

describe('metrics and the OpenAPI document', () => {
  let stack: TestStack;
  let db: TestStack['db'];
  let hub: TestStack['hub'];
  const routes: { method: string; url: string }[] = [];

  before(async function () {
    this.timeout(120_000);
    stack = await startTestStack('metrics');
    ({ db, hub } = stack);
  });
  after(() => stack?.stop());

  const post = (path: string, body: unknown) =>
    fetch(`${hub.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const metric = (text: string, name: string) => {
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line === undefined ? undefined : Number(line.slice(name.length + 1));
  };
  const scrape = async () => (await fetch(`${hub.url}/metrics`)).text();
  const rpc = () => createPublicClient({ chain: foundry, transport: http(stack.chain.url) });
  /** The relayer: OPERATOR_KEY's account, as RELAYER_KEY is not set. */
  const relayer = () => getAddress(privateKeyToAccount(stack.chain.operatorKey).address);
  const relayerBalance = (address: Address) => `chit_relayer_gas_balance_wei{account="${address}"}`;

  it('counts exchanges and errors, and reports liabilities against the stake', async () => {
    const { info, response: ok } = await exchangeOnce(hub.url, db.pool, 7n);
    assert.equal(ok.status, 200);
    const refused = await post('/v1/exchange', { promise: {} });
    assert.equal(refused.status, 400);

    const response = await fetch(`${hub.url}/metrics`);
    assert.equal(response.status, 200);
    assert.match(response.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
    const text = await response.text();
    assert.equal(metric(text, 'chit_exchanges_total{outcome="ok"}'), 1);
    assert.equal(metric(text, 'chit_exchanges_total{outcome="repeated"}'), 0);
    assert.equal(metric(text, 'chit_errors_total{code="MALFORMED"}'), 1);
    // A body that does not decode is refused at the edge (MALFORMED above) and is not an exchange to time.
    assert.equal(metric(text, 'chit_exchange_seconds_count'), 1);
    assert.equal(metric(text, 'chit_exchange_queue_depth'), 0);
    assert.equal(metric(text, 'chit_exchange_batches_total{books="memory"}'), 0);
    assert.equal(metric(text, 'chit_exchange_batches_total{books="locked"}'), 1);
    assert.equal(metric(text, 'chit_unsettled_liabilities_tokens'), 7);
    assert.equal(metric(text, 'chit_stake_tokens'), Number(info.stake));
    assert.equal(metric(text, 'chit_settlements{status="queued"}'), 0);
    assert.match(text, /^# TYPE chit_settlement_seconds histogram$/m);
    assert.match(text, /^process_cpu_user_seconds_total /m);
  });

  it("reports the hub's free funds as the chain has them, after free funds are added", async function () {
    this.timeout(60_000);
    const hubAddress = getAddress(stack.chain.deployment.hub.address);
    const token = getAddress(stack.chain.deployment.token.address);
    const before = await getHubInfo(rpc(), { hub: hubAddress });
    // Not the operator (account 0): its nonces are the relayer's, which the hub allocates itself.
    const funder = createWalletClient({
      account: privateKeyToAccount(accountKey(1)),
      chain: foundry,
      transport: http(stack.chain.url),
    });
    const amount = parseEther('5');
    for (const [address, abi, functionName, args] of [
      [token, testTokenAbi, 'mint', [funder.account.address, amount]],
      [token, testTokenAbi, 'approve', [hubAddress, amount]],
      [hubAddress, hubAbi, 'addFreeFunds', [amount]],
    ] as const) {
      // biome-ignore lint/suspicious/noExplicitAny: three different contract calls in one loop
      const hash = await funder.writeContract({ address, abi, functionName, args } as any);
      await waitForTransaction(rpc(), { hash });
    }
    const after = await getHubInfo(rpc(), { hub: hubAddress });
    assert.equal(after.freeFunds, before.freeFunds + amount);
    await until('chit_free_funds_tokens to be the free funds on-chain', async () => {
      return metric(await scrape(), 'chit_free_funds_tokens') === Number(after.freeFunds);
    });
    assert.equal(metric(await scrape(), 'chit_stake_tokens'), Number(after.stake));
  });

  it("reports the relayer's gas balance, once, labelled with its checksummed address", async function () {
    this.timeout(60_000);
    const address = relayer();
    // The hub is idle: the balance is exact once the last read is newer than its last transaction.
    await until('chit_relayer_gas_balance_wei to be the balance on-chain', async () => {
      const text = await scrape();
      return metric(text, relayerBalance(address)) === Number(await rpc().getBalance({ address }));
    });
    const text = await scrape();
    assert.deepEqual(
      text.split('\n').filter((l) => l.startsWith('chit_relayer_gas_balance_wei')),
      [`${relayerBalance(address)} ${metric(text, relayerBalance(address))}`],
    );
    assert.match(text, /^# TYPE chit_relayer_gas_balance_wei gauge$/m);
  });

  it('reports the jobs of every BullMQ queue by state', async function () {
    this.timeout(60_000);
    const relay = hub.context.settlement.queues.queue(QueueName.Relay);
    // A job of an hour from now: it stays delayed for the test.
    const probe = await relay.add('metrics-probe', {}, { jobId: 'metrics-probe', delay: 3_600_000 });
    try {
      const text = await until('chit_queue_jobs to count the delayed job', async () => {
        const text = await scrape();
        return metric(text, 'chit_queue_jobs{queue="relay",state="delayed"}') === 1 && text;
      });
      for (const queue of Object.values(QueueName)) {
        for (const state of QUEUE_STATES) {
          const value = metric(text, `chit_queue_jobs{queue="${queue}",state="${state}"}`);
          assert.ok(value !== undefined && Number.isInteger(value) && value >= 0, `${queue} ${state}: ${value}`);
        }
      }
      const counts = await relay.getJobCounts(...QUEUE_STATES);
      assert.deepEqual(counts, { waiting: 0, paused: 0, active: 0, delayed: 1, prioritized: 0, failed: 0 });
      for (const state of QUEUE_STATES) {
        assert.equal(metric(text, `chit_queue_jobs{queue="relay",state="${state}"}`), counts[state], state);
      }
    } finally {
      await probe.remove();
    }
    await until('the removed job to leave chit_queue_jobs', async () => {
      return metric(await scrape(), 'chit_queue_jobs{queue="relay",state="delayed"}') === 0;
    });
  });

  it('serves metrics that promtool check metrics passes without a word', async () => {
    const text = await scrape();
    const result = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
    assert.ifError(
      result.error &&
        new Error(`promtool is required for this test (Debian: apt-get install prometheus): ${result.error.message}`),
    );
    assert.equal(`${result.stdout}${result.stderr}`, '');
    assert.equal(result.status, 0);
  });

  it('answers a scrape at once while the chain RPC hangs, with the last values read', async function () {
    this.timeout(60_000);
    const { deployment } = stack.chain;
    const proxy = await HangingProxy.start(Number(new URL(stack.chain.url).port));
    try {
      // No cache of the hub's state: every scrape after the hang asks the hung RPC.
      const chain = new ChainService(proxy.url, getAddress(deployment.hub.address), 0);
      const follower = new ChainFollower(chain.client, new ChainRepository(db.pool), new ChainEvents(), {
        hub: getAddress(deployment.hub.address),
        registry: getAddress(deployment.registry.address),
        cursorId: `31337:${deployment.hub.address.toLowerCase()}`,
        confirmations: 2,
        startBlock: 0n,
        pollMs: 1_000,
      });
      const metrics = new MetricsService({
        repository: new MetricsRepository(db.pool),
        chain,
        exchanges: () => hub.context.exchanges,
        followerLag: () => follower.lag(),
        relayer: relayer(),
        jobCounts: (states) => hub.context.settlement.queues.jobCounts(states),
        chainReadMaxAgeMs: 0,
      });
      const names = [
        'chit_stake_tokens',
        'chit_free_funds_tokens',
        relayerBalance(relayer()),
        'chit_follower_lag_blocks',
      ];
      const read = await metrics.text();
      const known = names.map((name) => metric(read, name));
      for (const [i, value] of known.entries()) assert.ok(value !== undefined && value >= 0, `${names[i]}: ${value}`);
      proxy.hang();
      const started = Date.now();
      const text = await metrics.text();
      const seconds = (Date.now() - started) / 1000;
      assert.ok(seconds < 5, `the scrape took ${seconds} s`);
      assert.deepEqual(
        names.map((name) => metric(text, name)),
        known,
      );
      assert.equal(metric(text, 'chit_queue_jobs{queue="relay",state="failed"}'), 0);
    } finally {
      await proxy.close();
    }
  });

  it('serves an OpenAPI 3 document listing every route the app serves', async () => {
    const response = await fetch(`${hub.url}/docs`);
    assert.equal(response.status, 200);
    // biome-ignore lint/suspicious/noExplicitAny: a JSON answer
    const document: any = await response.json();
    assert.match(document.openapi, /^3\.\d+\.\d+$/);
    const printed = hub.app.getHttpAdapter().getInstance().printRoutes({ commonPrefix: false });
    // A tree: "├── /v1/settlements (POST)" then "│   └── /:id (GET, HEAD)"; a child's path extends its parent's.
    const parents: string[] = [];
    for (const line of printed.split('\n')) {
      const match = /── (\S+)(?: \(([^)]+)\))?/.exec(line);
      if (!match) continue;
      const depth = Math.floor(match.index / 4);
      const url = (parents[depth - 1] ?? '') + match[1];
      parents[depth] = url;
      // The dashboard's page and files (hub/src/dashboard) are not API: /docs leaves them out.
      if (url.startsWith('/dashboard')) continue;
      // HEAD answers as GET; OPTIONS (`*`) is the CORS preflight of every path.
      for (const method of (match[2] ?? '').split(', ').filter((m) => m && m !== 'HEAD' && m !== 'OPTIONS')) {
        routes.push({ method, url });
      }
    }
    assert.ok(routes.length >= 16, `only ${routes.length} routes read from:\n${printed}`);
    for (const { method, url } of routes) {
      const path = url.replace(/:(\w+)/g, '{$1}');
      const operation = document.paths[path]?.[method.toLowerCase()];
      assert.ok(operation, `${method} ${path} is not in /docs`);
      assert.ok(operation.responses, `${method} ${path} has no responses`);
    }
    assert.equal(routes.length, Object.values(document.paths).flatMap((p) => Object.keys(p as object)).length);
    // The error body every refusal shares.
    assert.deepEqual(document.components.schemas.Error.required, ['code', 'message', 'details']);
    assert.equal(
      document.paths['/v1/exchange'].post.responses['400'].content['application/json'].schema.$ref,
      '#/components/schemas/Error',
    );
  });
});
