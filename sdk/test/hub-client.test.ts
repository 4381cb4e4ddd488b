import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { secp256k1 } from '@noble/curves/secp256k1';
import { bytesToHex, type Hex, hexToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import {
  decodeMessage,
  HubClient,
  type HubClientOptions,
  HubDirectory,
  HubError,
  type HubErrorCode,
  HubRequestAbortedError,
  HubTimeoutError,
  HubUnreachableError,
  hubErrorCodes,
  InvalidOptionError,
  MalformedMessageError,
  maxExchangesPerRequest,
  parseRetryAfter,
  sealPreimage,
  signInstantExitRequest,
} from '../src/index.js';
import { nodeHubHttp } from '../src/node/index.js';

const vectors = JSON.parse(readFileSync(new URL('./vectors.json', import.meta.url), 'utf8'));
const consumerPromiseWire = vectors.consumerPromise.message;
const hubPromiseWire = vectors.hubPromise.message;
const operatorPublicKey = bytesToHex(secp256k1.getPublicKey(hexToBytes(vectors.keys.operator.privateKey), true));

const infoWire = {
  hub: vectors.contracts.hub,
  chainId: 31337,
  registry: vectors.contracts.registry,
  token: vectors.contracts.token,
  operator: vectors.keys.operator.address,
  publicKey: operatorPublicKey,
  fee: 100,
  pendingFee: { fee: 150, effectiveAt: '1764604800' },
  stake: '1000000000000000000000',
  freeFunds: '0',
  status: 'active',
  consumersPaused: false,
  version: '1.0.0',
};

interface Reply {
  status?: number;
  body?: unknown;
  /** Sent as is instead of JSON. */
  raw?: string;
  headers?: Record<string, string>;
  delayMs?: number;
}

interface Seen {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  body: string;
}

/** A hub-like HTTP server on 127.0.0.1 answering with `handler`; records every request. */
async function serve(handler: (seen: Seen, index: number) => Reply) {
  const seen: Seen[] = [];
  const server = createServer(async (request, response) => {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const entry = {
      method: request.method ?? '',
      path: request.url ?? '',
      headers: request.headers,
      body: Buffer.concat(chunks).toString('utf8'),
    };
    seen.push(entry);
    const reply = handler(entry, seen.length - 1);
    if (reply.delayMs) await new Promise((resolve) => setTimeout(resolve, reply.delayMs));
    if (response.destroyed) return;
    response.writeHead(reply.status ?? 200, { 'content-type': 'application/json', ...reply.headers });
    response.end(reply.raw ?? JSON.stringify(reply.body ?? {}));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  after(
    () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return { url, seen };
}

const fast = { baseDelayMs: 5, maxDelayMs: 20 };
/** How the suite's clients send (a test that injects its own fetch keeps it): fetch, then node:http. */
let transport: Pick<HubClientOptions, 'http'> = {};
const client = (url: string, options: Partial<HubClientOptions> = {}) =>
  new HubClient({ ...(options.fetch ? {} : transport), ...options, url, retry: { ...fast, ...options.retry } });

const hubError = (code: string, status: number, details: Record<string, unknown> = {}): Reply => ({
  status,
  body: { code, message: `refused with ${code}`, details },
});

async function rejectsWith<E extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected ${type.name}, but it resolved`);
}

for (const [name, http] of [
  ['fetch', undefined],
  ['node:http (nodeHubHttp)', nodeHubHttp()],
] as const) {
  describe(`HubClient over ${name}`, { timeout: 30_000 }, () => {
    before(() => {
      transport = http ? { http } : {};
    });
    after(() => {
      transport = {};
      http?.close();
    });
    describe('when the hub answers', () => {
      it('decodes /v1/info strictly into typed values', async () => {
        const { url, seen } = await serve(() => ({ body: { ...infoWire, operator: infoWire.operator.toLowerCase() } }));
        const info = await client(url).info();
        assert.equal(info.stake, 10n ** 21n);
        assert.deepEqual(info.pendingFee, { fee: 150, effectiveAt: 1_764_604_800n });
        assert.equal(info.operator, vectors.keys.operator.address);
        assert.equal(info.publicKey, operatorPublicKey);
        assert.equal(seen[0]!.method, 'GET');
        assert.equal(seen[0]!.path, '/v1/info');
        assert.equal(seen[0]!.headers.accept, 'application/json');
      });

      it('posts an exchange encoded for the wire and decodes the hub promise', async () => {
        const { url, seen } = await serve(() => ({ body: { hubPromise: hubPromiseWire } }));
        const promise = decodeMessage('consumerPromise', consumerPromiseWire);
        const encryptedPreimage = sealPreimage(operatorPublicKey, vectors.hubPromise.preimage);
        const { hubPromise } = await client(url).exchange({ promise, encryptedPreimage });
        assert.equal(hubPromise.total, 7_000_000_000_000_000n);
        assert.equal(hubPromise.signature, hubPromiseWire.signature);
        assert.equal(seen[0]!.method, 'POST');
        assert.equal(seen[0]!.path, '/v1/exchange');
        assert.equal(seen[0]!.headers['content-type'], 'application/json');
        const body = JSON.parse(seen[0]!.body);
        assert.deepEqual(body.promise, consumerPromiseWire);
        assert.equal(body.encryptedPreimage, encryptedPreimage);
        assert.equal('previousPreimage' in body, false);
      });

      it('reads accounts, quotes, settlements and instant exits', async () => {
        const settlementWire = {
          id: 's-1',
          kind: 'provider',
          status: 'confirmed',
          txHash: `0x${'ab'.repeat(32)}`,
          error: null,
        };
        const { url, seen } = await serve(({ path }) => {
          if (path.startsWith('/v1/consumers/')) {
            return {
              body: {
                address: consumerPromiseWire.consumer,
                balance: '10',
                settled: '1',
                promised: '5',
                credited: '5',
                available: '4',
                pendingExit: { amount: '2', readyAt: '1764000000' },
                latestPromise: consumerPromiseWire,
              },
            };
          }
          if (path.startsWith('/v1/providers/')) {
            return {
              body: {
                address: hubPromiseWire.provider,
                earned: '7',
                settled: '0',
                unsettled: '7',
                latestPromise: null,
              },
            };
          }
          if (path.startsWith('/v1/quotes/settlement')) {
            return {
              body: {
                provider: hubPromiseWire.provider,
                amount: '7',
                hubFee: '1',
                relayerFee: '2',
                relayer: consumerPromiseWire.consumer,
                gasPrice: '3',
                validUntil: '1764000060',
              },
            };
          }
          if (path.startsWith('/v1/quotes/relay')) {
            return {
              body: {
                kind: 'identity',
                relayerFee: '4',
                relayer: consumerPromiseWire.consumer,
                gasPrice: '3',
                validUntil: '1764000060',
              },
            };
          }
          if (path === '/v1/settlements') return { status: 202, body: { id: 's-1', status: 'queued' } };
          if (path === '/v1/exits/instant') {
            return {
              body: {
                consumer: consumerPromiseWire.consumer,
                amount: '5',
                nonce: '0',
                deadline: '1764000600',
                signature: hubPromiseWire.signature,
              },
            };
          }
          return { body: settlementWire };
        });
        const hub = client(url);
        const consumer = await hub.consumer(consumerPromiseWire.consumer.toLowerCase());
        assert.deepEqual(consumer.pendingExit, { amount: 2n, readyAt: 1_764_000_000n });
        assert.equal(consumer.latestPromise?.total, 12_000_000_000_000_000n);
        assert.equal(seen[0]!.path, `/v1/consumers/${consumerPromiseWire.consumer}`);
        assert.equal((await hub.provider(hubPromiseWire.provider)).unsettled, 7n);
        const quote = await hub.settlementQuote(hubPromiseWire.provider);
        assert.equal(quote.relayerFee, 2n);
        assert.equal(quote.relayer, consumerPromiseWire.consumer);
        assert.equal(seen[2]!.path, `/v1/quotes/settlement?provider=${hubPromiseWire.provider}`);
        const job = await hub.requestSettlement({
          provider: hubPromiseWire.provider,
          relayerFee: 2n,
          authorization: hubPromiseWire.signature,
        });
        assert.deepEqual(job, { id: 's-1', status: 'queued' });
        assert.deepEqual(JSON.parse(seen[3]!.body), {
          provider: hubPromiseWire.provider,
          relayerFee: '2',
          authorization: hubPromiseWire.signature,
        });
        const request = await signInstantExitRequest(privateKeyToAccount(vectors.keys.consumer.privateKey as Hex), {
          hub: vectors.contracts.hub,
          chainId: 31337,
          consumer: consumerPromiseWire.consumer,
          amount: 5n,
          issuedAt: 1_764_000_000n,
        });
        const exit = await hub.instantExit(request);
        assert.equal(exit.deadline, 1_764_000_600n);
        // The signed request without its scope: the hub checks it in its own domain.
        assert.deepEqual(JSON.parse(seen[4]!.body), {
          consumer: consumerPromiseWire.consumer,
          amount: '5',
          issuedAt: '1764000000',
          signature: request.signature,
        });
        const settlement = await hub.settlement('s/1');
        assert.equal(settlement.status, 'confirmed');
        assert.equal(seen[5]!.path, '/v1/settlements/s%2F1');
        // The relay quote names the hub's relayer, which a relayed registration must name.
        const relayQuote = await hub.relayQuote('identity');
        assert.equal(relayQuote.relayerFee, 4n);
        assert.equal(relayQuote.relayer, consumerPromiseWire.consumer);
        assert.equal(seen[6]!.path, '/v1/quotes/relay?kind=identity');
      });

      it("reads a failed settlement's error as its code and message, and refuses an error without a code", async () => {
        const failed = {
          id: 'p-1',
          kind: 'provider',
          status: 'failed',
          txHash: null,
          error: {
            code: 'HubInsufficientFreeFunds',
            message: "The hub's free funds hold 1, less than the 2 asked for",
          },
        };
        const retrying = {
          ...failed,
          status: 'retrying',
          error: { code: 'REVERTED', message: 'transaction reverted' },
        };
        const answers: unknown[] = [failed, retrying, { ...failed, error: 'HubInsufficientFreeFunds' }];
        const { url } = await serve(() => ({ body: answers.shift() }));
        const hub = client(url, { retry: { attempts: 1 } });
        const settlement = await hub.settlement('p-1');
        assert.deepEqual(settlement.error, failed.error);
        assert.equal(settlement.error?.code, 'HubInsufficientFreeFunds');
        assert.equal((await hub.settlement('p-1')).error?.code, 'REVERTED');
        // The free-text error of earlier hubs is not the answer any more.
        const error = await rejectsWith(hub.settlement('p-1'), MalformedMessageError);
        assert.match(error.message, /error/);
      });

      it('probes /health and /ready without retrying', async () => {
        const { url, seen } = await serve(({ path }) => (path === '/ready' ? { status: 503, body: {} } : { body: {} }));
        const hub = client(url);
        assert.equal(await hub.health(), true);
        assert.equal(await hub.ready(), false);
        assert.equal(seen.length, 2);
      });
    });

    describe('when the hub answers an error', () => {
      for (const [code, { status, retryable }] of Object.entries(hubErrorCodes)) {
        it(`maps ${code} (${status}) to a HubError with its code, status and retryability`, async () => {
          const { url } = await serve(() => hubError(code, status, { path: 'promise.total' }));
          const error = await rejectsWith(client(url, { retry: { attempts: 1 } }).info(), HubError);
          assert.equal(error.code, code as HubErrorCode);
          assert.equal(error.status, status);
          assert.equal(error.retryable, retryable);
          assert.equal(error.hubMessage, `refused with ${code}`);
          assert.deepEqual(error.hubDetails, { path: 'promise.total' });
          assert.equal(error.shortMessage, `${code}: refused with ${code}`);
          assert.ok(error.details?.includes(hubErrorCodes[code as HubErrorCode].advice), error.details);
        });
      }

      it('does not retry a 4xx', async () => {
        const { url, seen } = await serve(() => hubError('OVERSPEND', 409));
        const error = await rejectsWith(client(url, { retry: { attempts: 5 } }).info(), HubError);
        assert.equal(error.code, 'OVERSPEND');
        assert.equal(error.attempts, 1);
        assert.equal(seen.length, 1);
      });

      it('retries a 503 with backoff, then succeeds', async () => {
        const { url, seen } = await serve((_, index) =>
          index < 2 ? hubError('UNAVAILABLE', 503) : { body: infoWire },
        );
        const info = await client(url).info();
        assert.equal(info.fee, 100);
        assert.equal(seen.length, 3);
      });

      it('waits what Retry-After says on a 429, then succeeds', async () => {
        const { url, seen } = await serve((_, index) =>
          index === 0 ? { ...hubError('RATE_LIMITED', 429), headers: { 'retry-after': '1' } } : { body: infoWire },
        );
        const started = performance.now();
        await client(url).info();
        const waited = performance.now() - started;
        assert.equal(seen.length, 2);
        assert.ok(waited >= 950, `waited ${waited} ms, Retry-After asked 1000`);
      });

      it('gives up at once when Retry-After asks for longer than maxRetryAfterMs', async () => {
        const { url, seen } = await serve(() => ({
          ...hubError('RATE_LIMITED', 429),
          headers: { 'retry-after': '120' },
        }));
        const error = await rejectsWith(client(url, { retry: { maxRetryAfterMs: 1_000 } }).info(), HubError);
        assert.equal(error.retryAfterMs, 120_000);
        assert.equal(seen.length, 1);
      });

      it('gives up after the configured number of attempts', async () => {
        const { url, seen } = await serve(() => hubError('INTERNAL', 500));
        const error = await rejectsWith(client(url, { retry: { attempts: 3 } }).info(), HubError);
        assert.equal(error.code, 'INTERNAL');
        assert.equal(error.attempts, 3);
        assert.match(error.details ?? '', /after 3 attempts/);
        assert.equal(seen.length, 3);
      });

      it('does not retry when the request says so', async () => {
        const { url, seen } = await serve(() => hubError('UNAVAILABLE', 503));
        await rejectsWith(client(url).info({ retry: false }), HubError);
        assert.equal(seen.length, 1);
      });

      it('infers the code from the status when the body is not JSON (a proxy page)', async () => {
        const { url } = await serve(() => ({ status: 502, raw: '<html>Bad gateway</html>' }));
        const error = await rejectsWith(client(url, { retry: { attempts: 1 } }).info(), HubError);
        assert.equal(error.code, 'UNAVAILABLE');
        assert.equal(error.status, 502);
        assert.equal(error.retryable, true);
      });

      it('keeps an unknown code, retryable by its status', async () => {
        const { url, seen } = await serve(() => hubError('TEAPOT', 418));
        const error = await rejectsWith(client(url).info(), HubError);
        assert.equal(error.code, 'TEAPOT');
        assert.equal(error.retryable, false);
        assert.equal(seen.length, 1);
      });
    });

    describe('when the hub does not answer', () => {
      it('times out each attempt and gives up with a HubTimeoutError', async () => {
        const { url, seen } = await serve(() => ({ body: infoWire, delayMs: 400 }));
        const error = await rejectsWith(client(url, { timeoutMs: 50, retry: { attempts: 2 } }).info(), HubTimeoutError);
        assert.equal(error.code, 'HUB_TIMEOUT');
        assert.equal(error.timeoutMs, 50);
        assert.equal(error.attempts, 2);
        assert.equal(seen.length, 2);
      });

      it('retries a refused connection and gives up with a HubUnreachableError', async () => {
        const server = createServer();
        await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
        const port = (server.address() as AddressInfo).port;
        await new Promise<void>((resolve) => server.close(() => resolve()));
        let calls = 0;
        const counting: typeof fetch = (input, init) => {
          calls++;
          return fetch(input, init);
        };
        const error = await rejectsWith(
          client(`http://127.0.0.1:${port}`, { fetch: counting, retry: { attempts: 3 } }).info(),
          HubUnreachableError,
        );
        assert.equal(error.code, 'HUB_UNREACHABLE');
        assert.equal(error.attempts, 3);
        assert.equal(calls, 3);
      });

      it('stops retrying when the caller aborts', async () => {
        const { url, seen } = await serve(() => hubError('UNAVAILABLE', 503));
        const controller = new AbortController();
        const pending = client(url, { retry: { attempts: 10, baseDelayMs: 200, maxDelayMs: 200 } }).info({
          signal: controller.signal,
        });
        setTimeout(() => controller.abort(), 50);
        await rejectsWith(pending, HubRequestAbortedError);
        assert.ok(seen.length < 10);
      });
    });

    describe('exchangeMany', () => {
      const promise = () => decodeMessage('consumerPromise', consumerPromiseWire);
      const request = () => ({ promise: promise(), encryptedPreimage: `0x${'00'.repeat(93)}` as Hex });
      const overspend = { code: 'OVERSPEND', message: 'too much', details: { owed: '12' } };

      it('posts the batch for the wire and gives each item its hub promise or its HubError', async () => {
        const { url, seen } = await serve(() => ({
          body: { results: [{ hubPromise: hubPromiseWire }, { error: overspend }] },
        }));
        const results = await client(url).exchangeMany([request(), request()]);
        assert.equal(seen[0]!.method, 'POST');
        assert.equal(seen[0]!.path, '/v1/exchanges');
        const body = JSON.parse(seen[0]!.body);
        assert.equal(body.exchanges.length, 2);
        assert.equal(body.exchanges[0].promise.total, consumerPromiseWire.total);
        assert.equal(results.length, 2);
        const [ok, refused] = results;
        assert.ok(ok?.ok);
        assert.equal(ok.hubPromise.total, 7_000_000_000_000_000n);
        assert.ok(refused && !refused.ok);
        assert.ok(refused.error instanceof HubError);
        assert.equal(refused.error.code, 'OVERSPEND');
        assert.equal(refused.error.status, 409);
        assert.equal(refused.error.retryable, false);
        assert.deepEqual(refused.error.hubDetails, { owed: '12' });
      });

      it('rejects a malformed item or a wrong number of results', async () => {
        const { url: numeric } = await serve(() => ({
          body: { results: [{ hubPromise: { ...hubPromiseWire, total: 7 } }] },
        }));
        await rejectsWith(client(numeric).exchangeMany([request()]), MalformedMessageError);
        const { url: extra } = await serve(() => ({ body: { results: [{ error: { ...overspend, status: 409 } }] } }));
        await rejectsWith(client(extra).exchangeMany([request()]), MalformedMessageError);
        const { url: short } = await serve(() => ({ body: { results: [{ hubPromise: hubPromiseWire }] } }));
        const error = await rejectsWith(client(short).exchangeMany([request(), request()]), MalformedMessageError);
        assert.equal(error.path, 'results');
      });

      it("with sign: 'latest' sends it and gives a covered item its total, hashlock and coverer", async () => {
        const hashlock = `0x${'ab'.repeat(32)}`;
        const { url, seen } = await serve(() => ({
          body: { results: [{ covered: { total: '5', hashlock, by: 1 } }, { hubPromise: hubPromiseWire }] },
        }));
        const [covered, signed] = await client(url).exchangeMany([request(), request()], { sign: 'latest' });
        assert.equal(JSON.parse(seen[0]!.body).sign, 'latest');
        assert.ok(covered?.ok && covered.covered);
        assert.deepEqual(covered.covered, { total: 5n, hashlock, by: 1 });
        assert.ok(signed?.ok && signed.hubPromise);
        // Without the option nothing is sent for it, as hubs before it expect.
        await client(url)
          .exchangeMany([request(), request()])
          .catch(() => {});
        assert.equal('sign' in JSON.parse(seen[1]!.body), false);
      });

      it('rejects a covered item whose coverer is not a signed hub promise, or that was not asked for', async () => {
        const covered = (by: number) => ({ covered: { total: '5', hashlock: `0x${'ab'.repeat(32)}`, by } });
        for (const results of [
          [covered(1), { error: overspend }],
          [covered(2), { hubPromise: hubPromiseWire }],
          [covered(0), { hubPromise: hubPromiseWire }],
        ]) {
          const { url } = await serve(() => ({ body: { results } }));
          const error = await rejectsWith(
            client(url).exchangeMany([request(), request()], { sign: 'latest' }),
            MalformedMessageError,
          );
          assert.equal(error.path, 'results.0.covered.by');
        }
        const { url } = await serve(() => ({ body: { results: [covered(1), { hubPromise: hubPromiseWire }] } }));
        await rejectsWith(client(url).exchangeMany([request(), request()]), MalformedMessageError);
      });

      it('refuses no requests, or more than maxExchangesPerRequest, before sending', async () => {
        const { url, seen } = await serve(() => ({ body: {} }));
        await rejectsWith(client(url).exchangeMany([]), InvalidOptionError);
        const many = Array.from({ length: maxExchangesPerRequest + 1 }, request);
        await rejectsWith(client(url).exchangeMany(many), InvalidOptionError);
        assert.equal(seen.length, 0);
      });

      it('throws the error of a refused request as a whole', async () => {
        const { url } = await serve(() => hubError('MALFORMED', 400, { path: 'exchanges' }));
        const error = await rejectsWith(client(url).exchangeMany([request()]), HubError);
        assert.equal(error.code, 'MALFORMED');
      });
    });

    describe('when the answer is malformed', () => {
      it('rejects a hub promise with a numeric total, naming the field, without retrying', async () => {
        const { url, seen } = await serve(() => ({ body: { hubPromise: { ...hubPromiseWire, total: 7 } } }));
        const promise = decodeMessage('consumerPromise', consumerPromiseWire);
        const error = await rejectsWith(
          client(url).exchange({ promise, encryptedPreimage: `0x${'00'.repeat(93)}` }),
          MalformedMessageError,
        );
        assert.equal(error.path, 'hubPromise.total');
        assert.equal(error.code, 'MALFORMED');
        assert.equal(seen.length, 1);
      });

      it('rejects an answer with an unknown field', async () => {
        const { url } = await serve(() => ({ body: { ...infoWire, extra: true } }));
        const error = await rejectsWith(client(url).info(), MalformedMessageError);
        assert.match(error.shortMessage, /unrecognized key/i);
      });

      it('rejects a body that is not JSON', async () => {
        const { url } = await serve(() => ({ raw: 'OK' }));
        const error = await rejectsWith(client(url).info(), MalformedMessageError);
        assert.match(error.shortMessage, /not JSON/);
      });

      it('refuses to send a malformed request', async () => {
        const { url, seen } = await serve(() => ({ body: {} }));
        const promise = decodeMessage('consumerPromise', consumerPromiseWire);
        const error = await rejectsWith(
          client(url).exchange({
            promise: { ...promise, hashlock: '0x1234' },
            encryptedPreimage: `0x${'00'.repeat(93)}`,
          }),
          MalformedMessageError,
        );
        assert.equal(error.path, 'promise.hashlock');
        assert.equal(seen.length, 0);
      });
    });

    describe('with an injected fetch', () => {
      it('sends every request through it', async () => {
        const calls: { url: string; init: RequestInit | undefined }[] = [];
        const fake: typeof fetch = async (input, init) => {
          calls.push({ url: String(input), init });
          return new Response(JSON.stringify({ revealed: true }), { status: 200 });
        };
        const hub = new HubClient({ url: 'https://hub.example/api/', fetch: fake, headers: { 'x-api-key': 'k' } });
        await hub.reveal({
          hub: infoWire.hub,
          chainId: 31337,
          provider: hubPromiseWire.provider,
          preimage: vectors.hubPromise.preimage,
        });
        assert.equal(calls.length, 1);
        assert.equal(calls[0]!.url, 'https://hub.example/api/v1/reveal');
        assert.equal((calls[0]!.init!.headers as Record<string, string>)['x-api-key'], 'k');
        assert.deepEqual(JSON.parse(String(calls[0]!.init!.body)), {
          hub: infoWire.hub,
          chainId: 31337,
          provider: hubPromiseWire.provider,
          preimage: vectors.hubPromise.preimage,
        });
      });
    });

    it('parses Retry-After as seconds or as an HTTP date', () => {
      assert.equal(parseRetryAfter('3'), 3_000);
      assert.equal(parseRetryAfter(new Date(10_000).toUTCString(), 4_000), 6_000);
      assert.equal(parseRetryAfter('soon'), undefined);
      assert.equal(parseRetryAfter(null), undefined);
    });
  });
}

it('refuses both an http and a fetch: each would send every request', () => {
  const http = nodeHubHttp();
  assert.throws(() => new HubClient({ url: 'https://hub.example', http, fetch }), InvalidOptionError);
  http.close();
});

describe('HubDirectory', { timeout: 30_000 }, () => {
  it('keeps one client per hub URL', () => {
    const hubs = new HubDirectory({ timeoutMs: 1_000 });
    const a = hubs.get('https://hub-a.example/');
    assert.equal(hubs.get('https://hub-a.example'), a);
    assert.notEqual(hubs.get('https://hub-b.example'), a);
    assert.equal(a.timeoutMs, 1_000);
    assert.deepEqual(hubs.urls(), ['https://hub-a.example', 'https://hub-b.example']);
    assert.throws(() => hubs.get('ftp://hub.example'), MalformedMessageError);
  });

  it('picks the first hub that is ready', async () => {
    const down = await serve(() => ({ status: 503, body: {} }));
    const up = await serve(() => ({ body: {} }));
    const hubs = new HubDirectory();
    const picked = await hubs.firstReady([down.url, up.url]);
    assert.equal(picked?.url, up.url);
  });
});
