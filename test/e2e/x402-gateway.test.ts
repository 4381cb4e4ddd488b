import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { MemoryStore, settleProvider } from '@chit/sdk';
import { agreementIdOf, type ChitFetch, chitFetch, type Gateway, type GatewayEvent, startGateway } from '@chit/x402';
import { decodePaymentResponseHeader, encodePaymentResponseHeader } from '@x402/core/http';
import type { Hex } from 'viem';
import { parseEther } from 'viem';
import { feeOf, MIB } from './support/figures';
import { type Consumer, type Provider, type Stack, startStack, until } from './support/stack';

// `chit provide http`'s gateway (x402/src/gateway.ts) in front of an API that knows nothing of
// payments: a buyer on @x402/fetch (chitFetch) pays every request through the real hub; the API sees
// only paid requests, without the payment headers; every figure is checked to the wei, through
// settlement. CHIT_GATEWAY_REQUESTS sets the length of the paid run: 300 in npm test, 1,000 for the
// issue's full run (CHIT_GATEWAY_REQUESTS=1000 npm run test:e2e).

const PRICE = 1_000_000_000_000_003n; // per request
const PER_MIB = 5_555_555_555_555_555n; // per MiB of response body
const WEATHER = 2_000_000_000_000_011n; // GET /weather's own price
const REQUESTS = Number(process.env.CHIT_GATEWAY_REQUESTS ?? 300);

/** What an agreement owes after `requests` paid requests, `bytes` being the bodies served before the last one. */
const owedFor = (requests: number, bytes: bigint, price: bigint, perMiB: bigint) =>
  BigInt(requests) * price + (bytes * perMiB + MIB - 1n) / MIB;

/** /events sends its first event, then its last once this is opened. */
let openEvents: () => void = () => {};
const eventsOpened = new Promise<void>((resolve) => {
  openEvents = resolve;
});
const FIRST_EVENT = 'data: first\n\n';
const LAST_EVENT = 'data: last\n\n';

/** A toy API: /bytes/:n answers n bytes, /weather JSON, /echo the body, /fail a 500, /broken hangs up mid-body, /events a stream. */
function startUpstream(seen: IncomingMessage[]): Promise<{ server: Server; url: string }> {
  const server = createServer((request, response) => {
    seen.push(request);
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const url = new URL(request.url ?? '/', 'http://upstream');
      const bytes = /^\/bytes\/(\d+)$/.exec(url.pathname);
      if (bytes) {
        // With its length: up to 1 MiB the gateway reads it whole before it settles, beyond it streams.
        response.writeHead(200, {
          'content-type': 'application/octet-stream',
          'content-length': bytes[1],
          'x-upstream': 'yes',
        });
        response.end(Buffer.alloc(Number(bytes[1]), 0x61));
      } else if (url.pathname === '/weather') {
        response.writeHead(200, { 'content-type': 'application/json' });
        response.end(JSON.stringify({ city: url.searchParams.get('city'), sky: 'clear' }));
      } else if (url.pathname === '/echo' && request.method === 'POST') {
        response.writeHead(201, { 'content-type': request.headers['content-type'] ?? 'text/plain' });
        response.end(Buffer.concat(chunks));
      } else if (url.pathname === '/events') {
        response.writeHead(200, { 'content-type': 'text/event-stream' });
        response.write(FIRST_EVENT);
        void eventsOpened.then(() => response.end(LAST_EVENT));
      } else if (url.pathname === '/broken') {
        // States 1,000 bytes, sends 10 and hangs up.
        response.writeHead(200, { 'content-type': 'text/plain', 'content-length': '1000' });
        response.write('0123456789', () => response.socket?.destroy());
      } else if (url.pathname === '/fail') {
        response.writeHead(500, { 'content-type': 'text/plain' });
        response.end('upstream broke');
      } else {
        response.writeHead(404);
        response.end();
      }
    });
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({ server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }),
    ),
  );
}

describe('x402 gateway: sell an HTTP API without touching it', function () {
  this.timeout(600_000);

  let stack: Stack;
  let buyer: Consumer;
  let seller: Provider;
  let upstream: { server: Server; url: string };
  let gateway: Gateway;
  let pay: ChitFetch;
  const seen: IncomingMessage[] = [];
  const events: GatewayEvent[] = [];
  /** The agreement of the default price: requests and the bodies served before each. */
  let requests = 0;
  let bytes = 0n;
  let lastBody = 0n;
  let weatherOwed = 0n;
  /** What the buyer whose response was lost owes. */
  let otherOwed = 0n;
  /** What the buyers of the body-limit and streaming tests owe. */
  let carolOwed = 0n;
  let doraOwed = 0n;
  let erinOwed = 0n;
  let fayOwed = 0n;
  const deposit = parseEther('100');
  const sizeOf = (i: number) => ((i * 7_919 + 101) % 40_000) + (i % 100 === 99 ? 2_100_000 : 0);
  const defaultOwed = () => owedFor(requests, bytes - lastBody, PRICE, PER_MIB);
  /** A buyer at the default prices whose paid bodies come as they arrive. */
  const streamingBuyer = (consumer: Consumer) =>
    chitFetch(
      fetch,
      { ledger: consumer.ledger, token: stack.chain.token, maxPricePerRequest: PRICE, maxPricePerMiB: PER_MIB },
      { stream: true },
    );

  before(async () => {
    stack = await startStack({ hubEnv: { SETTLEMENT_SCAN_INTERVAL_MS: '500' } });
    [buyer, seller] = await Promise.all([stack.newConsumer({ deposit }), stack.newProvider()]);
    upstream = await startUpstream(seen);
    await seller.ledger.open();
    gateway = await startGateway({
      upstream: `${upstream.url}/`,
      hubUrl: stack.hub.url,
      ledger: seller.ledger,
      secret: `0x${'5e'.repeat(32)}` as Hex,
      pricePerRequest: PRICE,
      pricePerMiB: PER_MIB,
      routes: { 'GET /weather': { pricePerRequest: WEATHER } },
      port: 0,
      onEvent: (event) => events.push(event),
    });
    pay = chitFetch(fetch, {
      ledger: buyer.ledger,
      token: stack.chain.token,
      maxPricePerRequest: WEATHER,
      maxPricePerMiB: PER_MIB,
      store: new MemoryStore(),
    });
  });

  after(async () => {
    await gateway?.close();
    upstream?.server.close();
    await stack?.stop();
  });

  it('answers an unpaid request 402 with the route price, and the API never sees it', async () => {
    const answer = await fetch(`${gateway.url}/bytes/10`);
    assert.equal(answer.status, 402);
    const required = JSON.parse(Buffer.from(answer.headers.get('PAYMENT-REQUIRED')!, 'base64').toString());
    assert.equal(required.accepts[0].scheme, 'chit');
    assert.equal(required.accepts[0].amount, PRICE.toString());
    assert.equal(required.accepts[0].extra.pricePerMiB, PER_MIB.toString());
    assert.equal(required.accepts[0].payTo, seller.address);
    const weather = await fetch(`${gateway.url}/weather`);
    const weatherRequired = JSON.parse(Buffer.from(weather.headers.get('PAYMENT-REQUIRED')!, 'base64').toString());
    assert.equal(weatherRequired.accepts[0].amount, WEATHER.toString());
    assert.equal(seen.length, 0);
  });

  it(`forwards ${REQUESTS} paid requests of uneven sizes, each body paid with the next request`, async () => {
    const started = performance.now();
    for (let i = 0; i < REQUESTS; i++) {
      const size = sizeOf(i);
      const response = await pay(`${gateway.url}/bytes/${size}`);
      assert.equal(response.status, 200, `request ${i}`);
      assert.equal(response.headers.get('x-upstream'), 'yes');
      assert.equal((await response.arrayBuffer()).byteLength, size);
      requests += 1;
      bytes += BigInt(size);
      lastBody = BigInt(size);
    }
    const seconds = (performance.now() - started) / 1000;
    console.log(
      `      ${REQUESTS} paid requests through the gateway in ${seconds.toFixed(1)} s (${(REQUESTS / seconds).toFixed(0)}/s, one at a time)`,
    );
    assert.equal(seen.length, REQUESTS, 'the API saw each paid request once');
    for (const request of seen) {
      assert.equal(request.headers['payment-signature'], undefined, 'no payment header reaches the API');
      assert.equal(request.headers['accept-encoding'], 'identity');
    }
    const { hubPromise } = await seller.ledger.latest();
    assert.equal(hubPromise?.total, defaultOwed());
    assert.equal(await buyer.ledger.total(), defaultOwed());
  });

  it('forwards a POST body and the query string, and a route of its own price is its own agreement', async () => {
    const echo = await pay(`${gateway.url}/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ hello: 'chit' }),
    });
    assert.equal(echo.status, 201);
    assert.deepEqual(await echo.json(), { hello: 'chit' });
    requests += 1;
    bytes += BigInt('{"hello":"chit"}'.length);
    lastBody = BigInt('{"hello":"chit"}'.length);
    const weather = await pay(`${gateway.url}/weather?city=Lisbon`);
    assert.equal(weather.status, 200);
    assert.deepEqual(await weather.json(), { city: 'Lisbon', sky: 'clear' });
    weatherOwed = owedFor(1, 0n, WEATHER, PER_MIB);
    assert.equal(seen.at(-1)?.url, '/weather?city=Lisbon');
    assert.equal(await buyer.ledger.total(), defaultOwed() + weatherOwed);
  });

  it('passes an API error through without charging it, and answers 502 when the API is gone', async () => {
    const before = await buyer.ledger.total();
    const credited = (await stack.hub.client.provider(seller.address)).earned;
    const failed = await pay(`${gateway.url}/fail`);
    assert.equal(failed.status, 500);
    assert.equal(await failed.text(), 'upstream broke');
    // An answer the API breaks off in the middle: not paid, and not passed on half.
    const broken = await pay(`${gateway.url}/broken`);
    assert.equal(broken.status, 502);
    assert.equal((await broken.json()).code, 'UPSTREAM_BROKE_OFF');
    // The buyer signed for it, but the seller did not exchange it: the hub credited nothing.
    assert.equal((await stack.hub.client.provider(seller.address)).earned, credited);
    const signed = (await buyer.ledger.total()) - before;
    assert.ok(signed <= PRICE + PER_MIB, `one request's worth at most was signed, ${signed}`);

    const down = await startGateway({
      upstream: 'http://127.0.0.1:9/',
      hubUrl: stack.hub.url,
      ledger: seller.ledger,
      secret: `0x${'6f'.repeat(32)}` as Hex,
      pricePerRequest: PRICE,
      port: 0,
    });
    try {
      const answer = await pay(`${down.url}/bytes/5`);
      assert.equal(answer.status, 502);
      assert.equal((await answer.json()).code, 'UPSTREAM_UNREACHABLE');
    } finally {
      await down.close();
    }
    assert.equal((await stack.hub.client.provider(seller.address)).earned, credited, 'nothing credited');
    assert.ok(events.some((event) => event.type === 'forwarded' && event.status === 500));
  });

  it('a GET on a kept-alive connection the API reset as it was reused is sent again on a new one and paid once', async () => {
    // An API that answers the first request of each connection, kept alive, and resets the connection
    // when a second arrives on it, as a server closing an idle connection does under a request sent on it.
    const connections: number[] = [];
    const api = createNetServer((socket) => {
      let heads = 0;
      let received = '';
      connections.push(0);
      const at = connections.length - 1;
      socket.on('data', (chunk: Buffer) => {
        received += chunk.toString('latin1');
        while (received.includes('\r\n\r\n')) {
          received = received.slice(received.indexOf('\r\n\r\n') + 4);
          heads++;
          connections[at] = heads;
          if (heads > 1) return socket.resetAndDestroy();
          socket.write(
            'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: keep-alive\r\n\r\nok',
          );
        }
      });
      socket.on('error', () => {});
    });
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
    const fay = await stack.newConsumer({ deposit: parseEther('1') });
    const payFay = chitFetch(fetch, {
      ledger: fay.ledger,
      token: stack.chain.token,
      maxPricePerRequest: PRICE,
      maxPricePerMiB: PER_MIB,
      store: new MemoryStore(),
    });
    const resetting = await startGateway({
      upstream: `http://127.0.0.1:${(api.address() as AddressInfo).port}/`,
      hubUrl: stack.hub.url,
      ledger: seller.ledger,
      secret: `0x${'8b'.repeat(32)}` as Hex,
      pricePerRequest: PRICE,
      pricePerMiB: PER_MIB,
      port: 0,
    });
    try {
      for (let i = 0; i < 4; i++) {
        const answer = await payFay(`${resetting.url}/ok`);
        assert.equal(answer.status, 200, await answer.clone().text());
        assert.equal(await answer.text(), 'ok');
      }
    } finally {
      await resetting.close();
      api.close();
    }
    // The second request went out on the first one's kept-alive connection, was reset, and was sent
    // again on a connection of its own; the third opened a new kept-alive one, which the fourth reused:
    // reset, sent again. Four connections, two of them reset under their second request.
    assert.deepEqual([...connections].sort(), [1, 1, 2, 2]);
    fayOwed = owedFor(4, 6n, PRICE, PER_MIB);
    assert.equal((await stack.hub.client.consumer(fay.address)).credited, fayOwed);
  });

  it('a paid request whose body is over the gateway’s limit is answered 413: the API never sees it, nothing credited', async () => {
    const carol = await stack.newConsumer({ deposit: parseEther('1') });
    const small = await startGateway({
      upstream: `${upstream.url}/`,
      hubUrl: stack.hub.url,
      ledger: seller.ledger,
      secret: `0x${'7a'.repeat(32)}` as Hex,
      pricePerRequest: PRICE,
      port: 0,
      maxBodyBytes: 1024,
    });
    const seenBefore = seen.length;
    const earned = (await stack.hub.client.provider(seller.address)).earned;
    try {
      const payCarol = chitFetch(fetch, {
        ledger: carol.ledger,
        token: stack.chain.token,
        maxPricePerRequest: PRICE,
        store: new MemoryStore(),
      });
      const answer = await payCarol(`${small.url}/echo`, { method: 'POST', body: 'x'.repeat(2048) });
      assert.equal(answer.status, 413);
      assert.equal((await answer.json()).code, 'BODY_TOO_LARGE');
      assert.equal(answer.headers.get('payment-response'), null);
      // At the limit it is forwarded, and paid.
      const fits = await payCarol(`${small.url}/echo`, { method: 'POST', body: 'y'.repeat(1024) });
      assert.equal(fits.status, 201);
      assert.equal((await fits.text()).length, 1024);
    } finally {
      await small.close();
    }
    assert.equal(seen.length, seenBefore + 1, 'the API saw the request within the limit only');
    assert.equal((await stack.hub.client.consumer(carol.address)).credited, PRICE);
    assert.equal((await stack.hub.client.provider(seller.address)).earned, earned + PRICE);
    carolOwed = PRICE;
  });

  it('streams a paid answer as the API sends it, and meters its bytes into the next request', async () => {
    const dora = await stack.newConsumer({ deposit: parseEther('1') });
    const payDora = streamingBuyer(dora);
    const answer = await payDora(`${gateway.url}/events`);
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('content-type'), 'text/event-stream');
    const paid = answer.headers.get('payment-response');
    assert.ok(paid, 'paid before the body');
    // Byte for byte what @x402/core's own encoder writes (the gateway encodes it with Buffer).
    assert.equal(encodePaymentResponseHeader(decodePaymentResponseHeader(paid)), paid);
    const reader = answer.body!.getReader();
    const text = new TextDecoder();
    // The API holds its last event until the first reached the buyer: a gateway (or a chitFetch) that
    // read the body whole before answering would never hand over the first one.
    let received = '';
    const firstArrived = (async () => {
      while (received.length < FIRST_EVENT.length) {
        const { done, value } = await reader.read();
        if (done) break;
        received += text.decode(value, { stream: true });
      }
    })();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      firstArrived,
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error('the first event did not arrive before the API finished')), 60_000);
      }),
    ]).finally(() => clearTimeout(timer));
    assert.equal(received, FIRST_EVENT);
    openEvents();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      received += text.decode(value, { stream: true });
    }
    assert.equal(received, FIRST_EVENT + LAST_EVENT);
    // The seller metered the streamed bytes once they were relayed. Lose that count, as a gateway
    // killed right after relaying the body would: the buyer's higher count is taken at the next payment.
    const required = JSON.parse(
      Buffer.from((await fetch(`${gateway.url}/events`)).headers.get('PAYMENT-REQUIRED')!, 'base64').toString(),
    );
    const agreementId = agreementIdOf(required.accepts[0].extra.agreementSalt, dora.address);
    const meterKey = `chit/x402/seller/eip155:${stack.chain.deployment.chainId}/${stack.chain.hub.toLowerCase()}/${seller.address.toLowerCase()}/${agreementId}`;
    const meter = (await seller.ledger.store.get(meterKey)) as { requests: string; bytes: string };
    assert.deepEqual([meter.requests, meter.bytes], ['1', String(received.length)]);
    await seller.ledger.store.put(meterKey, { ...meter, bytes: '0' });
    // The next request pays the streamed bytes, as the buyer counted them.
    const next = await payDora(`${gateway.url}/bytes/10`);
    assert.equal(next.status, 200);
    assert.equal((await next.arrayBuffer()).byteLength, 10);
    doraOwed = owedFor(2, BigInt(received.length), PRICE, PER_MIB);
    assert.equal((await stack.hub.client.consumer(dora.address)).credited, doraOwed);
    assert.equal(await dora.ledger.total(), doraOwed, 'nothing signed that was not credited');
    assert.ok(
      events.some((event) => event.type === 'forwarded' && event.path === '/events' && event.bytes === received.length),
    );
  });

  it('a buyer that reads part of a download and leaves pays for the bytes it was sent, with its next request', async () => {
    const erin = await stack.newConsumer({ deposit: parseEther('1') });
    const payErin = streamingBuyer(erin);
    const cutBefore = events.filter((event) => event.type === 'cut-off').length;
    // Larger than what the sockets between them can hold, so that it is still on its way when the buyer leaves.
    const size = 64 * 1024 * 1024;
    const download = await payErin(`${gateway.url}/bytes/${size}`);
    assert.equal(download.status, 200);
    assert.equal(download.headers.get('content-length'), String(size), 'streamed with its stated length');
    const reader = download.body!.getReader();
    const first = await reader.read();
    assert.ok(!first.done && first.value.byteLength > 0);
    await reader.cancel('leaving before the end');
    await until('the gateway to see the buyer leave', async () => {
      return events.filter((event) => event.type === 'cut-off').length > cutBefore;
    });
    const cut = events.filter((event) => event.type === 'cut-off').at(-1) as { bytes: number; path: string };
    assert.equal(cut.path, `/bytes/${size}`);
    console.log(`      relayed ${cut.bytes} bytes before the buyer left`);
    assert.ok(cut.bytes > 0 && cut.bytes < size, `relayed ${cut.bytes} of ${size} bytes`);
    // The next request is refused once with the seller's meter, then paid with those bytes in it.
    const next = await payErin(`${gateway.url}/bytes/10`);
    assert.equal(next.status, 200);
    assert.equal((await next.arrayBuffer()).byteLength, 10);
    erinOwed = owedFor(2, BigInt(cut.bytes), PRICE, PER_MIB);
    assert.equal((await stack.hub.client.consumer(erin.address)).credited, erinOwed);
  });

  it('a response lost after the seller was paid: the buyer catches up with the seller’s meter and pays on', async () => {
    const other = await stack.newConsumer({ deposit: parseEther('1') });
    let drop = false;
    // The paid request reaches the gateway and is served and credited; its answer never comes back.
    const dropping: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (drop && new Request(input, init).headers.get('PAYMENT-SIGNATURE')) {
        drop = false;
        await response.arrayBuffer();
        throw new TypeError('fetch failed', { cause: new Error('read ECONNRESET') });
      }
      return response;
    };
    const otherPay = chitFetch(dropping, {
      ledger: other.ledger,
      token: stack.chain.token,
      maxPricePerRequest: PRICE,
      maxPricePerMiB: PER_MIB,
      store: new MemoryStore(),
    });
    assert.equal((await otherPay(`${gateway.url}/bytes/1000`)).status, 200);
    drop = true;
    await assert.rejects(otherPay(`${gateway.url}/bytes/3000`), /fetch failed/);
    const third = await otherPay(`${gateway.url}/bytes/10`);
    assert.equal(third.status, 200);
    assert.equal((await third.arrayBuffer()).byteLength, 10);
    // Three requests paid; the third paid the 1,000 and the 3,000 bytes before it (the 3,000 never received).
    otherOwed = owedFor(3, 4_000n, PRICE, PER_MIB);
    assert.equal((await stack.hub.client.consumer(other.address)).credited, otherOwed);
    assert.equal(await other.ledger.total(), otherOwed, 'nothing signed that was not credited');
    const salt = JSON.parse(
      Buffer.from((await fetch(`${gateway.url}/bytes/1`)).headers.get('PAYMENT-REQUIRED')!, 'base64').toString(),
    ).accepts[0].extra.agreementSalt as Hex;
    assert.deepEqual(await otherPay.scheme.usage(seller.address, agreementIdOf(salt, other.address)), {
      requests: 3n,
      bytes: 4_010n,
    });
    await until('the other buyer’s promises collected', async () => {
      return (await stack.read.consumerChannel(other.address)).settled === otherOwed;
    });
  });

  it('every balance to the wei after the hub collects and the seller settles', async () => {
    const buyerOwed = defaultOwed() + weatherOwed;
    const earned = buyerOwed + otherOwed + carolOwed + doraOwed + erinOwed + fayOwed;
    assert.equal((await stack.hub.client.provider(seller.address)).earned, earned);
    // What the buyer signed for the refused /fail and 502 requests stays promised but never credited.
    const books = await stack.hub.client.consumer(buyer.address);
    assert.equal(books.credited, buyerOwed);
    await until('the buyer’s promises collected', async () => {
      return (await stack.read.consumerChannel(buyer.address)).settled === buyerOwed;
    });
    const latest = await seller.ledger.latest();
    assert.equal(latest.hubPromise?.total, earned);
    await stack.chain.send(settleProvider(seller.wallet, { promise: latest.hubPromise!, preimage: latest.preimage! }));
    const fee = feeOf(earned, stack.hubFee);
    assert.equal(await stack.read.tokenBalance(seller.beneficiary), earned - fee);
    assert.deepEqual(await stack.read.consumerChannel(buyer.address), {
      balance: deposit - buyerOwed,
      settled: buyerOwed,
      exit: null,
    });
    assert.equal((await stack.read.hubFigures()).freeFunds, earned - (earned - fee));
  });
});
