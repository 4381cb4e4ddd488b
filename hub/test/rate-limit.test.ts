import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { freePort } from '@chit/devstack';
import { HubClient, HubError } from '@chit/sdk';
import Redis from 'ioredis';
import { type RunningHub, startHub } from '../src/app';
import { startTestStack, type TestStack } from './support/hub';

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined | false>, ms = 30_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

const metric = (text: string, name: string) => {
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line === undefined ? undefined : Number(line.slice(name.length + 1));
};

// Limits per client address, counted in Redis: the hub trusts the loopback proxy (TRUST_PROXY), so each
// test is a client of its own by its X-Forwarded-For.
describe('rate limits', () => {
  const MAX = 5;
  let stack: TestStack;
  /** A second replica of the stack's hub (same database, Redis and QUEUE_PREFIX): the API only. */
  let replica: RunningHub;
  /** The same hub with a short window. */
  let short: RunningHub;
  /** The same hub without limits. */
  let unlimited: RunningHub;

  before(async function () {
    this.timeout(180_000);
    stack = await startTestStack('rate-limit', {
      RATE_LIMIT_MAX: String(MAX),
      RATE_LIMIT_WINDOW_MS: '60000',
      TRUST_PROXY: 'loopback',
    });
    const config = stack.hub.context.config;
    replica = await startHub({ ...config, HUB_ROLE: 'api' });
    short = await startHub({ ...config, HUB_ROLE: 'api', RATE_LIMIT_MAX: 2, RATE_LIMIT_WINDOW_MS: 1_500 });
    unlimited = await startHub({ ...config, HUB_ROLE: 'api', RATE_LIMIT_MAX: 0 });
  });
  after(async () => {
    for (const hub of [replica, short, unlimited]) await hub?.close();
    await stack?.stop();
  });

  const get = (url: string, client: string, path = '/v1/info', headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { headers: { 'x-forwarded-for': client, ...headers } });

  /** Requests `/v1/info` as `client` until it is refused; returns that answer. */
  const exhaust = async (url: string, client: string) => {
    for (let i = 0; i < 100; i++) {
      const response = await get(url, client);
      if (response.status === 429) return response;
      assert.equal(response.status, 200);
      await response.arrayBuffer();
    }
    throw new Error(`${client} was never limited`);
  };

  describe('when a client goes over the limit', () => {
    const client = '203.0.113.1';

    it('answers RATE_LIMITED (429) with Retry-After, on every route but /health, /ready and /metrics', async () => {
      const url = stack.hub.url;
      const counted = async () =>
        metric(await (await get(url, client, '/metrics')).text(), 'chit_errors_total{code="RATE_LIMITED"}') ?? 0;
      const before = await counted();
      for (let i = 1; i <= MAX; i++) {
        const response = await get(url, client);
        assert.equal(response.status, 200);
        assert.equal(response.headers.get('x-ratelimit-limit'), String(MAX));
        assert.equal(response.headers.get('x-ratelimit-remaining'), String(MAX - i));
        await response.arrayBuffer();
      }
      const refused = await get(url, client, '/v1/info', { origin: 'https://wallet.example' });
      assert.equal(refused.status, 429);
      const body: Json = await refused.json();
      const seconds = Number(refused.headers.get('retry-after'));
      assert.ok(seconds >= 1 && seconds <= 60, `Retry-After ${refused.headers.get('retry-after')}`);
      assert.deepEqual(body, {
        code: 'RATE_LIMITED',
        message: `Too many requests from this address: retry in ${seconds} s`,
        details: { retryAfterSeconds: seconds },
      });
      assert.equal(refused.headers.get('x-ratelimit-remaining'), '0');
      // The answer a browser may read (CORS_ORIGINS is `*` by default), Retry-After included.
      assert.equal(refused.headers.get('access-control-allow-origin'), '*');
      assert.match(refused.headers.get('access-control-expose-headers') ?? '', /\bretry-after\b/);

      // Every limited route, a POST too: refused before its body is read.
      const exchange = await fetch(`${url}/v1/exchange`, {
        method: 'POST',
        headers: { 'x-forwarded-for': client, 'content-type': 'application/json' },
        body: '{',
      });
      assert.equal(exchange.status, 429);
      assert.equal(((await exchange.json()) as Json).code, 'RATE_LIMITED');

      for (const path of ['/health', '/ready', '/metrics']) {
        const response = await get(url, client, path);
        assert.equal(response.status, 200, path);
        assert.equal(response.headers.get('x-ratelimit-limit'), null, path);
        await response.arrayBuffer();
      }
      const preflight = await fetch(`${url}/v1/exchange`, {
        method: 'OPTIONS',
        headers: {
          'x-forwarded-for': client,
          origin: 'https://wallet.example',
          'access-control-request-method': 'POST',
          'access-control-request-headers': 'content-type',
        },
      });
      assert.equal(preflight.status, 204);

      assert.equal(await counted(), before + 2);
    });

    it('the SDK client reads the code and the wait, and gives up when told not to retry', async () => {
      const sdk = new HubClient({ url: stack.hub.url, headers: { 'x-forwarded-for': client } });
      const error = await sdk.info({ retry: false }).then(
        () => assert.fail('not limited'),
        (caught: unknown) => caught,
      );
      assert.ok(error instanceof HubError);
      assert.equal(error.code, 'RATE_LIMITED');
      assert.equal(error.status, 429);
      assert.ok(error.retryable);
      assert.ok(error.retryAfterMs !== undefined && error.retryAfterMs >= 1_000 && error.retryAfterMs <= 60_000);
      assert.deepEqual(error.hubDetails, { retryAfterSeconds: error.retryAfterMs / 1_000 });
    });

    it('another client is not limited', async () => {
      const other = await get(stack.hub.url, '203.0.113.2');
      assert.equal(other.status, 200);
      assert.equal(other.headers.get('x-ratelimit-remaining'), String(MAX - 1));
      // Without X-Forwarded-For the client is the connection's peer, another address again.
      const direct = await fetch(`${stack.hub.url}/v1/info`);
      assert.equal(direct.status, 200);
      assert.equal(direct.headers.get('x-ratelimit-remaining'), String(MAX - 1));
      assert.equal((await get(stack.hub.url, client)).status, 429);
    });
  });

  it('two replicas on one Redis share the count', async () => {
    const client = '203.0.113.3';
    const statuses: number[] = [];
    for (let i = 0; i < MAX; i++) {
      const response = await get((i % 2 === 0 ? stack.hub : replica).url, client);
      statuses.push(response.status);
      await response.arrayBuffer();
    }
    assert.deepEqual(statuses, Array(MAX).fill(200));
    assert.equal((await get(replica.url, client)).status, 429);
    assert.equal((await get(stack.hub.url, client)).status, 429);
  });

  it('lets the client in again once the window has passed', async function () {
    this.timeout(60_000);
    const client = '203.0.113.4';
    const refused = await exhaust(short.url, client);
    assert.ok(Number(refused.headers.get('retry-after')) <= 2);
    const answer = await until('the window to pass', async () => {
      const response = await get(short.url, client);
      await response.arrayBuffer();
      return response.status !== 429 && response;
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('x-ratelimit-remaining'), '1');

    // The SDK client waits what Retry-After says, then gets its answer.
    await exhaust(short.url, client);
    const sdk = new HubClient({ url: short.url, headers: { 'x-forwarded-for': client }, retry: { attempts: 4 } });
    const info = await sdk.info();
    assert.equal(info.hub, stack.chain.deployment.hub.address);
  });

  it('answers unlimited while Redis is out of reach, and limits again once it is back', async function () {
    this.timeout(120_000);
    // A redis-server of this test's own, to kill: never the shared one.
    const port = await freePort();
    const url = `redis://127.0.0.1:${port}`;
    let server: ChildProcess | undefined;
    const startRedis = async () => {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
      server = spawn('redis-server', args, { stdio: 'ignore' });
      await until('redis-server to answer', async () => {
        const client = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
        client.on('error', () => {});
        try {
          await client.connect();
          return (await client.ping()) === 'PONG';
        } catch {
          return false;
        } finally {
          client.disconnect();
        }
      });
    };
    const running = () => server !== undefined && server.exitCode === null && server.signalCode === null;
    const stopRedis = async () => {
      const child = server;
      if (!child || !running()) return;
      await new Promise((resolve) => {
        child.once('exit', resolve);
        child.kill('SIGKILL');
      });
    };
    let hub: RunningHub | undefined;
    const client = '203.0.113.6';
    const info = () =>
      get(hub!.url, client, '/v1/info').then(async (response) => {
        await response.arrayBuffer();
        return response;
      });
    try {
      await startRedis();
      hub = await startHub({ ...stack.hub.context.config, HUB_ROLE: 'api', REDIS_URL: url, RATE_LIMIT_MAX: 1 });
      assert.equal((await info()).status, 200);
      assert.equal((await info()).status, 429);

      await stopRedis();
      for (let i = 0; i < 3; i++) assert.equal((await info()).status, 200);

      // Back, and empty: the count starts again.
      await startRedis();
      await until('the limit to count again', async () => (await info()).status === 429);
    } finally {
      // The hub closes its connections to a Redis that answers.
      if (!running()) await startRedis().catch(() => {});
      await hub?.close();
      await stopRedis();
    }
  });

  it('limits nothing with RATE_LIMIT_MAX=0', async () => {
    for (let i = 0; i < 3 * MAX; i++) {
      const response = await get(unlimited.url, '203.0.113.5');
      assert.equal(response.status, 200);
      assert.equal(response.headers.get('x-ratelimit-limit'), null);
      await response.arrayBuffer();
    }
  });
});
