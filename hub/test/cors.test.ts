import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { type RunningHub, startHub } from '../src/app';
import { CHROMIUM, CHROMIUM_ARGS } from './support/chromium';
import { prepareExchange } from './support/exchange';
import { startTestStack, type TestStack } from './support/hub';

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

/** A web server for the pages, on a port (an origin) of its own. */
async function pageServer(): Promise<{ origin: string; server: Server }> {
  const server = createServer((_request, response) => {
    response.writeHead(200, { 'content-type': 'text/html' }).end('<!doctype html><title>a wallet</title>');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { origin: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server };
}

describe('CORS', () => {
  let stack: TestStack;
  let allowed: Awaited<ReturnType<typeof pageServer>>;
  let other: Awaited<ReturnType<typeof pageServer>>;

  before(async function () {
    this.timeout(120_000);
    allowed = await pageServer();
    other = await pageServer();
    stack = await startTestStack('cors', { CORS_ORIGINS: allowed.origin, RATE_LIMIT_MAX: '40' });
  });
  after(async () => {
    await stack?.stop();
    for (const page of [allowed, other]) page?.server.close();
  });

  const preflight = (url: string, origin: string) =>
    fetch(`${url}/v1/exchange`, {
      method: 'OPTIONS',
      headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });

  describe('over HTTP', () => {
    it('answers a preflight from an allowed origin with the methods and headers it allows', async () => {
      const response = await preflight(stack.hub.url, allowed.origin);
      assert.equal(response.status, 204);
      assert.equal(response.headers.get('access-control-allow-origin'), allowed.origin);
      assert.equal(response.headers.get('access-control-allow-methods'), 'GET, POST');
      assert.equal(response.headers.get('access-control-allow-headers'), 'content-type');
      assert.equal(response.headers.get('access-control-max-age'), '600');
      assert.equal(response.headers.get('access-control-allow-credentials'), null);
      assert.match(response.headers.get('vary') ?? '', /\bOrigin\b/);
    });

    it('allows an origin not listed nothing', async () => {
      const response = await preflight(stack.hub.url, other.origin);
      assert.equal(response.headers.get('access-control-allow-origin'), null);
      const info = await fetch(`${stack.hub.url}/v1/info`, { headers: { origin: other.origin } });
      assert.equal(info.status, 200);
      assert.equal(info.headers.get('access-control-allow-origin'), null);
    });

    it('puts the headers on error answers too', async () => {
      const headers = { origin: allowed.origin, 'content-type': 'application/json' };
      const answers = [
        await fetch(`${stack.hub.url}/v1/exchange`, { method: 'POST', headers, body: '{"promise":{}}' }),
        await fetch(`${stack.hub.url}/v1/exchange`, { method: 'POST', headers, body: '{' }),
        await fetch(`${stack.hub.url}/v1/exchange`, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'text/plain' },
          body: 'x',
        }),
        await fetch(`${stack.hub.url}/v1/nothing`, { headers }),
      ];
      assert.deepEqual(
        answers.map((answer) => [answer.status, answer.headers.get('access-control-allow-origin')]),
        [
          [400, allowed.origin],
          [400, allowed.origin],
          [415, allowed.origin],
          [404, allowed.origin],
        ],
      );
      const codes = await Promise.all(answers.map(async (answer) => ((await answer.json()) as Json).code));
      assert.deepEqual(codes, ['MALFORMED', 'MALFORMED', 'UNSUPPORTED_MEDIA_TYPE', 'NOT_FOUND']);
    });

    it('with CORS_ORIGINS=none answers no preflight', async () => {
      let hub: RunningHub | undefined;
      try {
        hub = await startHub({ ...stack.hub.context.config, HUB_ROLE: 'api', CORS_ORIGINS: [] });
        const response = await preflight(hub.url, allowed.origin);
        assert.equal(response.status, 404);
        assert.equal(((await response.json()) as Json).code, 'NOT_FOUND');
        assert.equal(response.headers.get('access-control-allow-origin'), null);
      } finally {
        await hub?.close();
      }
    });
  });

  describe('from a page in Chromium', () => {
    let userDataDir: string;
    let browser: BrowserContext;

    before(async function () {
      this.timeout(120_000);
      if (!existsSync(CHROMIUM)) {
        // CI installs it (.ci/run): there the test must run.
        if (process.env.CI) throw new Error(`${CHROMIUM} is missing: apt-get install chromium`);
        this.skip();
      }
      userDataDir = mkdtempSync(path.join(tmpdir(), 'chit-chromium-'));
      browser = await chromium.launchPersistentContext(userDataDir, {
        executablePath: CHROMIUM,
        headless: true,
        args: CHROMIUM_ARGS,
      });
    });
    after(async () => {
      await browser?.close();
      if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
    });

    const open = async (origin: string): Promise<Page> => {
      const page = await browser.newPage();
      await page.goto(`${origin}/`);
      return page;
    };

    it('a page of an allowed origin reads /v1/info, an exchange and a typed error', async () => {
      const { consumer, body } = await prepareExchange(stack.hub.url, stack.db.pool, 5n);
      const page = await open(allowed.origin);
      const answers = await page.evaluate(
        async ({ hub, exchange }) => {
          const read = async (response: Response) => ({
            status: response.status,
            body: (await response.json()) as Json,
          });
          const post = (body: string) =>
            fetch(`${hub}/v1/exchange`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
          return {
            info: await read(await fetch(`${hub}/v1/info`)),
            exchanged: await read(await post(JSON.stringify(exchange))),
            refused: await read(await post('{"promise":{}}')),
          };
        },
        { hub: stack.hub.url, exchange: body },
      );
      await page.close();
      assert.equal(answers.info.status, 200);
      assert.equal(answers.info.body.hub, stack.chain.deployment.hub.address);
      assert.equal(answers.exchanged.status, 200);
      assert.equal(answers.exchanged.body.hubPromise.total, '5');
      const books = (await (await fetch(`${stack.hub.url}/v1/consumers/${consumer.address}`)).json()) as Json;
      assert.equal(books.credited, '5');
      assert.equal(answers.refused.status, 400);
      assert.equal(answers.refused.body.code, 'MALFORMED');
    });

    it('a page of another origin reads nothing, and its exchange is never sent', async () => {
      const { consumer, body } = await prepareExchange(stack.hub.url, stack.db.pool, 7n);
      const page = await open(other.origin);
      const failures = await page.evaluate(
        async ({ hub, exchange }) => {
          const attempt = (request: Promise<Response>) =>
            request.then(
              (response) => `read ${response.status}`,
              (error: Error) => error.name,
            );
          return [
            await attempt(fetch(`${hub}/v1/info`)),
            await attempt(
              fetch(`${hub}/v1/exchange`, {
                method: 'POST',
                headers: { 'content-type': 'application/json' },
                body: JSON.stringify(exchange),
              }),
            ),
          ];
        },
        { hub: stack.hub.url, exchange: body },
      );
      await page.close();
      assert.deepEqual(failures, ['TypeError', 'TypeError']);
      // The preflight allowed no POST: the hub never saw the exchange.
      const books = (await (await fetch(`${stack.hub.url}/v1/consumers/${consumer.address}`)).json()) as Json;
      assert.equal(books.credited, '0');
    });

    it('a page reads RATE_LIMITED and how long to wait', async () => {
      const page = await open(allowed.origin);
      const refused = await page.evaluate(async (hub) => {
        for (let i = 0; i < 100; i++) {
          const response = await fetch(`${hub}/v1/info`);
          if (response.status === 429) {
            return { retryAfter: response.headers.get('retry-after'), body: (await response.json()) as Json };
          }
        }
        return undefined;
      }, stack.hub.url);
      await page.close();
      assert.ok(refused, 'never limited');
      assert.match(refused.retryAfter ?? '', /^\d+$/);
      assert.equal(refused.body.code, 'RATE_LIMITED');
      assert.deepEqual(refused.body.details, { retryAfterSeconds: Number(refused.retryAfter) });
    });
  });
});
