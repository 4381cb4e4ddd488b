import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { MemoryStore } from '@chit/sdk';
import { agreementIdOf, type ChitFetch, ChitServerScheme, chitFetch, chitPaywall } from '@chit/x402';
import type { Hex } from 'viem';
import { parseEther } from 'viem';
import { MIB } from './support/figures';
import { type Consumer, type Provider, type Stack, startStack } from './support/stack';

// A chitFetch buyer pays the second and later requests of an agreement in one round trip: the seller's
// PAYMENT-RESPONSE carries the next invoice (`extra.nextInvoice`), which the buyer pays on the first
// send of its next request. Every fallback (an expired invoice, a seller restarted with another secret,
// an invoice altered on the way) costs one 402 and is then paid once; the hub credits exactly what is due.

const PRICE = 1_000_000_000_000_007n;
const PER_MIB = 7_777_777_777_777_777n;
const SIZE = 70_001;
const TTL = 60;

/** What an agreement owes after `requests` paid requests of SIZE bytes each (the last one's unpaid yet). */
const dueAfter = (requests: number) =>
  BigInt(requests) * PRICE + (BigInt(requests - 1) * BigInt(SIZE) * PER_MIB + MIB - 1n) / MIB;

/** @x402/core's HTTP codec, as ESM: the copy @chit/x402 and the middleware use. */
const loadHttp = () => import('@x402/core/http');

const secret = (n: number) => `0x${n.toString(16).padStart(2, '0').repeat(32)}` as Hex;

describe('x402: one round trip per paid request after the first (extra.nextInvoice)', function () {
  this.timeout(180_000);

  let stack: Stack;
  let buyer: Consumer;
  let seller: Provider;
  let url: string;
  let pay: ChitFetch;
  let sellerScheme: ChitServerScheme;
  let x402core: Awaited<ReturnType<typeof loadHttp>>;
  /** The paywall middleware in front of the app: replaced to restart the seller. */
  let paywall: (req: unknown, res: unknown, next: () => void) => unknown;
  /** Milliseconds added to the seller's and the buyer's clocks. */
  let skew = 0;
  const clock = () => Date.now() + skew;
  /** Every request the buyer sent: whether it carried a PAYMENT-SIGNATURE, and the answer's status. */
  const sent: { signature: string | null; status: number }[] = [];
  /** When set, the next PAYMENT-RESPONSE on the way to the buyer gets this hashlock in its nextInvoice. */
  let tamper: Hex | undefined;
  let paid = 0;
  /** What the seller earned from other buyers. */
  let others = 0n;
  const closers: (() => unknown)[] = [];

  /** Pays one request and returns what it cost in HTTP requests and signatures. */
  const payOnce = async () => {
    const from = sent.length;
    const response = await pay(`${url}/data/${SIZE}`);
    assert.equal(response.status, 200);
    assert.equal((await response.text()).length, SIZE);
    paid++;
    const trip = sent.slice(from);
    return { requests: trip.length, signed: trip.filter((r) => r.signature).length, trip };
  };

  /** The hub credited exactly what `paid` requests owe, the buyer signed that and both meters agree. */
  const exact = async () => {
    const due = dueAfter(paid);
    assert.equal((await stack.hub.client.consumer(buyer.address)).credited, due, 'consumer credited');
    assert.equal((await stack.hub.client.provider(seller.address)).earned, due + others, 'seller earned');
    assert.equal(await buyer.ledger.total(), due, 'buyer signed');
    const agreementId = agreementIdOf(await salt(), buyer.address);
    const buyerUsage = await pay.scheme.usage(seller.address, agreementId);
    const sellerUsage = await sellerScheme.usage(agreementId);
    assert.deepEqual(buyerUsage, { requests: BigInt(paid), bytes: BigInt(paid * SIZE) });
    assert.deepEqual(sellerUsage, buyerUsage);
  };

  const salt = async () => {
    const unpaid = await fetch(`${url}/data/${SIZE}`);
    return x402core.decodePaymentRequiredHeader(unpaid.headers.get('PAYMENT-REQUIRED')!).accepts[0]!.extra
      .agreementSalt as Hex;
  };

  before(async () => {
    stack = await startStack();
    const [express, expressX402] = await Promise.all([import('express'), import('@x402/express')]);
    x402core = await loadHttp();
    [buyer, seller] = await Promise.all([stack.newConsumer({ deposit: parseEther('10') }), stack.newProvider()]);
    const first = await chitPaywall({
      hubUrl: stack.hub.url,
      ledger: seller.ledger,
      secret: secret(1),
      routes: { 'GET /data/*': { pricePerRequest: PRICE, pricePerMiB: PER_MIB } },
      invoiceTtlSeconds: TTL,
      clock,
    });
    sellerScheme = first.scheme;
    paywall = expressX402.paymentMiddleware(first.routes, first.server) as typeof paywall;
    const app = express.default();
    app.use((req, res, next) => paywall(req, res, next));
    app.get('/data/:size', (req, res) => {
      res.type('text/plain').send('x'.repeat(Number(req.params.size)));
    });
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    closers.push(() => server.close());

    const recording: typeof fetch = async (input, init) => {
      const signature = new Request(input, init).headers.get('PAYMENT-SIGNATURE');
      const response = await fetch(input, init);
      sent.push({ signature, status: response.status });
      const header = response.headers.get('PAYMENT-RESPONSE');
      if (!tamper || !header) return response;
      // An outside party on the way alters the next invoice.
      const settled = x402core.decodePaymentResponseHeader(header);
      const extra = settled.extra as { nextInvoice: { hashlock: Hex } };
      extra.nextInvoice.hashlock = tamper;
      tamper = undefined;
      const headers = new Headers(response.headers);
      headers.set('PAYMENT-RESPONSE', x402core.encodePaymentResponseHeader(settled));
      return new Response(response.body, { status: response.status, statusText: response.statusText, headers });
    };
    pay = chitFetch(recording, {
      ledger: buyer.ledger,
      token: stack.chain.token,
      maxPricePerRequest: PRICE,
      maxPricePerMiB: PER_MIB,
      store: new MemoryStore(),
      clock,
    });
  });

  after(async () => {
    for (const close of closers) await close();
    await stack?.stop();
  });

  it('20 paid requests cost 21 HTTP requests: one 402, then one paid send each', async () => {
    const first = await payOnce();
    assert.deepEqual(
      first.trip.map((r) => [r.status, Boolean(r.signature)]),
      [
        [402, false],
        [200, true],
      ],
    );
    let requests = first.requests;
    for (let i = 1; i < 20; i++) {
      const next = await payOnce();
      assert.deepEqual(
        next.trip.map((r) => [r.status, Boolean(r.signature)]),
        [[200, true]],
        `request ${i + 1}`,
      );
      requests += next.requests;
    }
    assert.equal(requests, 21);
    await exact();
  });

  it('the PAYMENT-RESPONSE carries the next invoice, and a plain @x402/fetch client ignores it', async () => {
    const [{ x402Client, wrapFetchWithPayment }, { ChitClientScheme }] = await Promise.all([
      import('@x402/fetch'),
      import('@chit/x402'),
    ]);
    const plain = await stack.newConsumer({ deposit: parseEther('1') });
    const scheme = new ChitClientScheme({
      ledger: plain.ledger,
      token: stack.chain.token,
      maxPricePerRequest: PRICE,
      maxPricePerMiB: PER_MIB,
    });
    let requests = 0;
    const counting: typeof fetch = (input, init) => {
      requests++;
      return fetch(input, init);
    };
    const plainPay = wrapFetchWithPayment(
      counting,
      new x402Client().register(scheme.network, scheme).setSpendControls({ allowedAssets: true }),
    );
    const response = await plainPay(`${url}/data/${SIZE}`);
    assert.equal(response.status, 200);
    assert.equal((await response.text()).length, SIZE);
    assert.equal(requests, 2);
    const settled = x402core.decodePaymentResponseHeader(response.headers.get('PAYMENT-RESPONSE')!);
    const next = (settled.extra as { nextInvoice: { nonce: string; hashlock: string; expiresAt: number } }).nextInvoice;
    assert.match(next.nonce, /^0x[0-9a-f]{64}$/);
    assert.match(next.hashlock, /^0x[0-9a-f]{64}$/);
    assert.ok(next.expiresAt > Math.floor(clock() / 1000) + TTL - 5);
    assert.equal((await stack.hub.client.consumer(plain.address)).credited, PRICE);
    others += PRICE;
  });

  it('an expired kept invoice is not paid: one 402, then paid once', async () => {
    skew += (TTL + 10) * 1000;
    const expired = await payOnce();
    assert.deepEqual(
      expired.trip.map((r) => [r.status, Boolean(r.signature)]),
      [
        [402, false],
        [200, true],
      ],
    );
    assert.equal((await payOnce()).requests, 1, 'then one round trip again');
    await exact();
  });

  it('a seller restarted with another secret refuses the kept invoice: one 402, then paid once', async () => {
    const agreementSalt = await salt();
    const [{ x402ResourceServer, HTTPFacilitatorClient }, expressX402] = await Promise.all([
      import('@x402/core/server'),
      import('@x402/express'),
    ]);
    sellerScheme = new ChitServerScheme({
      ledger: seller.ledger,
      secret: secret(9),
      hubUrl: stack.hub.url,
      invoiceTtlSeconds: TTL,
      clock,
    });
    const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: `${stack.hub.url}/x402` })).register(
      sellerScheme.network,
      sellerScheme,
    );
    const routes = {
      'GET /data/*': {
        accepts: {
          scheme: 'chit',
          network: sellerScheme.network,
          payTo: sellerScheme.provider,
          price: PRICE.toString(),
          maxTimeoutSeconds: 60,
          // The same agreement as before the restart.
          extra: { pricePerMiB: PER_MIB.toString(), agreementSalt },
        },
      },
    };
    paywall = expressX402.paymentMiddleware(routes, server) as typeof paywall;
    const total = await buyer.ledger.total();
    const restarted = await payOnce();
    assert.deepEqual(
      restarted.trip.map((r) => [r.status, Boolean(r.signature)]),
      [
        [402, true], // the kept invoice: UNKNOWN_INVOICE
        [402, false],
        [200, true], // the same totals, signed again for the new invoice
      ],
    );
    const refusal = restarted.trip[0]!;
    assert.ok(refusal.signature);
    assert.equal(await buyer.ledger.total(), total + (dueAfter(paid) - dueAfter(paid - 1)), 'paid once');
    assert.equal((await payOnce()).requests, 1, 'then one round trip again');
    await exact();
  });

  it('a tampered nextInvoice is refused by the seller (UNKNOWN_INVOICE) and the buyer recovers', async () => {
    tamper = `0x${'ab'.repeat(32)}`;
    assert.equal((await payOnce()).requests, 1);
    const from = sent.length;
    const response = await pay(`${url}/data/${SIZE}`);
    assert.equal(response.status, 200);
    await response.text();
    paid++;
    assert.deepEqual(
      sent.slice(from).map((r) => [r.status, Boolean(r.signature)]),
      [
        [402, true],
        [402, false],
        [200, true],
      ],
    );
    // The seller's refusal of the altered invoice.
    const replay = await fetch(`${url}/data/${SIZE}`, { headers: { 'PAYMENT-SIGNATURE': sent[from]!.signature! } });
    assert.equal(replay.status, 402);
    const error = x402core.decodePaymentRequiredHeader(replay.headers.get('PAYMENT-REQUIRED')!).error;
    assert.equal(error, 'UNKNOWN_INVOICE');
    assert.equal((await payOnce()).requests, 1, 'then one round trip again');
    await exact();
  });

  it('a replayed pre-paid PAYMENT-SIGNATURE gets a 402 and credits nothing', async () => {
    const last = sent.at(-1)!;
    assert.equal(last.status, 200);
    const before = await stack.hub.client.provider(seller.address);
    const replay = await fetch(`${url}/data/${SIZE}`, { headers: { 'PAYMENT-SIGNATURE': last.signature! } });
    assert.equal(replay.status, 402);
    assert.equal(x402core.decodePaymentRequiredHeader(replay.headers.get('PAYMENT-REQUIRED')!).error, 'WRONG_TOTAL');
    assert.equal((await stack.hub.client.provider(seller.address)).earned, before.earned);
    assert.equal((await payOnce()).requests, 1, 'the buyer still pays in one round trip');
    await exact();
  });
});
