import assert from 'node:assert/strict';
import { request as httpRequest } from 'node:http';
import { ensureRedis, type RunningService } from '@chit/devstack';
import {
  encodeMessage,
  newHashlock,
  sealPreimage,
  signConsumerPromise,
  signRecoveryRequest,
  verifyHubPromise,
} from '@chit/sdk';
import { getAddress, type Hex } from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { type RunningHub, startHub } from '../src/app';
import { loadConfig } from '../src/config/config';
import { toBytea } from '../src/db/bytes';
import { startChain } from './support/chain';
import { createTestDatabase } from './support/postgres';
import { queuePrefix } from './support/redis';

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

/** Input no answer may repeat. */
const SECRET = 'SECRETINPUT';
/** The order of the secp256k1 group. */
const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;

/** The same signature with v = 0/1 instead of 27/28. */
const withRawV = (signature: Hex): Hex =>
  `0x${signature.slice(2, 130)}${(Number.parseInt(signature.slice(130), 16) - 27).toString(16).padStart(2, '0')}`;

/** The malleable twin of a signature: s' = n - s, v flipped. */
function highS(signature: Hex): Hex {
  const s = N - BigInt(`0x${signature.slice(66, 130)}`);
  const v = Number.parseInt(signature.slice(130), 16) === 27 ? '1c' : '1b';
  return `0x${signature.slice(2, 66)}${s.toString(16).padStart(64, '0')}${v}`;
}

/** Every string in `json` that looks like an address, with its path. */
function addressesIn(json: unknown, path = ''): { path: string; value: string }[] {
  if (typeof json === 'string') return /^0x[0-9a-fA-F]{40}$/.test(json) ? [{ path, value: json }] : [];
  if (json === null || typeof json !== 'object') return [];
  return Object.entries(json).flatMap(([key, inner]) => addressesIn(inner, path ? `${path}.${key}` : key));
}

/** Asserts that every address in `json` is EIP-55 checksummed (bar the paths in `except`). */
function assertChecksummed(json: unknown, except: string[] = []) {
  const found = addressesIn(json).filter(({ path }) => !except.includes(path));
  assert.ok(found.length > 0, 'no address in the answer');
  for (const { path, value } of found) assert.equal(value, getAddress(value), `${path} is not EIP-55`);
}

/** An error answer: exactly `{ code, message, details }`, the status of its code, no input repeated. */
async function assertError(response: Response, status: number, code: string): Promise<Json> {
  const text = await response.text();
  assert.equal(response.status, status, text);
  assert.match(response.headers.get('content-type') ?? '', /^application\/json/);
  const body = JSON.parse(text);
  assert.deepEqual(Object.keys(body).sort(), ['code', 'details', 'message']);
  assert.equal(body.code, code);
  assert.equal(typeof body.message, 'string');
  assert.equal(typeof body.details, 'object');
  assert.ok(!text.includes(SECRET), `the answer repeats the input: ${text}`);
  return body;
}

/** A raw HTTP/1.1 request (fetch cannot send some of the malformed ones). */
function rawRequest(
  url: string,
  options: { method?: string; path: string; headers?: Record<string, string>; body?: string },
): Promise<Response> {
  return new Promise((resolve, reject) => {
    const request = httpRequest(`${url}${options.path}`, { method: options.method ?? 'GET', headers: options.headers });
    request.on('response', (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        const headers = new Headers();
        for (const [name, value] of Object.entries(response.headers))
          if (typeof value === 'string') headers.set(name, value);
        resolve(new Response(Buffer.concat(chunks), { status: response.statusCode, headers }));
      });
    });
    request.on('error', reject);
    request.end(options.body);
  });
}

describe('a strict, canonical wire', () => {
  let chain: Awaited<ReturnType<typeof startChain>>;
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let redis: RunningService;
  let hub: RunningHub;
  let info: Json;

  before(async function () {
    this.timeout(120_000);
    chain = await startChain();
    db = await createTestDatabase();
    redis = await ensureRedis();
    // HUB_ADDRESS in lower case: the hub still answers its address checksummed.
    hub = await startHub(
      loadConfig({
        DATABASE_URL: db.url,
        REDIS_URL: redis.url,
        RPC_URL: chain.url,
        HUB_ADDRESS: chain.deployment.hub.address.toLowerCase(),
        OPERATOR_KEY: chain.operatorKey,
        PORT: '0',
        LOG_LEVEL: 'silent',
        QUEUE_PREFIX: queuePrefix(redis.url, 'wire'),
        HUB_ROLE: 'api',
      }),
    );
    info = await (await fetch(`${hub.url}/v1/info`)).json();
  });
  after(async () => {
    await hub?.close();
    await db?.drop();
    await redis?.stop();
    chain?.stop();
  });

  const get = (path: string) => fetch(`${hub.url}${path}`);
  const post = (path: string, body: unknown) =>
    fetch(`${hub.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  /** A consumer with a channel of 1 token in the books. */
  async function newConsumer(): Promise<PrivateKeyAccount> {
    const consumer = privateKeyToAccount(generatePrivateKey());
    await db.pool.query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
      toBytea(consumer.address.toLowerCase()),
      (10n ** 18n).toString(),
    ]);
    return consumer;
  }

  /** An exchange request of `consumer` paying a fresh provider `total`. */
  async function exchangeRequest(consumer: PrivateKeyAccount, total: bigint) {
    const provider = privateKeyToAccount(generatePrivateKey());
    const { preimage, hashlock } = newHashlock();
    const promise = await signConsumerPromise(consumer, {
      hub: info.hub,
      chainId: info.chainId,
      consumer: consumer.address,
      total,
      hashlock,
      agreement: { provider: provider.address, id: hashlock, total },
    });
    const request = { promise: encodeMessage(promise), encryptedPreimage: sealPreimage(info.publicKey, preimage) };
    return { provider, preimage, request };
  }

  const credited = async (consumer: PrivateKeyAccount) =>
    ((await (await get(`/v1/consumers/${consumer.address}`)).json()) as Json).credited;

  describe('signatures', () => {
    it('refuses v = 0 or 1 as MALFORMED and changes nothing; the same promise with v = 27 or 28 is credited', async () => {
      const consumer = await newConsumer();
      const { request } = await exchangeRequest(consumer, 5n);
      const raw = { ...request, promise: { ...request.promise, signature: withRawV(request.promise.signature) } };
      const refused = await assertError(await post('/v1/exchange', raw), 400, 'MALFORMED');
      assert.equal(refused.details.path, 'promise.signature');
      assert.match(refused.message, /27 or 28/);
      assert.equal(await credited(consumer), '0');
      const batch: Json = await (await post('/v1/exchanges', { exchanges: [raw] })).json();
      assert.equal(batch.results[0].error.code, 'MALFORMED');
      assert.equal(batch.results[0].error.details.path, 'promise.signature');
      assert.equal(await credited(consumer), '0');

      const accepted = await post('/v1/exchange', request);
      assert.equal(accepted.status, 200);
      assert.equal(((await accepted.json()) as Json).hubPromise.total, '5');
      assert.equal(await credited(consumer), '5');
    });

    it('refuses the high-s twin of a consumer promise as INVALID_SIGNATURE and changes nothing', async () => {
      const consumer = await newConsumer();
      const { request } = await exchangeRequest(consumer, 3n);
      const twin = { ...request, promise: { ...request.promise, signature: highS(request.promise.signature) } };
      await assertError(await post('/v1/exchange', twin), 400, 'INVALID_SIGNATURE');
      assert.equal(await credited(consumer), '0');
    });

    it('refuses a settlement authorization or a relayed registration with v = 0 or 1 as MALFORMED', async () => {
      const someone = privateKeyToAccount(generatePrivateKey());
      const signature = withRawV(await someone.signMessage({ message: 'anything' }));
      const settlement = await assertError(
        await post('/v1/settlements', { provider: someone.address, relayerFee: '0', authorization: signature }),
        400,
        'MALFORMED',
      );
      assert.equal(settlement.details.path, 'authorization');
      const relay = await assertError(
        await post('/v1/relay/beneficiaries', { identity: someone.address, beneficiary: someone.address, signature }),
        400,
        'MALFORMED',
      );
      assert.equal(relay.details.path, 'signature');
    });
  });

  describe('addresses', () => {
    it('answers /v1/info and hub promises with checksummed addresses when HUB_ADDRESS is set in lower case', async () => {
      assert.equal(info.hub, chain.deployment.hub.address);
      assertChecksummed(info);
      const consumer = await newConsumer();
      const { provider, request } = await exchangeRequest(consumer, 2n);
      const answer: Json = await (await post('/v1/exchange', request)).json();
      assert.equal(answer.hubPromise.hub, chain.deployment.hub.address);
      assertChecksummed(answer);
      assert.ok(verifyHubPromise({ ...answer.hubPromise, total: 2n }, info.operator));

      const recovery = await signRecoveryRequest(provider, {
        hub: info.hub,
        chainId: info.chainId,
        provider: provider.address,
        issuedAt: BigInt(Math.floor(Date.now() / 1000)),
      });
      const recovered: Json = await (
        await post('/v1/recovery', { ...encodeMessage(recovery), provider: provider.address.toLowerCase() })
      ).json();
      assert.equal(recovered.hubPromise.provider, provider.address);
      assertChecksummed(recovered);
    });

    it('answers the books of a consumer and of a provider asked in either form, with checksummed addresses', async () => {
      const consumer = await newConsumer();
      const { provider, request } = await exchangeRequest(consumer, 4n);
      assert.equal((await post('/v1/exchange', request)).status, 200);

      const [byLower, byChecksum]: Json[] = await Promise.all(
        [consumer.address.toLowerCase(), consumer.address].map(async (a) => (await get(`/v1/consumers/${a}`)).json()),
      );
      assert.deepEqual(byLower, byChecksum);
      assert.equal(byLower.address, consumer.address);
      assert.equal(byLower.latestPromise.consumer, consumer.address);
      assert.equal(byLower.latestPromise.hub, chain.deployment.hub.address);
      assertChecksummed(byLower);

      const [providerByLower, providerByChecksum]: Json[] = await Promise.all(
        [provider.address.toLowerCase(), provider.address].map(async (a) => (await get(`/v1/providers/${a}`)).json()),
      );
      assert.deepEqual(providerByLower, providerByChecksum);
      assert.equal(providerByLower.address, provider.address);
      assert.equal(providerByLower.latestPromise.provider, provider.address);
      assertChecksummed(providerByLower);
      assert.ok(verifyHubPromise({ ...providerByLower.latestPromise, total: 4n }, info.operator));

      const quote: Json = await (await get(`/v1/quotes/settlement?provider=${provider.address.toLowerCase()}`)).json();
      assert.equal(quote.provider, provider.address);
    });

    it('refuses an address with a bad checksum as MALFORMED, in every place, without repeating it', async () => {
      const address = privateKeyToAccount(generatePrivateKey()).address;
      // Flip the case of one letter: a mixed-case address whose checksum is wrong.
      const index = [...address].findIndex((c, i) => i > 1 && /[a-fA-F]/.test(c));
      const c = address[index]!;
      const bad = `${address.slice(0, index)}${c === c.toLowerCase() ? c.toUpperCase() : c.toLowerCase()}${address.slice(index + 1)}`;
      const cases: [string, string][] = [
        [`/v1/consumers/${bad}`, 'address'],
        [`/v1/providers/${bad}`, 'address'],
        [`/v1/quotes/settlement?provider=${bad}`, 'provider'],
        [`/v1/settlements/c-${bad}-1`, 'id'],
        [`/v1/settlements/p-${bad}-1`, 'id'],
      ];
      for (const [path, field] of cases) {
        const response = await get(path);
        const text = await response.clone().text();
        assert.ok(!text.includes(bad.slice(2)), `${path} repeats the address: ${text}`);
        const body = await assertError(response, 400, 'MALFORMED');
        assert.equal(body.details.path, field, path);
        assert.match(body.message, /checksum/, path);
      }
      const notAnAddress = await assertError(await get(`/v1/consumers/${SECRET}`), 400, 'MALFORMED');
      assert.equal(notAnAddress.details.path, 'address');
      await assertError(await get(`/v1/settlements/${SECRET}`), 400, 'MALFORMED');
    });

    it('finds a settlement by its id with the address in either form, and answers the canonical id', async () => {
      const subject = privateKeyToAccount(generatePrivateKey()).address;
      const id = `c-${subject.toLowerCase()}-7`;
      await db.pool.query(
        `INSERT INTO settlements (id, kind, subject, amount, status) VALUES ($1, 'consumer', $2, 7, 'confirmed')`,
        [id, toBytea(subject.toLowerCase())],
      );
      for (const asked of [id, `c-${subject}-7`]) {
        const response = await get(`/v1/settlements/${asked}`);
        assert.equal(response.status, 200, asked);
        assert.deepEqual(await response.json(), {
          id,
          kind: 'consumer',
          status: 'confirmed',
          txHash: null,
          error: null,
        });
      }
      const unknown = await assertError(await get(`/v1/settlements/p-${subject}-7`), 404, 'NOT_FOUND');
      assert.equal(unknown.details.id, `p-${subject.toLowerCase()}-7`);
      // The longest id there can be is not too long for the path.
      const longest = `beneficiary-${subject}-${(2n ** 256n - 1n).toString()}`;
      assert.equal(longest.length, 133);
      await assertError(await get(`/v1/settlements/${longest}`), 404, 'NOT_FOUND');
      await assertError(await get(`/v1/settlements/${longest}0`), 400, 'MALFORMED');
    });

    it('names an unknown provider checksummed, however it was asked', async () => {
      const stranger = privateKeyToAccount(generatePrivateKey()).address;
      const quote = await assertError(
        await get(`/v1/quotes/settlement?provider=${stranger.toLowerCase()}`),
        404,
        'UNKNOWN_PROVIDER',
      );
      assert.equal(quote.details.provider, stranger);
      const books = await assertError(await get(`/v1/providers/${stranger.toLowerCase()}`), 404, 'UNKNOWN_PROVIDER');
      assert.equal(books.details.provider, stranger);
    });
  });

  describe('unknown fields', () => {
    it('name the unknown field itself in details.path, alone and in a batch', async () => {
      const consumer = await newConsumer();
      const { request } = await exchangeRequest(consumer, 1n);
      const nested = { ...request, promise: { ...request.promise, agreement: { ...request.promise.agreement, x: 1 } } };
      const alone = await assertError(await post('/v1/exchange', nested), 400, 'MALFORMED');
      assert.equal(alone.details.path, 'promise.agreement.x');
      const batch: Json = await (await post('/v1/exchanges', { exchanges: [nested, { ...request, y: 1 }] })).json();
      assert.equal(batch.results[0].error.details.path, 'promise.agreement.x');
      assert.equal(batch.results[1].error.details.path, 'y');
      assert.equal(
        (await assertError(await post('/v1/exchange', { ...request, y: 1 }), 400, 'MALFORMED')).details.path,
        'y',
      );
      const settlement = await assertError(
        await post('/v1/settlements', {
          provider: consumer.address,
          relayerFee: '0',
          authorization: request.promise.signature,
          z: 1,
        }),
        400,
        'MALFORMED',
      );
      assert.equal(settlement.details.path, 'z');
      assert.equal(await credited(consumer), '0');
    });
  });

  describe('encryptedPreimage', () => {
    it('must be exactly 93 bytes', async () => {
      const consumer = await newConsumer();
      const { request } = await exchangeRequest(consumer, 1n);
      for (const bytes of [1, 92, 94, 512]) {
        const body = { ...request, encryptedPreimage: `0x${'ab'.repeat(bytes)}` };
        const refused = await assertError(await post('/v1/exchange', body), 400, 'MALFORMED');
        assert.equal(refused.details.path, 'encryptedPreimage');
        assert.match(refused.message, /expected 93 bytes as 0x-hex/);
      }
      assert.equal(await credited(consumer), '0');
    });
  });

  describe('errors the HTTP layer raises', () => {
    it('answers a path parameter over 140 characters with URI_TOO_LONG (414)', async () => {
      await assertError(await get(`/v1/settlements/${SECRET.repeat(20)}`), 414, 'URI_TOO_LONG');
      await assertError(await get(`/v1/consumers/${SECRET.repeat(20)}`), 414, 'URI_TOO_LONG');
    });

    it('answers headers or a URL over the HTTP parser limit with HEADERS_TOO_LARGE (431)', async () => {
      await assertError(
        await rawRequest(hub.url, { path: '/v1/info', headers: { 'x-big': SECRET.repeat(4_000) } }),
        431,
        'HEADERS_TOO_LARGE',
      );
      await assertError(
        await rawRequest(hub.url, { path: `/v1/info?q=${SECRET.repeat(4_000)}` }),
        431,
        'HEADERS_TOO_LARGE',
      );
      // The hub still answers afterwards.
      assert.equal((await get('/health')).status, 200);
    });

    it('answers a body over 64 KiB with BODY_TOO_LARGE (413)', async () => {
      const body = await assertError(
        await post('/v1/exchange', { padding: SECRET.repeat(7_000) }),
        413,
        'BODY_TOO_LARGE',
      );
      assert.deepEqual(body.details, { limit: 65_536 });
    });

    it('answers a body that is not JSON with UNSUPPORTED_MEDIA_TYPE (415)', async () => {
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'application/xml']) {
        const response = await fetch(`${hub.url}/v1/settlements`, {
          method: 'POST',
          headers: { 'content-type': type },
          body: `provider=${SECRET}`,
        });
        await assertError(response, 415, 'UNSUPPORTED_MEDIA_TYPE');
      }
      const untyped = await rawRequest(hub.url, { method: 'POST', path: '/v1/reveal', body: SECRET });
      await assertError(untyped, 415, 'UNSUPPORTED_MEDIA_TYPE');
    });

    it('answers unparsable JSON, an empty JSON body or a bad URL with MALFORMED (400)', async () => {
      for (const body of [`{"${SECRET}":`, `${SECRET}`, '{"__proto__": {"x": 1}}', '']) {
        const response = await fetch(`${hub.url}/v1/reveal`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        await assertError(response, 400, 'MALFORMED');
      }
      await assertError(await get(`/v1/settlements/${SECRET}%E0%A4%A`), 400, 'MALFORMED');
    });

    it('answers an unknown route with NOT_FOUND (404)', async () => {
      await assertError(await get(`/v1/${SECRET}`), 404, 'NOT_FOUND');
      await assertError(await post(`/v1/${SECRET}`, {}), 404, 'NOT_FOUND');
    });

    it('counts each of them in chit_errors_total', async () => {
      const counts = async () => {
        const text = await (await get('/metrics')).text();
        const count = (code: string) => {
          const line = text.split('\n').find((l) => l.startsWith(`chit_errors_total{code="${code}"} `));
          return line === undefined ? 0 : Number(line.split(' ')[1]);
        };
        return Object.fromEntries(
          [
            'URI_TOO_LONG',
            'HEADERS_TOO_LARGE',
            'BODY_TOO_LARGE',
            'UNSUPPORTED_MEDIA_TYPE',
            'MALFORMED',
            'NOT_FOUND',
          ].map((code) => [code, count(code)]),
        );
      };
      const before = await counts();
      await get(`/v1/settlements/${'x'.repeat(200)}`);
      await rawRequest(hub.url, { path: '/v1/info', headers: { 'x-big': 'x'.repeat(20_000) } });
      await post('/v1/exchange', { padding: 'x'.repeat(70_000) });
      await fetch(`${hub.url}/v1/reveal`, { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' });
      await get('/v1/settlements/%E0%A4%A');
      await get('/v1/nothing');
      const after = await counts();
      for (const code of Object.keys(before)) assert.equal(after[code], before[code] + 1, code);
    });
  });
});
