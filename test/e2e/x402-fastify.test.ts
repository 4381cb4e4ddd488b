import assert from 'node:assert/strict';
import { MemoryStore, type Store } from '@chit/sdk';
import type { ChitFetch } from '@chit/x402';
import type { FastifyInstance } from 'fastify';
import type { Hex } from 'viem';
import { parseEther } from 'viem';
import { MIB } from './support/figures';
import { type Consumer, type Provider, type Stack, startStack } from './support/stack';

const PRICE = 1_000_000_000_000_009n;
const PER_MIB = 3_333_333_333_333_333n;
const owedFor = (requests: number, bytes: bigint) => BigInt(requests) * PRICE + (bytes * PER_MIB + MIB - 1n) / MIB;

// docs/sellers.md, inside a Fastify app: chitFastify puts x402 with the chit scheme in Fastify's hooks.
describe('x402 in a Fastify app: chitFastify', function () {
  this.timeout(180_000);
  let stack: Stack;
  let buyer: Consumer;
  let seller: Provider;
  let app: FastifyInstance;
  let url: string;
  let pay: ChitFetch;
  let handled = 0;
  const signatures: string[] = [];

  before(async () => {
    stack = await startStack();
    [buyer, seller] = await Promise.all([stack.newConsumer({ deposit: parseEther('1') }), stack.newProvider()]);
    const { chitPaywall, chitFastify, chitFetch } = await import('@chit/x402');
    const { default: fastify } = await import('fastify');
    await seller.ledger.open();
    const paywall = await chitPaywall({
      hubUrl: stack.hub.url,
      ledger: seller.ledger,
      secret: `0x${'fa'.repeat(32)}` as Hex,
      pricePerRequest: PRICE,
      pricePerMiB: PER_MIB,
      routes: ['GET /data/*', 'GET /fail'],
    });
    app = fastify();
    await chitFastify(app, paywall);
    app.get('/data/:size', async (request) => {
      handled += 1;
      return 'z'.repeat(Number((request.params as { size: string }).size));
    });
    app.get('/fail', async (_request, reply) => {
      handled += 1;
      return reply.code(503).send({ down: true });
    });
    app.get('/free', async () => ({ free: true }));
    url = await app.listen({ port: 0, host: '127.0.0.1' });
    const recording: typeof fetch = async (input, init) => {
      const signature = new Request(input, init).headers.get('PAYMENT-SIGNATURE');
      if (signature) signatures.push(signature);
      return fetch(input, init);
    };
    pay = chitFetch(recording, {
      ledger: buyer.ledger,
      token: stack.chain.token,
      maxPricePerRequest: PRICE,
      maxPricePerMiB: PER_MIB,
      store: new MemoryStore(),
    });
  });

  after(async () => {
    await app?.close();
    await stack?.stop();
  });

  it('answers an unpaid request 402 before the handler, and leaves routes without a price alone', async () => {
    const unpaid = await fetch(`${url}/data/10`);
    assert.equal(unpaid.status, 402);
    const required = JSON.parse(Buffer.from(unpaid.headers.get('PAYMENT-REQUIRED')!, 'base64').toString());
    assert.equal(required.accepts[0].amount, PRICE.toString());
    assert.equal(handled, 0);
    assert.deepEqual(await (await fetch(`${url}/free`)).json(), { free: true });
  });

  it('serves 20 paid requests, each body paid with the next one, to the wei at the hub', async () => {
    const sizes = Array.from({ length: 20 }, (_, i) => 100 + i * 37_001);
    for (const size of sizes) {
      const response = await pay(`${url}/data/${size}`);
      assert.equal(response.status, 200);
      assert.equal((await response.text()).length, size);
      assert.ok(response.headers.get('PAYMENT-RESPONSE'));
      assert.match(response.headers.get('cache-control') ?? '', /private/);
    }
    const owed = owedFor(20, BigInt(sizes.slice(0, -1).reduce((a, b) => a + b, 0)));
    assert.equal((await stack.hub.client.provider(seller.address)).earned, owed);
    assert.equal(await buyer.ledger.total(), owed);
  });

  it('a handler answering 503 is not charged, and a replayed payment gets a 402 without the handler', async () => {
    const earned = (await stack.hub.client.provider(seller.address)).earned;
    const failed = await pay(`${url}/fail`);
    assert.equal(failed.status, 503);
    assert.equal((await stack.hub.client.provider(seller.address)).earned, earned, 'not charged');
    const before = handled;
    const replay = await fetch(`${url}/data/5`, { headers: { 'PAYMENT-SIGNATURE': signatures.at(-2)! } });
    assert.equal(replay.status, 402);
    assert.equal(handled, before, 'the handler never ran');
    assert.equal((await stack.hub.client.provider(seller.address)).earned, earned);
  });

  it('a meter read from a slow store while a payment of its agreement settles is not kept: the next payment is taken at once', async () => {
    // A store whose next read of a seller's meter, once armed, takes the stored value at once and answers
    // only when let go: a slow disk under a read that begins before a settlement and ends after it.
    const inner = new MemoryStore();
    let armed = false;
    let release: (() => void) | undefined;
    let reached: () => void = () => {};
    const held = new Promise<void>((resolve) => {
      reached = resolve;
    });
    const store: Store = {
      get: async (key) => {
        const value = await inner.get(key);
        if (armed && key.startsWith('chit/x402/seller/')) {
          armed = false;
          await new Promise<void>((resolve) => {
            release = resolve;
            reached();
          });
        }
        return value;
      },
      put: (key, value) => inner.put(key, value),
      delete: (key) => inner.delete(key),
    };
    const other = await stack.newProvider({ store });
    await other.ledger.open();
    const { chitPaywall, chitFastify } = await import('@chit/x402');
    const { default: fastify } = await import('fastify');
    // Two apps of one seller (one ledger, one secret, so one agreement per buyer), each with its own paywall.
    const apps = await Promise.all(
      [0, 1].map(async () => {
        const paywall = await chitPaywall({
          hubUrl: stack.hub.url,
          ledger: other.ledger,
          secret: `0x${'fb'.repeat(32)}` as Hex,
          pricePerRequest: PRICE,
          pricePerMiB: PER_MIB,
          routes: ['GET /data/*'],
        });
        const instance = fastify();
        await chitFastify(instance, paywall);
        instance.get('/data/:size', async (request) => 'y'.repeat(Number((request.params as { size: string }).size)));
        return { paywall, instance, url: await instance.listen({ port: 0, host: '127.0.0.1' }) };
      }),
    );
    const [first, second] = apps as [(typeof apps)[0], (typeof apps)[0]];
    try {
      assert.equal((await pay(`${first.url}/data/10`)).status, 200);
      const header = JSON.parse(Buffer.from(signatures.at(-1)!, 'base64').toString());
      const agreementId = header.payload.promise.agreement.id as Hex;
      // The second app has not read this agreement's meter yet: its read goes to the store, and waits.
      armed = true;
      const reading = second.paywall.scheme.usage(agreementId);
      let bound: NodeJS.Timeout | undefined;
      await Promise.race([
        held,
        new Promise((_, reject) => {
          bound = setTimeout(() => reject(new Error('the read did not reach the store in 10 s')), 10_000);
        }),
      ]).finally(() => clearTimeout(bound));
      // Meanwhile the buyer's next request is paid and settled through the second app.
      assert.equal((await pay(`${second.url}/data/20`)).status, 200);
      release!();
      assert.deepEqual(await reading, { requests: 1n, bytes: 10n }, 'what the store held when the read began');
      // The next payment is taken at once: the seller did not keep the meter read before the settlement.
      const sent = signatures.length;
      const third = await pay(`${second.url}/data/30`);
      assert.equal(third.status, 200, await third.clone().text());
      assert.equal(signatures.length, sent + 1, 'one paid send, no 402');
      const owed = owedFor(3, 10n + 20n);
      assert.equal((await stack.hub.client.provider(other.address)).earned, owed);
    } finally {
      release?.();
      for (const app of apps) await app.instance.close();
    }
  });
});
