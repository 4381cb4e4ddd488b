import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  encodeMessage,
  HubClient,
  HubError,
  type HubSession,
  newHashlock,
  sealPreimage,
  signConsumerPromise,
} from '@chit/sdk';
import { bytesToHex, type Hex } from 'viem';
import { generatePrivateKey, type PrivateKeyAccount, privateKeyToAccount } from 'viem/accounts';
import { createSiweMessage } from 'viem/siwe';
import { AuthRepository } from '../src/auth/auth.repository';
import { AuthService } from '../src/auth/auth.service';
import { SessionTokens } from '../src/auth/session-token';
import { toBytea } from '../src/db/bytes';
import { HubError as HubRefusal } from '../src/errors/hub-error';
import { startTestStack, type TestStack } from './support/hub';

// biome-ignore lint/suspicious/noExplicitAny: JSON answers
type Json = any;

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

describe('history: earnings, spending and the hub over time, for signed-in identities', () => {
  let stack: TestStack;
  let hub: TestStack['hub'];
  let client: HubClient;
  let info: { hub: Hex; chainId: number; operator: Hex; publicKey: Hex; fee: number; stake: string };
  const operator = () => privateKeyToAccount(stack.chain.operatorKey as Hex);

  before(async function () {
    this.timeout(120_000);
    stack = await startTestStack('history');
    hub = stack.hub;
    client = new HubClient({ url: hub.url });
    info = (await (await fetch(`${hub.url}/v1/info`)).json()) as typeof info;
  });
  after(() => stack?.stop());

  /** A consumer with a channel of `balance` in the books, as the chain follower would record a deposit. */
  async function consumer(balance = 10n ** 18n) {
    const account = privateKeyToAccount(generatePrivateKey());
    await stack.db.pool.query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
      toBytea(account.address.toLowerCase()),
      balance.toString(),
    ]);
    return { account, signed: 0n };
  }
  type Consumer = Awaited<ReturnType<typeof consumer>>;
  const provider = () => ({
    account: privateKeyToAccount(generatePrivateKey()),
    previous: undefined as Hex | undefined,
  });
  type Provider = ReturnType<typeof provider>;
  const agreement = (c: Consumer, p: Provider) => ({ c, p, id: bytesToHex(randomBytes(32)), total: 0n });
  type Agreement = ReturnType<typeof agreement>;

  /** The wire request of the agreement's next invoice, raised by `increment`, booked as the hub will credit it. */
  async function next(a: Agreement, increment: bigint) {
    const { preimage, hashlock } = newHashlock();
    const total = a.c.signed + increment;
    const promise = await signConsumerPromise(a.c.account, {
      hub: info.hub,
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
    a.c.signed = total;
    a.total += increment;
    a.p.previous = preimage;
    return body;
  }

  async function exchange(a: Agreement, increment: bigint): Promise<Json> {
    const response = await fetch(`${hub.url}/v1/exchange`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(await next(a, increment)),
    });
    const answer = await response.json();
    assert.equal(response.status, 200, JSON.stringify(answer));
    return answer;
  }

  // Yesterday to tomorrow (UTC), fixed when the suite starts: every exchange of the run is in it even
  // when the run crosses midnight.
  const start = Math.floor(Date.now() / DAY) * DAY;
  const today = () => ({ from: new Date(start - DAY), to: new Date(start + 2 * DAY) });

  const get = async (path: string, token?: string) => {
    const response = await fetch(`${hub.url}${path}`, {
      headers: token ? { authorization: `Bearer ${token}` } : {},
    });
    return { status: response.status, headers: response.headers, text: await response.text() };
  };
  const signIn = (account: PrivateKeyAccount) => client.history.signIn(account, { chainId: info.chainId });

  describe('figures', () => {
    const consumers: Consumer[] = [];
    const providers: Provider[] = [];
    /** What each consumer paid each provider: `${provider}:${consumer}` → amount. */
    const paid = new Map<string, bigint>();
    const exchanges = new Map<string, number>();

    before(async function () {
      this.timeout(120_000);
      consumers.push(await consumer(), await consumer());
      providers.push(provider(), provider());
      const plan: Array<[number, number, bigint[]]> = [
        [0, 0, [10n, 25n, 5n]],
        [0, 1, [7n]],
        [1, 0, [100n, 1n]],
      ];
      for (const [p, c, increments] of plan) {
        const a = agreement(consumers[c]!, providers[p]!);
        for (const increment of increments) {
          await exchange(a, increment);
          const key = `${providers[p]!.account.address}:${consumers[c]!.account.address}`;
          paid.set(key, (paid.get(key) ?? 0n) + increment);
          exchanges.set(key, (exchanges.get(key) ?? 0) + 1);
        }
      }
    });

    const earned = (p: Provider) =>
      [...paid].filter(([key]) => key.startsWith(p.account.address)).reduce((sum, [, amount]) => sum + amount, 0n);

    it("answers a provider's earnings per hour of today, with the fee and its books, to the provider's session", async () => {
      const [p0] = providers as [Provider];
      const session = await signIn(p0.account);
      assert.equal(session.address, p0.account.address);
      assert.equal(session.operator, false);
      const history = await client.history.provider(p0.account.address, { ...today(), bucket: 'hour' }, session);
      assert.equal(history.buckets.length, 72);
      const hour = new Date(Math.floor(Date.now() / HOUR) * HOUR).toISOString();
      const nonEmpty = history.buckets.filter((bucket) => bucket.amount > 0n);
      // The exchanges were all made in this hour (or, at an hour's turn, the one before).
      assert.ok(nonEmpty.length >= 1 && nonEmpty.length <= 2, `${nonEmpty.length} hours`);
      assert.ok(nonEmpty.every((bucket) => bucket.start <= hour));
      assert.equal(history.total.amount, earned(p0));
      assert.equal(history.total.amount, 47n);
      assert.equal(history.total.exchanges, 4);
      assert.equal(history.fee, info.fee);
      assert.equal(history.total.hubFee, (47n * BigInt(info.fee)) / 10_000n);
      for (const bucket of history.buckets) assert.equal(bucket.hubFee, (bucket.amount * BigInt(info.fee)) / 10_000n);
      assert.deepEqual(history.books, { promised: 47n, settled: 0n, unsettled: 47n });

      const days = await client.history.provider(
        p0.account.address,
        { from: new Date(start - 7 * DAY), to: today().to },
        session,
      );
      assert.equal(days.bucket, 'day');
      assert.equal(days.buckets.length, 9);
      assert.deepEqual(
        days.buckets.slice(0, 6).map((bucket) => bucket.amount),
        [0n, 0n, 0n, 0n, 0n, 0n],
      );
      assert.equal(
        days.buckets.reduce((sum, bucket) => sum + bucket.amount, 0n),
        47n,
      );
    });

    it('answers what each consumer paid a provider, and what a consumer paid each provider and per hour', async () => {
      const [p0, p1] = providers as [Provider, Provider];
      const [c0, c1] = consumers as [Consumer, Consumer];
      // A query object that also carries a bucket (as a page's state may) still asks for the list alone.
      const withBucket = { ...today(), bucket: 'hour' as const };
      const { consumers: byConsumer } = await client.history.providerConsumers(
        p0.account.address,
        withBucket,
        await signIn(p0.account),
      );
      assert.deepEqual(byConsumer, [
        { consumer: c0.account.address, amount: 40n, exchanges: 3 },
        { consumer: c1.account.address, amount: 7n, exchanges: 1 },
      ]);
      const session = await signIn(c0.account);
      const spending = await client.history.consumer(c0.account.address, today(), session);
      assert.deepEqual(spending.total, { amount: 141n, exchanges: 5 });
      assert.equal(spending.buckets.length, 3);
      const { providers: byProvider } = await client.history.consumerProviders(c0.account.address, today(), session);
      assert.deepEqual(byProvider, [
        { provider: p1.account.address, amount: 101n, exchanges: 2 },
        { provider: p0.account.address, amount: 40n, exchanges: 3 },
      ]);
    });

    it("answers the hub's volume, money and batches to the operator's session only", async () => {
      const session = await signIn(operator());
      assert.equal(session.operator, true);
      let history = await client.history.hub({ ...today(), bucket: 'hour' }, session);
      assert.deepEqual(history.total, { amount: 148n, exchanges: 6 });
      assert.equal(history.buckets.length, 72);
      // The hub samples its money when it starts, then once a minute.
      for (const deadline = Date.now() + 20_000; history.money.length === 0 && Date.now() < deadline; ) {
        await new Promise((resolve) => setTimeout(resolve, 200));
        history = await client.history.hub({ ...today(), bucket: 'hour' }, session);
      }
      const [sample] = history.money;
      assert.ok(sample, 'a sample of the hub money within 20 s');
      assert.equal(sample.stake, BigInt(info.stake));
      assert.deepEqual(history.batches, []);

      const provider = await signIn(providers[0]!.account);
      await assert.rejects(client.history.hub(today(), provider), (error: unknown) => {
        assert.ok(error instanceof HubError && error.code === 'FORBIDDEN', String(error));
        return true;
      });
    });

    it('downloads earnings and settlements as CSV', async () => {
      const [p0] = providers as [Provider];
      const session = await signIn(p0.account);
      const range = today();
      const query = `from=${range.from.toISOString()}&to=${range.to.toISOString()}&bucket=hour&format=csv`;
      const answer = await get(`/v1/history/providers/${p0.account.address}?${query}`, session.token);
      assert.equal(answer.status, 200, answer.text);
      assert.match(answer.headers.get('content-type') ?? '', /^text\/csv/);
      const day = range.from.toISOString().slice(0, 10);
      assert.equal(
        answer.headers.get('content-disposition'),
        `attachment; filename="chit-earnings-${p0.account.address}-${day}-${range.to.toISOString().slice(0, 10)}.csv"`,
      );
      const lines = answer.text.trimEnd().split('\r\n');
      assert.equal(lines[0], 'start,amount,hubFee,exchanges');
      assert.equal(lines.length, 73);
      const total = lines.slice(1).reduce((sum, line) => sum + BigInt(line.split(',')[1]!), 0n);
      assert.equal(total, 47n);
      assert.equal(
        await client.history.csv('earnings', p0.account.address, { ...range, bucket: 'hour' }, session),
        answer.text,
      );
      const settlements = await client.history.csv('settlements', p0.account.address, range, session);
      assert.equal(
        settlements,
        'id,status,total,amount,hubFee,relayerFee,payout,txHash,gasUsed,errorCode,error,createdAt,updatedAt\r\n',
      );
    });

    it('keeps the rollups equal to the exchanges under concurrent batches, and adds nothing for a refused or repeated one', async function () {
      this.timeout(120_000);
      const sellers = [provider(), provider(), provider(), provider()];
      const payers = await Promise.all(sellers.map(async () => [await consumer(), await consumer()]));
      // Each provider's exchanges go in order (its previous R goes with the next), and so do each
      // consumer's promises (its cumulative total); the providers, each with its own consumers, run at
      // once, so their batches commit side by side.
      await Promise.all(
        sellers.map(async (seller, i) => {
          const agreements = payers[i]!.map((payer) => agreement(payer, seller));
          for (let round = 0; round < 5; round++) {
            for (const a of agreements) await exchange(a, BigInt(1 + round));
          }
        }),
      );
      // A repeated request is answered again and credits nothing.
      const again = agreement(payers[0]![0]!, sellers[0]!);
      const body = await next(again, 7n);
      for (let i = 0; i < 2; i++) {
        const response = await fetch(`${hub.url}/v1/exchange`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        });
        assert.equal(response.status, 200);
      }
      const refused = agreement(payers[0]![0]!, sellers[0]!);
      const overspend = await fetch(`${hub.url}/v1/exchange`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(await next(refused, 10n ** 19n)),
      });
      assert.equal(overspend.status, 409);
      const { rows } = await stack.db.pool.query(
        `SELECT (SELECT sum(increment) FROM exchanges)::text AS exchanged,
                (SELECT sum(amount) FROM hub_hourly)::text AS hub,
                (SELECT sum(amount) FROM provider_hourly)::text AS providers,
                (SELECT sum(amount) FROM consumer_hourly)::text AS consumers,
                (SELECT sum(amount) FROM pair_daily)::text AS pairs,
                (SELECT count(*) FROM exchanges)::text AS n,
                (SELECT sum(exchanges) FROM hub_hourly)::text AS counted`,
      );
      const [figures] = rows;
      assert.equal(
        (
          await stack.db.pool.query('SELECT count(*)::int AS n FROM exchanges WHERE provider = $1 AND increment = 7', [
            toBytea(sellers[0]!.account.address.toLowerCase()),
          ])
        ).rows[0].n,
        1,
      );
      assert.equal(figures.hub, figures.exchanged);
      assert.equal(figures.providers, figures.exchanged);
      assert.equal(figures.consumers, figures.exchanged);
      assert.equal(figures.pairs, figures.exchanged);
      assert.equal(figures.counted, figures.n);
      const perProvider = await stack.db.pool.query(
        `SELECT e.provider, sum(e.increment)::text AS exchanged, (SELECT sum(amount) FROM provider_hourly r WHERE r.provider = e.provider)::text AS rolled
           FROM exchanges e GROUP BY e.provider`,
      );
      for (const row of perProvider.rows) assert.equal(row.rolled, row.exchanged);
    });
  });

  describe('sessions (attacks from outside, with their own keys)', () => {
    const range = () => {
      const { from, to } = today();
      return `from=${from.toISOString()}&to=${to.toISOString()}`;
    };

    async function nonce(): Promise<string> {
      return ((await (await fetch(`${hub.url}/v1/auth/nonce`)).json()) as Json).nonce;
    }

    async function session(
      account: PrivateKeyAccount,
      overrides: Partial<Parameters<typeof createSiweMessage>[0]> = {},
      signer: PrivateKeyAccount = account,
    ) {
      const message = createSiweMessage({
        address: account.address,
        chainId: info.chainId,
        domain: new URL(hub.url).host,
        uri: hub.url,
        nonce: await nonce(),
        version: '1',
        issuedAt: new Date(),
        ...overrides,
      });
      const signature = await signer.signMessage({ message });
      const post = async () => {
        const response = await fetch(`${hub.url}/v1/auth/session`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ message, signature }),
        });
        return { status: response.status, body: (await response.json()) as Json };
      };
      return { message, signature, post };
    }

    const refusedAs = (answer: { status: number; body: Json }, status: number, code: string, reason?: string) => {
      assert.equal(answer.status, status, JSON.stringify(answer.body));
      assert.equal(answer.body.code, code);
      if (reason) assert.equal(answer.body.details.reason, reason);
    };

    it('refuses a history without a session, with a forged or a garbled token', async () => {
      const account = privateKeyToAccount(generatePrivateKey());
      const path = `/v1/history/providers/${account.address}?${range()}`;
      const none = await get(path);
      refusedAs({ status: none.status, body: JSON.parse(none.text) }, 401, 'UNAUTHORIZED', 'missing');

      // A token of another identity's, its claims rewritten to this one: the MAC no longer holds.
      const other = await signIn(privateKeyToAccount(generatePrivateKey()));
      const [prefix, body, mac] = other.token.split('.') as [string, string, string];
      const claims = JSON.parse(Buffer.from(body, 'base64url').toString());
      const forged = `${prefix}.${Buffer.from(JSON.stringify({ ...claims, a: account.address, o: true })).toString('base64url')}.${mac}`;
      const answer = await get(path, forged);
      refusedAs({ status: answer.status, body: JSON.parse(answer.text) }, 401, 'UNAUTHORIZED', 'forged');
      const hubAnswer = await get(`/v1/history/hub?${range()}`, forged);
      refusedAs({ status: hubAnswer.status, body: JSON.parse(hubAnswer.text) }, 401, 'UNAUTHORIZED', 'forged');
      const garbled = await get(path, 'not-a-token');
      refusedAs({ status: garbled.status, body: JSON.parse(garbled.text) }, 401, 'UNAUTHORIZED', 'malformed');
    });

    it("refuses another identity's history and the hub's to anyone but the operator", async () => {
      const mallory = await signIn(privateKeyToAccount(generatePrivateKey()));
      const victim = privateKeyToAccount(generatePrivateKey()).address;
      for (const path of [
        `/v1/history/providers/${victim}?${range()}`,
        `/v1/history/providers/${victim}/settlements?${range()}`,
        `/v1/history/providers/${victim}/consumers?${range()}`,
        `/v1/history/consumers/${victim}?${range()}`,
        `/v1/history/consumers/${victim}/providers?${range()}&format=csv`,
        `/v1/history/hub?${range()}`,
      ]) {
        const answer = await get(path, mallory.token);
        refusedAs({ status: answer.status, body: JSON.parse(answer.text) }, 403, 'FORBIDDEN');
      }
    });

    it('opens one session per nonce: a replayed sign-in is refused', async () => {
      const account = privateKeyToAccount(generatePrivateKey());
      const signed = await session(account);
      const first = await signed.post();
      assert.equal(first.status, 200, JSON.stringify(first.body));
      refusedAs(await signed.post(), 401, 'UNAUTHORIZED', 'nonce');
    });

    it('refuses a message signed by another key, for another host or chain, stale, expired, or with a nonce it never issued', async () => {
      const account = privateKeyToAccount(generatePrivateKey());
      const mallory = privateKeyToAccount(generatePrivateKey());
      refusedAs(await (await session(account, {}, mallory)).post(), 401, 'UNAUTHORIZED', 'signature');
      refusedAs(await (await session(account, { domain: 'evil.example' })).post(), 401, 'UNAUTHORIZED', 'domain');
      refusedAs(await (await session(account, { chainId: info.chainId + 1 })).post(), 401, 'UNAUTHORIZED', 'chain');
      const stale = new Date(Date.now() - 3_600_000);
      refusedAs(await (await session(account, { issuedAt: stale })).post(), 401, 'UNAUTHORIZED', 'issuedAt');
      const expired = new Date(Date.now() - 1_000);
      refusedAs(await (await session(account, { expirationTime: expired })).post(), 401, 'UNAUTHORIZED', 'expired');
      refusedAs(await (await session(account, { nonce: 'abcdefgh12345678' })).post(), 401, 'UNAUTHORIZED', 'nonce');
      // Each refused sign-in left its nonce unspent but useless to anyone without the key; a good one still works.
      assert.equal((await (await session(account)).post()).status, 200);
    });

    it("with AUTH_DOMAINS, refuses a message signed for another site even when the request's Host names that site", async () => {
      // A phishing site gets a nonce from the hub, has the victim sign a message for its own domain, and
      // replays it here with a Host header of its own: the hub's configured names decide, not Host.
      const auth = new AuthService(
        new AuthRepository(stack.db.pool),
        new SessionTokens(stack.chain.operatorKey as Hex),
        info.chainId,
        info.operator,
        ['hub.example'],
      );
      const victim = privateKeyToAccount(generatePrivateKey());
      const signed = async (domain: string) => {
        const { nonce } = await auth.nonce();
        const message = createSiweMessage({
          address: victim.address,
          chainId: info.chainId,
          domain,
          uri: `https://${domain}`,
          nonce,
          version: '1',
          issuedAt: new Date(),
        });
        return { message, signature: await victim.signMessage({ message }) };
      };
      await assert.rejects(auth.signIn(await signed('evil.example'), 'evil.example'), (error: unknown) => {
        assert.ok(error instanceof HubRefusal && error.code === 'UNAUTHORIZED', String(error));
        assert.equal(error.details.reason, 'domain');
        return true;
      });
      const session = await auth.signIn(await signed('hub.example'), '127.0.0.1:1234');
      assert.equal(session.address, victim.address);
    });

    it('refuses a malformed sign-in or range with MALFORMED naming the field', async () => {
      const answer = await fetch(`${hub.url}/v1/auth/session`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ message: 'hello', signature: '0x00' }),
      });
      const body = (await answer.json()) as Json;
      assert.equal(answer.status, 400);
      assert.equal(body.details.path, 'signature');

      const account = privateKeyToAccount(generatePrivateKey());
      const own: HubSession = await signIn(account);
      const { from, to } = today();
      for (const [query, path] of [
        [`from=${to.toISOString()}&to=${from.toISOString()}`, 'to'],
        [`from=${from.toISOString()}&to=${new Date(from.getTime() + 40 * DAY).toISOString()}&bucket=hour`, 'to'],
        [`from=${from.toISOString()}&to=${to.toISOString()}&bucket=week`, 'bucket'],
        [`from=yesterday&to=${to.toISOString()}`, 'from'],
        [`to=${to.toISOString()}`, 'from'],
      ] as const) {
        const refused = await get(`/v1/history/providers/${account.address}?${query}`, own.token);
        const error = JSON.parse(refused.text);
        assert.equal(refused.status, 400, refused.text);
        assert.equal(error.code, 'MALFORMED');
        assert.equal(error.details.path, path, refused.text);
      }
    });
  });
});
