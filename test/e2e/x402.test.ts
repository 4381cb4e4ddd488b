import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import {
  ConsumerLedger,
  consumerPromiseDigest,
  decodeMessage,
  encodeMessage,
  MemoryStore,
  settleProvider,
} from '@chit/sdk';
import {
  agreementIdOf,
  type ChitClientSchemeOptions,
  type ChitFetch,
  type ChitServerScheme,
  chitFetch,
  chitPaywall,
  RequirementsRejectedError,
  SpendingLimitError,
} from '@chit/x402';
import type { Address, Hex } from 'viem';
import { parseEther } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { feeOf, MIB, sum } from './support/figures';
import { type Consumer, type Provider, type Stack, startStack, until } from './support/stack';

// The `chit` x402 scheme (issue 14) end to end: an Express app behind @x402/express and a Hono app
// behind @x402/hono sell requests priced per request and per MiB of response body; buyers pay with
// chitFetch (@x402/fetch) through the real hub as facilitator. Every figure is computed here from the
// prices and the body sizes served, and checked to the wei at the hub, on-chain and after settlement.

/** What an agreement owes after `requests` paid requests, `bytes` being the bodies served before the last one. */
const owedFor = (requests: number, bytes: bigint, price: bigint, perMiB: bigint) =>
  BigInt(requests) * price + (bytes * perMiB + MIB - 1n) / MIB;

// Token base units (18 decimals). Odd amounts, so that rounding shows; each buyer's total is worth more
// than the gas of its collection (the hub collects only those).
const PRICE = 1_000_000_000_000_007n; // per request
const PER_MIB = 7_777_777_777_777_777n; // per MiB of response body
const CHEAP = 12_345_678_901_234_567n;
const DEAR = 3n * CHEAP;
/** The buyers' highest price per request. */
const MAX_PRICE = 4n * CHEAP;

/**
 * Body sizes of the Express run, uneven, some above a MiB: 50 requests in npm test, 1,000 for the issue's
 * full run (CHIT_X402_REQUESTS=1000 npm run test:e2e).
 */
const expressSizes = Array.from(
  { length: Number(process.env.CHIT_X402_REQUESTS ?? 50) },
  (_, i) => 1 + ((i * 7_919 + 13) % 90_000) + (i % 10 === 9 ? 1_300_000 : 0),
);
/** Body sizes of the Hono run: 10 rounds of 5 requests at once, one size a round. */
const honoRounds = Array.from({ length: 10 }, (_, round) => 17 + round * 123_457);

/** @x402/core's HTTP codec and client, as ESM: the copy @chit/x402 and the middlewares use. */
const loadX402Core = async () => ({ http: await import('@x402/core/http'), client: await import('@x402/core/client') });

/** Asserts that `task` rejects with a SpendingLimitError for `limit`, and that the ledger signed nothing. */
async function refused(task: Promise<unknown>, ledger: ConsumerLedger, limit: string) {
  const total = await ledger.total();
  await assert.rejects(task, (error: unknown) => {
    assert.ok(error instanceof SpendingLimitError, `expected a SpendingLimitError, got ${error}`);
    assert.equal(error.limit, limit);
    assert.equal(error.code, 'SPENDING_LIMIT');
    return true;
  });
  assert.equal(await ledger.total(), total, 'nothing signed');
}

describe('x402: the chit scheme with @x402/express, @x402/hono and @x402/fetch', function () {
  this.timeout(120_000);

  let stack: Stack;
  let stakeAtStart: bigint;
  let buyer: Consumer;
  let expressSeller: Provider;
  let honoSeller: Provider;
  let expressUrl: string;
  let honoUrl: string;
  let sellerSchemes: { express: ChitServerScheme; hono: ChitServerScheme };
  let pay: ChitFetch;
  let dave: Consumer;
  /** PAYMENT-SIGNATURE headers the buyer sent, in order. */
  const sentSignatures: string[] = [];
  const closers: (() => unknown)[] = [];
  /** How many times each fixed-price Express route ran its handler. */
  const served = new Map<string, number>();
  /** What each party is owed / owes, by address. */
  const owed = new Map<Address, bigint>();
  const add = (who: Address, amount: bigint) => owed.set(who, (owed.get(who) ?? 0n) + amount);
  const owedBy = (who: { address: Address }) => owed.get(who.address) ?? 0n;
  const deposit = parseEther('10');
  /** Every buyer of the file. */
  const consumers: Consumer[] = [];
  let x402core: Awaited<ReturnType<typeof loadX402Core>>;
  /** How many payments the Express seller asked the hub to verify (`/x402/verify`). */
  let hubVerifies = 0;

  /** The agreement salt of the Express seller's /cheap route. */
  const cheapSalt = async () => {
    const unpaid = await fetch(`${expressUrl}/cheap`);
    return x402core.http.decodePaymentRequiredHeader(unpaid.headers.get('PAYMENT-REQUIRED')!).accepts[0]!.extra
      .agreementSalt as Hex;
  };

  /** A buyer's options: the main buyer's maximums, `overrides` on top. */
  const buyerOptions = (
    consumer: Consumer,
    overrides: Partial<ChitClientSchemeOptions> = {},
  ): ChitClientSchemeOptions => ({
    ledger: consumer.ledger,
    token: stack.chain.token,
    maxPricePerRequest: MAX_PRICE,
    maxPricePerMiB: PER_MIB,
    store: new MemoryStore(),
    ...overrides,
  });

  before(async () => {
    stack = await startStack({ hubEnv: { SETTLEMENT_SCAN_INTERVAL_MS: '500', SETTLEMENT_BATCH_WINDOW_MS: '300' } });
    const figures = await stack.read.hubFigures();
    assert.equal(figures.freeFunds, 0n);
    stakeAtStart = figures.stake;
    // ESM imports, so that the middlewares and @chit/x402 share one copy of @x402/core.
    const [express, expressX402, hono, honoX402, nodeServer] = await Promise.all([
      import('express'),
      import('@x402/express'),
      import('hono'),
      import('@x402/hono'),
      import('@hono/node-server'),
    ]);
    x402core = await loadX402Core();
    [buyer, expressSeller, honoSeller] = await Promise.all([
      stack.newConsumer({ deposit }),
      stack.newProvider(),
      stack.newProvider(),
    ]);
    consumers.push(buyer);
    const secret = (n: number) => `0x${n.toString(16).padStart(2, '0').repeat(32)}` as Hex;

    // Express: /data/:size at PRICE + PER_MIB, and routes of other prices for the attacks. Its
    // facilitator counts the payments it verifies at the hub.
    const facilitator = new (await import('@x402/core/server')).HTTPFacilitatorClient({ url: `${stack.hub.url}/x402` });
    const verifyAtHub = facilitator.verify.bind(facilitator);
    facilitator.verify = (...args) => {
      hubVerifies++;
      return verifyAtHub(...args);
    };
    const expressPaywall = await chitPaywall({
      facilitator,
      hubUrl: stack.hub.url,
      ledger: expressSeller.ledger,
      secret: secret(1),
      routes: {
        'GET /data/*': { pricePerRequest: PRICE, pricePerMiB: PER_MIB, mimeType: 'text/plain' },
        'GET /cheap': { pricePerRequest: CHEAP },
        'GET /dear': { pricePerRequest: DEAR },
        'GET /greedy': { pricePerRequest: MAX_PRICE + 1n },
        'GET /greedy-mib': { pricePerRequest: PRICE, pricePerMiB: PER_MIB + 1n },
      },
    });
    const app = express.default();
    app.use(expressX402.paymentMiddleware(expressPaywall.routes, expressPaywall.server));
    app.get('/data/:size', (req, res) => {
      res.type('text/plain').send('x'.repeat(Number(req.params.size)));
    });
    for (const route of ['/cheap', '/dear', '/greedy', '/greedy-mib']) {
      app.get(route, (_req, res) => {
        served.set(route, (served.get(route) ?? 0) + 1);
        res.send(route);
      });
    }
    const expressServer = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => expressServer.once('listening', resolve));
    expressUrl = `http://127.0.0.1:${(expressServer.address() as AddressInfo).port}`;
    closers.push(() => expressServer.close());

    // Hono: /data/:size at the same prices.
    const honoPaywall = await chitPaywall({
      hubUrl: stack.hub.url,
      ledger: honoSeller.ledger,
      secret: secret(2),
      pricePerRequest: PRICE,
      pricePerMiB: PER_MIB,
      routes: ['GET /data/*'],
    });
    const honoApp = new hono.Hono();
    honoApp.use(honoX402.paymentMiddleware(honoPaywall.routes, honoPaywall.server));
    sellerSchemes = { express: expressPaywall.scheme, hono: honoPaywall.scheme };
    honoApp.get('/data/:size', (c) => c.text('y'.repeat(Number(c.req.param('size')))));
    honoUrl = await new Promise<string>((resolve) => {
      const server = nodeServer.serve({ fetch: honoApp.fetch, port: 0, hostname: '127.0.0.1' }, (info) =>
        resolve(`http://127.0.0.1:${info.port}`),
      );
      closers.push(() => server.close());
    });

    const recording: typeof fetch = async (input, init) => {
      const signature = new Request(input, init).headers.get('PAYMENT-SIGNATURE');
      if (signature) sentSignatures.push(signature);
      return fetch(input, init);
    };
    pay = chitFetch(recording, buyerOptions(buyer));
  });

  after(async () => {
    for (const close of closers) await close();
    await stack?.stop();
  });

  it(`pays ${expressSizes.length} Express requests one after the other, each body paid with the next invoice`, async () => {
    for (const size of expressSizes) {
      const response = await pay(`${expressUrl}/data/${size}`);
      assert.equal(response.status, 200, `status of /data/${size}`);
      assert.equal((await response.text()).length, size);
      const settled = x402core.http.decodePaymentResponseHeader(response.headers.get('PAYMENT-RESPONSE')!);
      assert.equal(settled.success, true);
      assert.equal(settled.payer, buyer.address);
    }
    const total = owedFor(expressSizes.length, BigInt(sum(expressSizes.slice(0, -1).map(BigInt))), PRICE, PER_MIB);
    add(buyer.address, total);
    add(expressSeller.address, total);
    const { hubPromise } = await expressSeller.ledger.latest();
    assert.equal(hubPromise?.total, total, 'the seller holds a hub promise for the agreement total');
    assert.equal(await buyer.ledger.total(), total);
  });

  it('pays 50 Hono requests, five at a time: one agreement, paid in order', async () => {
    for (const size of honoRounds) {
      const responses = await Promise.all(Array.from({ length: 5 }, () => pay(`${honoUrl}/data/${size}`)));
      for (const response of responses) {
        assert.equal(response.status, 200);
        assert.equal((await response.text()).length, size);
      }
    }
    const served = honoRounds.flatMap((size) => Array<number>(5).fill(size));
    const total = owedFor(50, BigInt(sum(served.slice(0, -1).map(BigInt))), PRICE, PER_MIB);
    add(buyer.address, total);
    add(honoSeller.address, total);
    const { hubPromise } = await honoSeller.ledger.latest();
    assert.equal(hubPromise?.total, total);
  });

  it('the hub credited exactly what was due: consumer total = Σ due, seller promises = Σ increments', async () => {
    const books = await stack.hub.client.consumer(buyer.address);
    assert.equal(books.credited, owedBy(buyer));
    assert.equal(books.promised, owedBy(buyer));
    assert.equal(books.latestPromise?.total, owedBy(buyer));
    assert.equal(await buyer.ledger.total(), owedBy(buyer));
    for (const seller of [expressSeller, honoSeller]) {
      const account = await stack.hub.client.provider(seller.address);
      assert.equal(account.earned, owedBy(seller));
      assert.equal(account.unsettled, owedBy(seller));
    }
    assert.equal(owedBy(buyer), owedBy(expressSeller) + owedBy(honoSeller));
  });

  it('a replayed PAYMENT-SIGNATURE gets a 402 and credits nothing, at its seller and at another', async () => {
    const last = sentSignatures.at(-1)!;
    const before = await Promise.all([honoSeller, expressSeller].map((p) => stack.hub.client.provider(p.address)));
    for (const [url, error] of [
      // Its own seller counted the request it paid: the total is not what is due now.
      [`${honoUrl}/data/${honoRounds.at(-1)}`, 'WRONG_TOTAL'],
      // Another seller: another payee, so no requirement of its route matches.
      [`${expressUrl}/data/${expressSizes.at(-1)}`, 'No matching payment requirements'],
    ] as const) {
      const response = await fetch(url, { headers: { 'PAYMENT-SIGNATURE': last } });
      assert.equal(response.status, 402, url);
      assert.equal(await response.text(), '{}', 'no content');
      const required = x402core.http.decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED')!);
      assert.equal(required.error, error);
    }
    const after = await Promise.all([honoSeller, expressSeller].map((p) => stack.hub.client.provider(p.address)));
    assert.deepEqual(
      after.map((account) => account.earned),
      before.map((account) => account.earned),
    );
    assert.equal((await stack.hub.client.consumer(buyer.address)).credited, owedBy(buyer));
  });

  it('an invoice whose expiry was pushed back is not the seller’s: refused before the hub is asked', async () => {
    const grace = await stack.newConsumer({ deposit });
    const scheme = chitFetch(fetch, buyerOptions(grace)).scheme;
    const unpaid = await fetch(`${expressUrl}/cheap`);
    const required = x402core.http.decodePaymentRequiredHeader(unpaid.headers.get('PAYMENT-REQUIRED')!);
    const invoice = required.accepts[0]!;
    invoice.extra.expiresAt = (invoice.extra.expiresAt as number) + 3_600;
    const client = new x402core.client.x402Client()
      .register(scheme.network, scheme)
      .setSpendControls({ allowedAssets: true });
    const header = x402core.http.encodePaymentSignatureHeader(await client.createPaymentPayload(required));
    const before = served.get('/cheap') ?? 0;
    const response = await fetch(`${expressUrl}/cheap`, { headers: { 'PAYMENT-SIGNATURE': header } });
    assert.equal(response.status, 402);
    const refusal = x402core.http.decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED')!);
    assert.equal(refusal.error, 'UNKNOWN_INVOICE');
    assert.equal(served.get('/cheap') ?? 0, before, 'the handler did not run');
    assert.equal((await stack.hub.client.consumer(grace.address)).credited, 0n);
  });

  it('one payment sent twice at once is served once: the other is refused (at verify, or at settle after its handler) with no content', async () => {
    const hal = await stack.newConsumer({ deposit });
    consumers.push(hal);
    const scheme = chitFetch(fetch, buyerOptions(hal)).scheme;
    const unpaid = await fetch(`${expressUrl}/cheap`);
    const required = x402core.http.decodePaymentRequiredHeader(unpaid.headers.get('PAYMENT-REQUIRED')!);
    const client = new x402core.client.x402Client()
      .register(scheme.network, scheme)
      .setSpendControls({ allowedAssets: true });
    const header = x402core.http.encodePaymentSignatureHeader(await client.createPaymentPayload(required));
    const responses = await Promise.all(
      [1, 2].map(() => fetch(`${expressUrl}/cheap`, { headers: { 'PAYMENT-SIGNATURE': header } })),
    );
    const bodies = await Promise.all(responses.map((response) => response.text()));
    assert.deepEqual(responses.map((response) => response.status).sort(), [200, 402]);
    assert.deepEqual(bodies.sort(), ['/cheap', '{}']);
    assert.equal((await stack.hub.client.consumer(hal.address)).credited, CHEAP);
    add(hal.address, CHEAP);
    add(expressSeller.address, CHEAP);
  });

  it('a payment for a cheap route presented to a dearer one is refused; on its own route it is paid once', async () => {
    const carol = await stack.newConsumer({ deposit });
    consumers.push(carol);
    const carolPay = chitFetch(fetch, buyerOptions(carol));
    const unpaid = await fetch(`${expressUrl}/cheap`);
    assert.equal(unpaid.status, 402);
    const required = x402core.http.decodePaymentRequiredHeader(unpaid.headers.get('PAYMENT-REQUIRED')!);
    const client = new x402core.client.x402Client()
      .register(carolPay.scheme.network, carolPay.scheme)
      .setSpendControls({ allowedAssets: true });
    const payload = await client.createPaymentPayload(required);
    const header = x402core.http.encodePaymentSignatureHeader(payload);

    const dear = await fetch(`${expressUrl}/dear`, { headers: { 'PAYMENT-SIGNATURE': header } });
    assert.equal(dear.status, 402);
    const refusal = x402core.http.decodePaymentRequiredHeader(dear.headers.get('PAYMENT-REQUIRED')!);
    assert.equal(refusal.error, 'No matching payment requirements');
    assert.equal((await stack.hub.client.consumer(carol.address)).credited, 0n, 'nothing credited');

    // chitFetch sends the promise signed for /cheap again, with its invoice: paid once, nothing signed twice.
    const cheap = await carolPay(`${expressUrl}/cheap`);
    assert.equal(cheap.status, 200);
    assert.equal(await cheap.text(), '/cheap');
    assert.equal(await carol.ledger.total(), CHEAP);
    assert.equal((await stack.hub.client.consumer(carol.address)).credited, CHEAP);
    add(carol.address, CHEAP);
    add(expressSeller.address, CHEAP);
    // The same header once more, now on its own route: already paid, refused.
    const again = await fetch(`${expressUrl}/cheap`, { headers: { 'PAYMENT-SIGNATURE': header } });
    assert.equal(again.status, 402);
    assert.equal((await stack.hub.client.consumer(carol.address)).credited, CHEAP);
  });

  it('spending limit per request: a payment above the increment limit is refused, nothing signed', async () => {
    dave = await stack.newConsumer({ deposit });
    consumers.push(dave);
    const limited = chitFetch(fetch, buyerOptions(dave, { limits: { perRequest: CHEAP - 1n } }));
    await refused(limited(`${expressUrl}/cheap`), dave.ledger, 'perRequest');
  });

  it('spending limit per agreement: an agreement total above it is refused, nothing signed', async () => {
    const limited = chitFetch(fetch, buyerOptions(dave, { limits: { perAgreement: 2n * CHEAP } }));
    for (let i = 0; i < 2; i++) assert.equal((await limited(`${expressUrl}/cheap`)).status, 200);
    await refused(limited(`${expressUrl}/cheap`), dave.ledger, 'perAgreement');
    add(dave.address, 2n * CHEAP);
    add(expressSeller.address, 2n * CHEAP);
  });

  it('spending limit per hour: the trailing hour’s payments across agreements, nothing signed', async () => {
    const erin = await stack.newConsumer({ deposit });
    consumers.push(erin);
    const limited = chitFetch(fetch, buyerOptions(erin, { limits: { perHour: CHEAP + DEAR } }));
    assert.equal((await limited(`${expressUrl}/cheap`)).status, 200);
    assert.equal((await limited(`${expressUrl}/dear`)).status, 200);
    assert.equal(await limited.scheme.spentLastHour(), CHEAP + DEAR);
    await refused(limited(`${expressUrl}/cheap`), erin.ledger, 'perHour');
    add(erin.address, CHEAP + DEAR);
    add(expressSeller.address, CHEAP + DEAR);
    assert.equal((await stack.hub.client.consumer(erin.address)).credited, CHEAP + DEAR);
  });

  it('a buyer whose channel cannot pay is refused by the hub’s /x402/verify, before the handler runs', async () => {
    const frank = await stack.newConsumer({ deposit: CHEAP / 2n });
    const frankPay = chitFetch(fetch, buyerOptions(frank));
    const before = served.get('/cheap') ?? 0;
    const response = await frankPay(`${expressUrl}/cheap`);
    assert.equal(response.status, 402);
    const refusal = x402core.http.decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED')!);
    assert.equal(refusal.error, 'OVERSPEND');
    assert.equal(served.get('/cheap') ?? 0, before, 'the handler did not run');
    assert.equal((await stack.hub.client.consumer(frank.address)).credited, 0n);
    assert.deepEqual(
      await frankPay.scheme.usage(expressSeller.address, agreementIdOf(await cheapSalt(), frank.address)),
      {
        requests: 0n,
        bytes: 0n,
      },
    );
  });

  it('after an agreement’s first payment the seller verifies payments alone: the hub is asked once', async () => {
    const ivy = await stack.newConsumer({ deposit });
    consumers.push(ivy);
    const ivyPay = chitFetch(fetch, buyerOptions(ivy));
    const [servedBefore, verifiesBefore] = [served.get('/cheap') ?? 0, hubVerifies];
    for (let i = 0; i < 5; i++) assert.equal((await ivyPay(`${expressUrl}/cheap`)).status, 200);
    assert.equal(served.get('/cheap'), servedBefore + 5);
    assert.equal(hubVerifies, verifiesBefore + 1, 'only the first payment was verified at the hub');
    assert.equal((await stack.hub.client.consumer(ivy.address)).credited, 5n * CHEAP);
    add(ivy.address, 5n * CHEAP);
    add(expressSeller.address, 5n * CHEAP);

    // An outside party signs ivy's next payment with its own key: refused by the seller, unserved.
    const unpaid = await fetch(`${expressUrl}/cheap`);
    const required = x402core.http.decodePaymentRequiredHeader(unpaid.headers.get('PAYMENT-REQUIRED')!);
    const attacker = privateKeyToAccount(generatePrivateKey());
    const attackerLedger = new ConsumerLedger({
      hub: stack.chain.hub,
      chainId: stack.chain.deployment.chainId,
      account: attacker,
    });
    const scheme = chitFetch(fetch, { ...buyerOptions(ivy), ledger: attackerLedger }).scheme;
    const client = new x402core.client.x402Client()
      .register(scheme.network, scheme)
      .setSpendControls({ allowedAssets: true });
    const payload = await client.createPaymentPayload(required);
    // The promise the attacker would need: ivy's agreement at the next total, signed by the attacker.
    const signed = decodeMessage('consumerPromise', (payload.payload as { promise: unknown }).promise);
    const forged = {
      ...signed,
      consumer: ivy.address,
      agreement: {
        ...signed.agreement,
        id: agreementIdOf(required.accepts[0]!.extra.agreementSalt as Hex, ivy.address),
        total: 6n * CHEAP,
      },
      total: 6n * CHEAP,
    };
    forged.signature = await attacker.sign({ hash: consumerPromiseDigest(forged) });
    const header = x402core.http.encodePaymentSignatureHeader({
      ...payload,
      payload: { ...payload.payload, promise: encodeMessage(forged) },
    });
    const response = await fetch(`${expressUrl}/cheap`, { headers: { 'PAYMENT-SIGNATURE': header } });
    assert.equal(response.status, 402);
    const refusal = x402core.http.decodePaymentRequiredHeader(response.headers.get('PAYMENT-REQUIRED')!);
    assert.equal(refusal.error, 'INVALID_SIGNATURE');
    assert.equal(served.get('/cheap'), servedBefore + 5, 'the handler did not run');
    assert.equal((await stack.hub.client.consumer(ivy.address)).credited, 5n * CHEAP);
  });

  it('a buyer that runs dry after its first payments costs the seller one handler run, never a free response', async () => {
    const judy = await stack.newConsumer({ deposit: 2n * CHEAP + CHEAP / 2n });
    consumers.push(judy);
    const judyPay = chitFetch(fetch, buyerOptions(judy));
    const servedBefore = served.get('/cheap') ?? 0;
    for (let i = 0; i < 2; i++) assert.equal((await judyPay(`${expressUrl}/cheap`)).status, 200);
    add(judy.address, 2n * CHEAP);
    add(expressSeller.address, 2n * CHEAP);
    // The third payment is verified by the seller alone; the hub refuses its exchange after the handler
    // ran, and the response is withheld.
    const third = await judyPay(`${expressUrl}/cheap`);
    assert.equal(third.status, 402);
    assert.notEqual(await third.text(), '/cheap', 'no content');
    assert.equal(served.get('/cheap'), servedBefore + 3);
    // The next one is verified at the hub again, and refused before the handler runs.
    const verifiesBefore = hubVerifies;
    const fourth = await judyPay(`${expressUrl}/cheap`);
    assert.equal(fourth.status, 402);
    assert.ok(hubVerifies > verifiesBefore, 'verified at the hub');
    assert.equal(served.get('/cheap'), servedBefore + 3, 'the handler did not run again');
    assert.equal((await stack.hub.client.consumer(judy.address)).credited, 2n * CHEAP);
  });

  it('a seller asking more than the buyer’s maximum prices is not paid', async () => {
    const total = await buyer.ledger.total();
    for (const route of ['/greedy', '/greedy-mib']) {
      await assert.rejects(pay(`${expressUrl}${route}`), (error: unknown) => {
        assert.ok(error instanceof RequirementsRejectedError, `expected a RequirementsRejectedError, got ${error}`);
        assert.equal(error.reason, 'PRICE_TOO_HIGH');
        return true;
      });
    }
    assert.equal(await buyer.ledger.total(), total, 'nothing signed');
  });

  it('the meters agree: buyer and seller counted every paid request and every body byte', async () => {
    const honoServed = honoRounds.flatMap((size) => Array<number>(5).fill(size));
    for (const [seller, scheme, url, sizes] of [
      [expressSeller, sellerSchemes.express, expressUrl, expressSizes],
      [honoSeller, sellerSchemes.hono, honoUrl, honoServed],
    ] as const) {
      const unpaid = await fetch(`${url}/data/1`);
      const [accept] = x402core.http.decodePaymentRequiredHeader(unpaid.headers.get('PAYMENT-REQUIRED')!).accepts;
      const agreementId = agreementIdOf(accept!.extra.agreementSalt as Hex, buyer.address);
      const expected = { requests: BigInt(sizes.length), bytes: sum(sizes.map(BigInt)) };
      assert.deepEqual(await pay.scheme.usage(seller.address, agreementId), expected);
      assert.deepEqual(await scheme.usage(agreementId), expected);
    }
  });

  it('the hub collects the buyers’ promises and the sellers settle: every balance to the wei', async () => {
    const consumersPaid = sum(consumers.map(owedBy));
    assert.equal(consumersPaid, owedBy(expressSeller) + owedBy(honoSeller));
    await until('the buyer’s promises collected on-chain', async () => {
      return (await stack.read.consumerChannel(buyer.address)).settled === owedBy(buyer);
    });
    assert.deepEqual(await stack.read.consumerChannel(buyer.address), {
      balance: deposit - owedBy(buyer),
      settled: owedBy(buyer),
      exit: null,
    });
    for (const consumer of consumers) {
      await until(`${consumer.address}'s promises collected`, async () => {
        return (await stack.read.consumerChannel(consumer.address)).settled === owedBy(consumer);
      });
    }
    assert.equal((await stack.read.hubFigures()).freeFunds, consumersPaid);

    // The Express seller settles on-chain itself; the Hono seller through the hub's relayer.
    const latest = await expressSeller.ledger.latest();
    await stack.chain.send(
      settleProvider(expressSeller.wallet, { promise: latest.hubPromise!, preimage: latest.preimage! }),
    );
    const fee = (seller: Provider) => feeOf(owedBy(seller), stack.hubFee);
    assert.equal(await stack.read.providerSettled(expressSeller.address), owedBy(expressSeller));
    assert.equal(await stack.read.tokenBalance(expressSeller.beneficiary), owedBy(expressSeller) - fee(expressSeller));

    const quote = await honoSeller.hub.settlementQuote(honoSeller.address);
    assert.equal(quote.amount, owedBy(honoSeller));
    assert.equal(quote.hubFee, fee(honoSeller));
    const job = await honoSeller.ledger.settle(quote.relayerFee);
    const done = await until('the relayed settlement', async () => {
      const status = await honoSeller.hub.settlement(job.id);
      return status.status === 'confirmed' || status.status === 'failed' ? status : undefined;
    });
    assert.equal(done.status, 'confirmed', done.error?.message ?? '');
    assert.equal(
      await stack.read.tokenBalance(honoSeller.beneficiary),
      owedBy(honoSeller) - fee(honoSeller) - quote.relayerFee,
    );

    const figures = await stack.read.hubFigures();
    assert.equal(
      figures.freeFunds,
      consumersPaid - (owedBy(expressSeller) - fee(expressSeller)) - (owedBy(honoSeller) - fee(honoSeller)),
    );
    assert.equal(figures.stake, stakeAtStart);
    assert.equal(figures.punished, false);
    for (const seller of [expressSeller, honoSeller]) {
      await until(`the hub to see ${seller.address} settled`, async () => {
        const account = await stack.hub.client.provider(seller.address);
        return account.settled === owedBy(seller) && account.unsettled === 0n;
      });
    }
    const books = await stack.hub.client.consumer(buyer.address);
    assert.equal(books.balance, deposit - owedBy(buyer));
    assert.equal(books.settled, owedBy(buyer));
    assert.equal(books.available, deposit - owedBy(buyer));
  });
});
