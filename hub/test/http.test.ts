import assert from 'node:assert/strict';
import { HubClient, verifyHubPromise } from '@chit/sdk';
import { exchangeOnce } from './support/exchange';
import { startTestStack, type TestStack } from './support/hub';

describe('hub over HTTP', () => {
  let stack: TestStack;
  let chain: TestStack['chain'];
  let db: TestStack['db'];
  let hub: TestStack['hub'];

  before(async function () {
    this.timeout(120_000);
    stack = await startTestStack('http');
    ({ chain, db, hub } = stack);
  });
  after(() => stack?.stop());

  const post = (path: string, body: unknown) =>
    fetch(`${hub.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  it('answers /health, /ready and /v1/info', async () => {
    assert.equal((await fetch(`${hub.url}/health`)).status, 200);
    const ready = await fetch(`${hub.url}/ready`);
    assert.deepEqual(await ready.json(), {
      status: 'ready',
      checks: { postgres: true, redis: true, rpc: true, follower: true },
    });
    // biome-ignore lint/suspicious/noExplicitAny: a JSON answer
    const info: any = await (await fetch(`${hub.url}/v1/info`)).json();
    assert.equal(info.hub, chain.deployment.hub.address);
    assert.equal(info.chainId, 31337);
    assert.equal(info.operator, chain.deployment.hub.operator);
    assert.equal(info.fee, 100);
    assert.equal(info.status, 'active');
  });

  it('exchanges a promise and reports the books', async () => {
    const { consumer, provider, info, response } = await exchangeOnce(hub.url, db.pool, 5n);
    assert.equal(response.status, 200);
    // biome-ignore lint/suspicious/noExplicitAny: a JSON answer
    const { hubPromise }: any = await response.json();
    assert.equal(hubPromise.total, '5');
    assert.ok(verifyHubPromise({ ...hubPromise, total: 5n }, info.operator));
    // biome-ignore lint/suspicious/noExplicitAny: a JSON answer
    const books: any = await (await fetch(`${hub.url}/v1/consumers/${consumer.address}`)).json();
    assert.equal(books.credited, '5');
    // biome-ignore lint/suspicious/noExplicitAny: a JSON answer
    const providerBooks: any = await (await fetch(`${hub.url}/v1/providers/${provider.address}`)).json();
    assert.equal(providerBooks.unsettled, '5');
  });

  it('answers in the shape the SDK client decodes strictly', async () => {
    const client = new HubClient({ url: hub.url });
    const info = await client.info();
    assert.equal(info.hub, chain.deployment.hub.address);
    assert.equal(info.status, 'active');
    assert.equal(await client.ready(), true);
    const consumers = await db.pool.query('SELECT address FROM consumers LIMIT 1');
    const address = `0x${consumers.rows[0].address.toString('hex')}` as `0x${string}`;
    const consumer = await client.consumer(address);
    assert.equal(consumer.credited, 5n);
    const provider = await client.provider(consumer.latestPromise!.agreement.provider);
    assert.equal(provider.unsettled, 5n);
  });

  it('answers bad input with a 4xx and a stable code', async () => {
    const malformed = await post('/v1/exchange', { promise: {} });
    assert.equal(malformed.status, 400);
    assert.equal(((await malformed.json()) as { code: string }).code, 'MALFORMED');
    const notJson = await fetch(`${hub.url}/v1/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    assert.equal(notJson.status, 400);
    assert.equal(((await notJson.json()) as { code: string }).code, 'MALFORMED');
    const unknown = await fetch(`${hub.url}/v1/providers/0x0000000000000000000000000000000000000001`);
    assert.equal(unknown.status, 404);
    assert.equal(((await unknown.json()) as { code: string }).code, 'UNKNOWN_PROVIDER');
    const noRoute = await fetch(`${hub.url}/v1/nothing`);
    assert.equal(noRoute.status, 404);
    assert.equal(((await noRoute.json()) as { code: string }).code, 'NOT_FOUND');
  });
});
