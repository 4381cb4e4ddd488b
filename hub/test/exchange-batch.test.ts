import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  decodeMessage,
  encodeMessage,
  HubClient,
  HubError,
  InvalidOptionError,
  maxExchangesPerRequest,
  newHashlock,
  sealPreimage,
  signConsumerPromise,
  verifyHubPromise,
} from '@chit/sdk';
import { bytesToHex, type Hex } from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { toBytea } from '../src/db/bytes';
import { startTestStack, type TestStack } from './support/hub';

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

const OTHER_HUB = '0x000000000000000000000000000000000000dEaD';

describe('POST /v1/exchanges', () => {
  let stack: TestStack;
  let db: TestStack['db'];
  let hub: TestStack['hub'];
  let info: { hub: Hex; chainId: number; operator: Hex; publicKey: Hex };

  before(async function () {
    this.timeout(120_000);
    stack = await startTestStack('batch');
    ({ db, hub } = stack);
    info = (await (await fetch(`${hub.url}/v1/info`)).json()) as typeof info;
  });
  after(() => stack?.stop());

  const post = async (path: string, body: unknown): Promise<{ status: number; body: Json }> => {
    const response = await fetch(`${hub.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
    return { status: response.status, body: await response.json() };
  };
  const get = async (path: string): Promise<Json> => (await fetch(`${hub.url}${path}`)).json();

  /** A consumer with a channel of `balance` in the books, as the chain follower would record a deposit. */
  async function consumer(balance = 10n ** 18n) {
    const account = privateKeyToAccount(generatePrivateKey());
    await db.pool.query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
      toBytea(account.address.toLowerCase()),
      balance.toString(),
    ]);
    return { account, signed: 0n };
  }
  type Consumer = Awaited<ReturnType<typeof consumer>>;

  /** A provider: the R of its latest accepted exchange is sent along with its next one. */
  function provider() {
    return { account: privateKeyToAccount(generatePrivateKey()), previous: undefined as Hex | undefined };
  }
  type Provider = ReturnType<typeof provider>;

  /** An agreement between them: its id and what it was credited so far. */
  const agreement = (c: Consumer, p: Provider) => ({ c, p, id: bytesToHex(randomBytes(32)), total: 0n });
  type Agreement = ReturnType<typeof agreement>;

  /**
   * The wire request of the agreement's next invoice, raised by `increment`. `accept` (the default)
   * books it as the hub will credit it: the consumer's signed total, the agreement total and the
   * provider's previous R move on. `signer` and `hubAddress` forge it.
   */
  async function next(
    a: Agreement,
    increment: bigint,
    options: { accept?: boolean; signer?: PrivateKeyAccount; hubAddress?: Hex; consumerTotal?: bigint } = {},
  ) {
    const { preimage, hashlock } = newHashlock();
    const total = options.consumerTotal ?? a.c.signed + increment;
    const promise = await signConsumerPromise(options.signer ?? a.c.account, {
      hub: options.hubAddress ?? info.hub,
      chainId: info.chainId,
      consumer: a.c.account.address,
      total,
      hashlock,
      agreement: { provider: a.p.account.address, id: a.id as Hex, total: a.total + increment },
    });
    const body = encodeMessage({
      promise,
      encryptedPreimage: sealPreimage(info.publicKey, preimage),
      ...(a.p.previous && { previousPreimage: a.p.previous }),
    });
    if (options.accept ?? true) {
      a.c.signed = total > a.c.signed ? total : a.c.signed;
      a.total += increment;
      a.p.previous = preimage;
    }
    return body;
  }

  /** Consumers' credited totals and providers' unsettled amounts, as the hub reports them. */
  async function books(consumers: Consumer[], providers: Provider[]) {
    return {
      credited: await Promise.all(
        consumers.map(async (c) => (await get(`/v1/consumers/${c.account.address}`)).credited),
      ),
      unsettled: await Promise.all(
        providers.map(async (p) => (await get(`/v1/providers/${p.account.address}`)).unsettled ?? null),
      ),
    };
  }

  async function exchangeCount(): Promise<number> {
    return (await db.pool.query('SELECT count(*)::int AS n FROM exchanges')).rows[0].n;
  }

  async function metric(name: string): Promise<number> {
    const text = await (await fetch(`${hub.url}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`${name} `));
    return line ? Number(line.split(' ')[1]) : 0;
  }

  /** Several consumers paying several providers, each provider exchanging more than once. */
  async function scenario() {
    const consumers = [await consumer(), await consumer(), await consumer()];
    const providers = [provider(), provider(), provider()];
    const [c1, c2, c3] = consumers as [Consumer, Consumer, Consumer];
    const [p1, p2, p3] = providers as [Provider, Provider, Provider];
    const a11 = agreement(c1, p1);
    const a21 = agreement(c2, p1);
    const a12 = agreement(c1, p2);
    const a33 = agreement(c3, p3);
    const a22 = agreement(c2, p2);
    const requests = [
      await next(a11, 5n),
      await next(a21, 7n),
      await next(a12, 3n),
      await next(a33, 10n),
      await next(a11, 2n),
      await next(a22, 4n),
    ];
    return { consumers, providers, requests };
  }

  it('credits a batch for several providers and consumers exactly as the single exchanges would', async () => {
    const singles = await scenario();
    const singleAnswers: Json[] = [];
    for (const request of singles.requests) {
      const answer = await post('/v1/exchange', request);
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      singleAnswers.push(answer.body);
    }
    const batch = await scenario();
    const answer = await post('/v1/exchanges', { exchanges: batch.requests });
    assert.equal(answer.status, 200);
    const { results } = answer.body;
    assert.equal(results.length, batch.requests.length);
    assert.deepEqual(
      results.map((r: Json) => r.hubPromise.total),
      singleAnswers.map((r) => r.hubPromise.total),
    );
    assert.deepEqual(
      results.map((r: Json) => r.hubPromise.total),
      ['5', '12', '3', '10', '14', '7'],
    );
    for (const [i, result] of results.entries()) {
      const { hubPromise } = result as Json;
      assert.equal(hubPromise.hashlock, batch.requests[i]!.promise.hashlock);
      assert.equal(hubPromise.provider, batch.requests[i]!.promise.agreement.provider);
      assert.ok(verifyHubPromise({ ...hubPromise, total: BigInt(hubPromise.total) }, info.operator));
    }
    const expected = { credited: ['10', '11', '10'], unsettled: ['14', '7', '10'] };
    assert.deepEqual(await books(singles.consumers, singles.providers), expected);
    assert.deepEqual(await books(batch.consumers, batch.providers), expected);
  });

  describe("with sign: 'latest'", () => {
    /** Checks a signed hub promise of the wire answer against the operator, and returns its total. */
    const signedTotal = (result: Json): string => {
      const { hubPromise } = result;
      assert.ok(verifyHubPromise({ ...hubPromise, total: BigInt(hubPromise.total) }, info.operator));
      return hubPromise.total;
    };

    it("signs one hub promise per provider, its highest total, and credits every item as 'each' does", async () => {
      const batch = await scenario();
      const answer = await post('/v1/exchanges', { exchanges: batch.requests, sign: 'latest' });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const { results } = answer.body;
      // p1's items are 0, 1 and 4; p2's 2 and 5; p3's 3: each provider's last is signed.
      assert.deepEqual(
        results.map((r: Json) => Object.keys(r)),
        [['covered'], ['covered'], ['covered'], ['hubPromise'], ['hubPromise'], ['hubPromise']],
      );
      assert.deepEqual(
        results.slice(0, 3).map((r: Json) => r.covered),
        [
          { total: '5', hashlock: batch.requests[0]!.promise.hashlock, by: 4 },
          { total: '12', hashlock: batch.requests[1]!.promise.hashlock, by: 4 },
          { total: '3', hashlock: batch.requests[2]!.promise.hashlock, by: 5 },
        ],
      );
      assert.deepEqual(results.slice(3).map(signedTotal), ['10', '14', '7']);
      for (const i of [3, 4, 5]) {
        assert.equal(results[i].hubPromise.hashlock, batch.requests[i]!.promise.hashlock);
        assert.equal(results[i].hubPromise.provider, batch.requests[i]!.promise.agreement.provider);
      }
      assert.deepEqual(await books(batch.consumers, batch.providers), {
        credited: ['10', '11', '10'],
        unsettled: ['14', '7', '10'],
      });
      // Sent again: the same answer, the same signatures, nothing credited twice.
      const again = await post('/v1/exchanges', { exchanges: batch.requests, sign: 'latest' });
      assert.deepEqual(again.body, answer.body);
      assert.deepEqual((await books(batch.consumers, batch.providers)).unsettled, ['14', '7', '10']);
    });

    it('covers a refused item by nothing and a repeated older item by the newer, higher total', async () => {
      const c = await consumer();
      const poor = await consumer(3n);
      const p = provider();
      const a = agreement(c, p);
      const older = await next(a, 4n);
      assert.equal((await post('/v1/exchange', older)).status, 200);
      const broke = await next(agreement(poor, p), 9n, { accept: false });
      const newer = await next(a, 6n);
      const answer = await post('/v1/exchanges', { exchanges: [newer, broke, older], sign: 'latest' });
      assert.equal(answer.status, 200, JSON.stringify(answer.body));
      const [signed, refused, repeated] = answer.body.results;
      assert.equal(signedTotal(signed), '10');
      assert.equal(refused.error.code, 'OVERSPEND');
      // The repeat keeps its first total, 4, and is covered by the item before it.
      assert.deepEqual(repeated, { covered: { total: '4', hashlock: older.promise.hashlock, by: 0 } });
      assert.equal((await get(`/v1/providers/${p.account.address}`)).unsettled, '10');
      assert.equal((await get(`/v1/consumers/${poor.account.address}`)).credited, '0');
    });

    it('refuses a sign other than each or latest as a whole with MALFORMED, crediting nothing', async () => {
      const c = await consumer();
      const a = agreement(c, provider());
      const request = await next(a, 2n, { accept: false });
      const exchanges = await exchangeCount();
      for (const sign of ['all', 1, null]) {
        const answer = await post('/v1/exchanges', { exchanges: [request], sign });
        assert.equal(answer.status, 400);
        assert.equal(answer.body.code, 'MALFORMED');
        assert.equal(answer.body.details.path, 'sign');
      }
      assert.equal(await exchangeCount(), exchanges);
      assert.equal((await get(`/v1/consumers/${c.account.address}`)).credited, '0');
    });
  });

  describe('with valid and refused items mixed', () => {
    let parties: { consumers: Consumer[]; providers: Provider[] };
    let requests: unknown[];
    let first: { status: number; body: Json };
    let baseline: { exchanges: number; ok: number; overspend: number; malformed: number };

    it('answers each item with its own code, credits the valid ones and nothing else', async () => {
      const good = await consumer();
      const poor = await consumer(5n);
      const forged = await consumer();
      const elsewhere = await consumer();
      const p = [provider(), provider(), provider(), provider()] as const;
      const valid1 = agreement(good, p[0]);
      const overspend = agreement(poor, p[1]);
      const badSignature = agreement(forged, p[2]);
      const wrongHub = agreement(elsewhere, p[3]);
      const valid2 = agreement(good, p[1]);
      requests = [
        await next(valid1, 6n),
        await next(overspend, 9n, { accept: false }),
        await next(badSignature, 3n, { accept: false, signer: privateKeyToAccount(generatePrivateKey()) }),
        await next(wrongHub, 3n, { accept: false, hubAddress: OTHER_HUB }),
        { promise: { hub: info.hub } },
        await next(valid2, 4n),
      ];
      parties = { consumers: [good, poor, forged, elsewhere], providers: [...p] };
      baseline = {
        exchanges: await exchangeCount(),
        ok: await metric('chit_exchanges_total{outcome="ok"}'),
        overspend: await metric('chit_errors_total{code="OVERSPEND"}'),
        malformed: await metric('chit_errors_total{code="MALFORMED"}'),
      };

      first = await post('/v1/exchanges', { exchanges: requests });
      assert.equal(first.status, 200);
      const { results } = first.body;
      assert.equal(results[0].hubPromise.total, '6');
      assert.equal(results[1].error.code, 'OVERSPEND');
      assert.equal(results[2].error.code, 'INVALID_SIGNATURE');
      assert.equal(results[3].error.code, 'WRONG_HUB');
      assert.equal(results[4].error.code, 'MALFORMED');
      assert.equal(results[4].error.details.path, 'promise.chainId');
      assert.equal(results[5].hubPromise.total, '4');
      for (const i of [1, 2, 3, 4]) {
        assert.deepEqual(Object.keys(results[i]), ['error']);
        assert.deepEqual(Object.keys(results[i].error).sort(), ['code', 'details', 'message']);
      }
      // The same codes and details as the single endpoint gives each refused item alone.
      for (const i of [1, 2, 3, 4]) {
        const alone = await post('/v1/exchange', requests[i]);
        assert.equal(alone.status, i === 1 ? 409 : 400);
        assert.deepEqual(alone.body, results[i].error);
      }

      assert.deepEqual(await books(parties.consumers, []), { credited: ['10', '0', '0', '0'], unsettled: [] });
      assert.equal((await get(`/v1/providers/${p[0].account.address}`)).unsettled, '6');
      assert.equal((await get(`/v1/providers/${p[1].account.address}`)).unsettled, '4');
      for (const refused of [p[2], p[3]]) {
        const answer = await fetch(`${hub.url}/v1/providers/${refused.account.address}`);
        assert.equal(answer.status, 404);
      }
      assert.equal(await exchangeCount(), baseline.exchanges + 2);
      assert.equal(await metric('chit_exchanges_total{outcome="ok"}'), baseline.ok + 2);
      // One OVERSPEND and one MALFORMED in the batch, and the same again from the single requests above.
      assert.equal(await metric('chit_errors_total{code="OVERSPEND"}'), baseline.overspend + 2);
      assert.equal(await metric('chit_errors_total{code="MALFORMED"}'), baseline.malformed + 2);
    });

    it('answers the same batch again with the same answers and credits nothing twice', async () => {
      assert.ok(first, 'runs after the test above');
      const repeated = await metric('chit_exchanges_total{outcome="repeated"}');
      const again = await post('/v1/exchanges', { exchanges: requests });
      assert.equal(again.status, 200);
      assert.deepEqual(again.body, first.body);
      assert.deepEqual(await books(parties.consumers, []), { credited: ['10', '0', '0', '0'], unsettled: [] });
      assert.equal((await get(`/v1/providers/${parties.providers[1]!.account.address}`)).unsettled, '4');
      assert.equal(await exchangeCount(), baseline.exchanges + 2);
      assert.equal(await metric('chit_exchanges_total{outcome="repeated"}'), repeated + 2);
    });
  });

  it('answers the same hashlock twice in one batch as a repeat, and another promise on it as HASHLOCK_REUSED', async () => {
    const c = await consumer();
    const p = provider();
    const a = agreement(c, p);
    const request = (await next(a, 5n)) as Json;
    const reused = {
      ...request,
      promise: { ...request.promise, total: '6', agreement: { ...request.promise.agreement, total: '6' } },
    };
    // Re-sign the changed promise with the consumer's key, on the same hashlock.
    const resigned = await signConsumerPromise(c.account, {
      hub: info.hub,
      chainId: info.chainId,
      consumer: c.account.address,
      total: 6n,
      hashlock: request.promise.hashlock,
      agreement: { provider: p.account.address, id: a.id as Hex, total: 6n },
    });
    reused.promise.signature = resigned.signature;
    const answer = await post('/v1/exchanges', { exchanges: [request, request, reused] });
    assert.equal(answer.status, 200);
    const [one, two, three] = answer.body.results;
    assert.equal(one.hubPromise.total, '5');
    assert.deepEqual(two, one);
    assert.equal(three.error.code, 'HASHLOCK_REUSED');
    assert.equal((await get(`/v1/consumers/${c.account.address}`)).credited, '5');
    assert.equal((await get(`/v1/providers/${p.account.address}`)).unsettled, '5');
  });

  it('refuses an empty, oversized or unlisted batch as a whole with MALFORMED', async () => {
    const exchanges = await exchangeCount();
    const cases: [unknown, string][] = [
      [{ exchanges: [] }, 'exchanges'],
      [{ exchanges: Array.from({ length: maxExchangesPerRequest + 1 }, () => ({})) }, 'exchanges'],
      [{ exchanges: {} }, 'exchanges'],
      [{}, 'exchanges'],
      [[{}], ''],
      [{ exchanges: [{}], more: true }, 'more'],
    ];
    for (const [body, path] of cases) {
      const answer = await post('/v1/exchanges', body);
      assert.equal(answer.status, 400, JSON.stringify(body).slice(0, 80));
      assert.equal(answer.body.code, 'MALFORMED');
      assert.equal(answer.body.details.path, path);
    }
    // The largest batch is accepted (here every item malformed, each answered on its own).
    const largest = await post('/v1/exchanges', {
      exchanges: Array.from({ length: maxExchangesPerRequest }, () => ({})),
    });
    assert.equal(largest.status, 200);
    assert.equal(largest.body.results.length, maxExchangesPerRequest);
    for (const result of largest.body.results) assert.equal(result.error.code, 'MALFORMED');
    assert.equal(await exchangeCount(), exchanges);
  });

  describe('HubClient.exchangeMany', () => {
    it('gives each item its hub promise or its HubError', async () => {
      const client = new HubClient({ url: hub.url });
      const good = await consumer();
      const poor = await consumer(1n);
      const p = provider();
      const requests = [await next(agreement(good, p), 8n), await next(agreement(poor, provider()), 2n)];
      const results = await client.exchangeMany(requests.map((r) => decodeMessage('exchangeRequest', r)));
      assert.equal(results.length, 2);
      const [ok, refused] = results;
      assert.ok(ok?.ok);
      assert.equal(ok.hubPromise.total, 8n);
      assert.equal(ok.hubPromise.provider, p.account.address);
      assert.ok(verifyHubPromise(ok.hubPromise, info.operator));
      assert.ok(refused && !refused.ok);
      assert.ok(refused.error instanceof HubError);
      assert.equal(refused.error.code, 'OVERSPEND');
      assert.equal(refused.error.status, 409);
      assert.equal(refused.error.retryable, false);
      await assert.rejects(client.exchangeMany([]), InvalidOptionError);
    });

    it("with sign: 'latest' gives the covered items their total and the index of the signed one", async () => {
      const client = new HubClient({ url: hub.url });
      const p = provider();
      const a1 = agreement(await consumer(), p);
      const a2 = agreement(await consumer(), p);
      const requests = [await next(a1, 8n), await next(a2, 5n)];
      const [covered, signed] = await client.exchangeMany(
        requests.map((r) => decodeMessage('exchangeRequest', r)),
        { sign: 'latest' },
      );
      assert.ok(covered?.ok && covered.covered);
      assert.deepEqual(covered.covered, { total: 8n, hashlock: requests[0]!.promise.hashlock, by: 1 });
      assert.ok(signed?.ok && signed.hubPromise);
      assert.equal(signed.hubPromise.total, 13n);
      assert.ok(verifyHubPromise(signed.hubPromise, info.operator));
    });
  });
});
