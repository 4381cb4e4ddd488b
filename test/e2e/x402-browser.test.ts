import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Gateway } from '@chit/x402';
import { build } from 'esbuild';
import { type Browser, chromium } from 'playwright-core';
import type { Hex } from 'viem';
import { parseEther } from 'viem';
import { generatePrivateKey } from 'viem/accounts';
import { CHROMIUM, CHROMIUM_ARGS } from '../../hub/test/support/chromium';
import { type Provider, type Stack, startStack } from './support/stack';

const ROOT = path.join(__dirname, '..', '..');
const PRICE = 10n ** 15n;

// docs/buyers.md's browser path: a web page bundles @chit/x402/buyer (esbuild, for browsers) and
// pays a gateway on another origin from a real Chromium, the consumer's key in the page.
describe('x402 from a browser: a page pays the gateway with @chit/x402/buyer', function () {
  this.timeout(180_000);
  let stack: Stack;
  let seller: Provider;
  let gateway: Gateway;
  let api: Server;
  let page: Server;
  let origin: string;
  let browser: Browser | undefined;
  const buyerKey = generatePrivateKey();

  before(async () => {
    stack = await startStack();
    [, seller] = await Promise.all([
      stack.newConsumer({ key: buyerKey, deposit: parseEther('1') }),
      stack.newProvider(),
    ]);
    api = createServer((_request, response) => response.end('{"sky":"clear"}'));
    await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', () => resolve()));
    // The buyer's bundle, as a web app would build it.
    const bundle = await build({
      stdin: {
        contents:
          "export { chitFetch } from '@chit/x402/buyer'; export { ConsumerLedger, MemoryStore } from '@chit/sdk'; export { privateKeyToAccount } from 'viem/accounts';",
        resolveDir: ROOT,
      },
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
    });
    const script = bundle.outputFiles[0]!.text;
    page = createServer((request, response) => {
      if (request.url === '/chit.js') response.writeHead(200, { 'content-type': 'text/javascript' }).end(script);
      else response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>a paying page</title>');
    });
    await new Promise<void>((resolve) => page.listen(0, '127.0.0.1', () => resolve()));
    origin = `http://127.0.0.1:${(page.address() as AddressInfo).port}`;
    const { startGateway } = await import('@chit/x402');
    await seller.ledger.open();
    gateway = await startGateway({
      upstream: `http://127.0.0.1:${(api.address() as AddressInfo).port}`,
      hubUrl: stack.hub.url,
      ledger: seller.ledger,
      secret: `0x${'77'.repeat(32)}` as Hex,
      pricePerRequest: PRICE,
      port: 0,
      corsOrigins: [origin],
    });
  });

  after(async () => {
    await browser?.close();
    await gateway?.close();
    api?.close();
    page?.close();
    await stack?.stop();
  });

  it('answers the preflight without charging it, and lets the page read the payment headers', async () => {
    const preflight = await fetch(`${gateway.url}/weather`, {
      method: 'OPTIONS',
      headers: {
        origin,
        'access-control-request-method': 'GET',
        'access-control-request-headers': 'payment-signature',
      },
    });
    assert.equal(preflight.status, 204);
    assert.equal(preflight.headers.get('access-control-allow-origin'), origin);
    assert.equal(preflight.headers.get('access-control-allow-headers'), 'payment-signature');
    const unpaid = await fetch(`${gateway.url}/weather`, { headers: { origin } });
    assert.equal(unpaid.status, 402);
    assert.equal(unpaid.headers.get('access-control-expose-headers'), 'PAYMENT-REQUIRED, PAYMENT-RESPONSE');
    const stranger = await fetch(`${gateway.url}/weather`, { headers: { origin: 'http://elsewhere.example' } });
    assert.equal(stranger.headers.get('access-control-allow-origin'), null);
  });

  it('pays from the page in Chromium: 200, the body, and the hub credited the price', async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
    const tab = await browser.newPage();
    const errors: string[] = [];
    tab.on('console', (message) => {
      // Chromium logs the 402 that asks for the payment as a failed load: that one is expected.
      if (message.type() === 'error' && !/status of 402/.test(message.text())) errors.push(message.text());
    });
    tab.on('pageerror', (error) => errors.push(error.message));
    await tab.goto(origin);
    const result = await tab.evaluate(
      async ({ module, key, hub, chainId, token, url, price }) => {
        const chit = await import(module);
        const ledger = new chit.ConsumerLedger({ hub, chainId, account: chit.privateKeyToAccount(key) });
        const pay = chit.chitFetch(fetch.bind(window), {
          ledger,
          token,
          maxPricePerRequest: BigInt(price),
          store: new chit.MemoryStore(),
        });
        const response = await pay(url);
        return { status: response.status, body: await response.text(), paid: String(await ledger.total()) };
      },
      {
        module: `${origin}/chit.js`,
        key: buyerKey,
        hub: stack.chain.hub,
        chainId: stack.chain.deployment.chainId,
        token: stack.chain.token,
        url: `${gateway.url}/weather`,
        price: PRICE.toString(),
      },
    );
    assert.deepEqual(result, { status: 200, body: '{"sky":"clear"}', paid: PRICE.toString() });
    assert.equal((await stack.hub.client.provider(seller.address)).earned, PRICE);
    assert.deepEqual(errors, []);
  });
});
