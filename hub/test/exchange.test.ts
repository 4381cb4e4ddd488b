import assert from 'node:assert/strict';
import {
  encodeMessage,
  newHashlock,
  type SignedConsumerPromise,
  sealPreimage,
  signRecoveryRequest,
  verifyHubPromise,
} from '@chit/sdk';
import type { Pool } from 'pg';
import type { Hex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { BooksService } from '../src/books/books.service';
import { OperatorSigner } from '../src/crypto/operator-signer';
import { toBytea } from '../src/db/bytes';
import { decodeWire } from '../src/errors/decode-wire';
import { HubError } from '../src/errors/hub-error';
import { ExchangeService } from '../src/exchange/exchange.service';
import { BooksRepository } from '../src/repositories/books.repository';
import { ExchangeRepository, RevealRepository } from '../src/repositories/exchange.repository';
import {
  consumerBooks,
  ether,
  exchangeBody,
  consumerWith as insertConsumer,
  newProvider,
  promiseOf,
  testScope,
} from './support/exchanges';
import { createTestDatabase } from './support/postgres';

const scope = testScope;

describe('exchange', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let pool: Pool;
  const operator = new OperatorSigner(generatePrivateKey());
  let service: ExchangeService;
  // Bodies as the HTTP layer hands them over, decoded at the edge as the controller decodes them.
  const exchange = async (body: unknown) => service.exchange(decodeWire('exchangeRequest', body));
  const reveal = async (body: unknown) => service.reveal(decodeWire('reveal', body));
  const recover = async (body: unknown) => service.recover(decodeWire('recoveryRequest', body));

  before(async () => {
    db = await createTestDatabase();
    pool = db.pool;
    service = new ExchangeService(scope, new ExchangeRepository(pool), new RevealRepository(pool), operator, {
      maxBatch: 64,
      concurrency: 4,
    });
  });
  after(() => db.drop());

  const consumerWith = (balance: bigint, exitAmount = 0n) => insertConsumer(pool, balance, exitAmount);
  const provider = newProvider;
  const promise = promiseOf;
  const request = (signed: SignedConsumerPromise, preimage: Hex, extra: Record<string, unknown> = {}) =>
    exchangeBody(operator.publicKey, signed, preimage, extra);

  async function rejects(body: unknown, code: string) {
    await assert.rejects(exchange(body), (error: unknown) => {
      assert.ok(error instanceof HubError, String(error));
      assert.equal(error.code, code, error.message);
      return true;
    });
  }

  const books = (consumer: string) => consumerBooks(pool, consumer);

  it('gives the provider a hub promise for the increment, signed by the operator', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const { signed, preimage } = await promise(consumer, p, ether(1), ether(1));
    const { hubPromise } = await exchange(request(signed, preimage));
    assert.equal(hubPromise.total, ether(1));
    assert.equal(hubPromise.hashlock, signed.hashlock);
    assert.equal(hubPromise.provider, p.account.address);
    assert.ok(verifyHubPromise(hubPromise, operator.address));
  });

  it('answers a repeated request with the same promise and credits once', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const { signed, preimage } = await promise(consumer, p, ether(2), ether(2));
    const first = await exchange(request(signed, preimage));
    const again = await exchange(request(signed, preimage));
    assert.deepEqual(again, first);
    assert.deepEqual(await books(consumer.address), {
      credited: ether(2).toString(),
      signed_total: ether(2).toString(),
    });
  });

  it('credits promises from several providers arriving out of order', async () => {
    const consumer = await consumerWith(ether(10));
    const [a, b] = [provider(), provider()];
    const first = await promise(consumer, a, ether(1), ether(1)); // consumer total 1 for A
    const second = await promise(consumer, b, ether(3), ether(2)); // consumer total 3 for B
    await exchange(request(second.signed, second.preimage));
    await exchange(request(first.signed, first.preimage));
    assert.deepEqual(await books(consumer.address), {
      credited: ether(3).toString(),
      signed_total: ether(3).toString(),
    });
  });

  it('refuses a consumer that promises two providers the same total (OVERSPEND)', async () => {
    const consumer = await consumerWith(ether(10));
    const [a, b] = [provider(), provider()];
    const toA = await promise(consumer, a, ether(1), ether(1));
    const toB = await promise(consumer, b, ether(1), ether(1));
    await exchange(request(toA.signed, toA.preimage));
    await rejects(request(toB.signed, toB.preimage), 'OVERSPEND');
    assert.deepEqual(await books(consumer.address), {
      credited: ether(1).toString(),
      signed_total: ether(1).toString(),
    });
  });

  it('refuses promises beyond the balance minus a pending exit (OVERSPEND)', async () => {
    const consumer = await consumerWith(ether(5), ether(3));
    const p = provider();
    const ok = await promise(consumer, p, ether(2), ether(2));
    await exchange(request(ok.signed, ok.preimage));
    await reveal({ ...scope, provider: p.account.address, preimage: ok.preimage });
    const over = await promise(consumer, p, ether(3), ether(3));
    await rejects(request(over.signed, over.preimage), 'OVERSPEND');
  });

  it('refuses a promise that adds nothing to its agreement (PROMISE_TOO_LOW)', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const first = await promise(consumer, p, ether(2), ether(2));
    await exchange(request(first.signed, first.preimage));
    await reveal({ ...scope, provider: p.account.address, preimage: first.preimage });
    const stale = await promise(consumer, p, ether(3), ether(2));
    await rejects(request(stale.signed, stale.preimage), 'PROMISE_TOO_LOW');
  });

  describe("the consumer's money", () => {
    const money = (address: Hex) =>
      new BooksService(scope, new BooksRepository(pool), new RevealRepository(pool), operator).consumer(address);
    const finney = (n: number) => BigInt(n) * 10n ** 15n;

    async function overspend(body: unknown) {
      try {
        await exchange(body);
      } catch (error) {
        assert.ok(error instanceof HubError && error.code === 'OVERSPEND', String(error));
        return error.details;
      }
      assert.fail('expected OVERSPEND');
    }

    it('refuses a promise signed for more than the channel holds, even when its increment fits', async () => {
      const consumer = await consumerWith(ether(2));
      const p = provider();
      // A total of 3 lets the hub (or anyone holding it) collect 3: the channel cannot pay that.
      const over = await promise(consumer, p, ether(3), ether(1));
      assert.deepEqual(await overspend(request(over.signed, over.preimage)), {
        owed: ether(3).toString(),
        held: ether(2).toString(),
        available: ether(2).toString(),
      });
      assert.deepEqual(await books(consumer.address), { credited: '0', signed_total: '0' });
    });

    it('credits 30 racing providers only as far as the channel pays, so the hub collects exactly what it credited', async () => {
      const consumer = await consumerWith(finney(2050));
      const providers = Array.from({ length: 30 }, provider);
      const promises = [];
      for (const [i, p] of providers.entries()) {
        promises.push(await promise(consumer, p, finney(100 * (i + 1)), finney(100)));
      }
      const results = await Promise.allSettled(
        promises.map(({ signed, preimage }) => exchange(request(signed, preimage))),
      );
      assert.equal(results.filter((r) => r.status === 'fulfilled').length, 20);
      for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as HubError).code, 'OVERSPEND');
      // What the hub can collect (the highest total it holds) is what it credited; the rest is the consumer's.
      assert.deepEqual(await books(consumer.address), {
        credited: finney(2000).toString(),
        signed_total: finney(2000).toString(),
      });
      const view = await money(consumer.address);
      assert.equal(view.available, finney(50));
      assert.equal(view.latestPromise?.total, finney(2000));
    });

    it('answers no negative amount when a pending exit exceeds what the channel holds beyond its promises', async () => {
      const consumer = await consumerWith(ether(5));
      const p = provider();
      const paid = await promise(consumer, p, ether(2), ether(2));
      await exchange(request(paid.signed, paid.preimage));
      await pool.query('UPDATE consumers SET exit_amount = $2 WHERE address = $1', [
        toBytea(consumer.address.toLowerCase()),
        ether(4).toString(),
      ]);
      const more = await promise(consumer, p, ether(3), ether(3));
      assert.deepEqual(await overspend(request(more.signed, more.preimage)), {
        owed: ether(3).toString(),
        held: ether(1).toString(),
        available: '0',
      });
      assert.equal((await money(consumer.address)).available, 0n);
    });
  });

  describe('the preimage box', () => {
    const strangerKey = () => privateKeyToAccount(generatePrivateKey()).publicKey;
    const stored = async (hashlock: Hex) =>
      (await pool.query('SELECT preimage FROM exchanges WHERE hashlock = $1', [toBytea(hashlock)])).rows[0];

    it('refuses a box sealed to another key or holding another R (INVALID_PREIMAGE_BOX) and changes nothing', async () => {
      const consumer = await consumerWith(ether(10));
      const p = provider();
      const { signed, preimage } = await promise(consumer, p, ether(3), ether(3));
      const good = request(signed, preimage);
      await rejects({ ...good, encryptedPreimage: sealPreimage(strangerKey(), preimage) }, 'INVALID_PREIMAGE_BOX');
      const otherR = sealPreimage(operator.publicKey, newHashlock().preimage);
      await rejects({ ...good, encryptedPreimage: otherR }, 'INVALID_PREIMAGE_BOX');
      const garbage = `0x${'ab'.repeat(93)}`;
      await rejects({ ...good, encryptedPreimage: garbage }, 'INVALID_PREIMAGE_BOX');
      assert.deepEqual(await books(consumer.address), { credited: '0', signed_total: '0' });
      assert.equal(await stored(signed.hashlock), undefined);
    });

    it('records R with the exchange: the hub can collect what it pays, and nothing is left to reveal', async () => {
      const consumer = await consumerWith(ether(10));
      const p = provider();
      const first = await promise(consumer, p, ether(1), ether(1));
      await exchange(request(first.signed, first.preimage));
      assert.deepEqual(await stored(first.signed.hashlock), { preimage: Buffer.from(first.preimage.slice(2), 'hex') });
      const second = await promise(consumer, p, ether(2), ether(2));
      const { hubPromise } = await exchange(request(second.signed, second.preimage));
      assert.equal(hubPromise.total, ether(2));
      // Revealing is still accepted, and harmless.
      assert.deepEqual(await reveal({ ...scope, provider: p.account.address, preimage: first.preimage }), {
        revealed: true,
      });
    });

    it("lets nobody spoil a promise by exchanging it first with a bad box: the provider's own request is credited", async () => {
      const consumer = await consumerWith(ether(10));
      const p = provider();
      const { signed, preimage } = await promise(consumer, p, ether(2), ether(2));
      // The consumer holds its own promise, but not R: whatever box it seals is refused.
      await rejects(
        { ...request(signed, preimage), encryptedPreimage: sealPreimage(strangerKey(), preimage) },
        'INVALID_PREIMAGE_BOX',
      );
      const guessed = sealPreimage(operator.publicKey, newHashlock().preimage);
      await rejects({ ...request(signed, preimage), encryptedPreimage: guessed }, 'INVALID_PREIMAGE_BOX');
      const first = await exchange(request(signed, preimage));
      assert.equal(first.hubPromise.total, ether(2));
      assert.deepEqual(await stored(signed.hashlock), { preimage: Buffer.from(preimage.slice(2), 'hex') });
      // A repeat with another box of the same R gets the same answer; a repeat with a bad box is refused.
      assert.deepEqual(await exchange(request(signed, preimage)), first);
      await rejects({ ...request(signed, preimage), encryptedPreimage: guessed }, 'INVALID_PREIMAGE_BOX');
      assert.deepEqual(await books(consumer.address), {
        credited: ether(2).toString(),
        signed_total: ether(2).toString(),
      });
    });

    it('still asks for the R of an exchange recorded unrevealed before boxes were opened at exchange time', async () => {
      const consumer = await consumerWith(ether(10));
      const p = provider();
      const first = await promise(consumer, p, ether(1), ether(1));
      await exchange(request(first.signed, first.preimage));
      // As a hub of an earlier version left it: R unknown, the provider marked as owing its reveal.
      await pool.query('UPDATE exchanges SET preimage = NULL, encrypted_preimage = $2 WHERE hashlock = $1', [
        toBytea(first.signed.hashlock),
        toBytea(sealPreimage(strangerKey(), first.preimage)),
      ]);
      await pool.query('UPDATE providers SET unrevealed_hashlock = $2 WHERE address = $1', [
        toBytea(p.account.address.toLowerCase()),
        toBytea(first.signed.hashlock),
      ]);
      const second = await promise(consumer, p, ether(2), ether(2));
      await rejects(request(second.signed, second.preimage), 'PREVIOUS_R_NOT_REVEALED');
      const { hubPromise } = await exchange(
        request(second.signed, second.preimage, { previousPreimage: first.preimage }),
      );
      assert.equal(hubPromise.total, ether(2));
      assert.deepEqual(await stored(first.signed.hashlock), { preimage: Buffer.from(first.preimage.slice(2), 'hex') });
    });
  });

  it('refuses bad input with a typed error and changes nothing', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const { signed, preimage } = await promise(consumer, p, ether(1), ether(1));
    const good = request(signed, preimage);
    await rejects({ ...good, extra: 1 }, 'MALFORMED');
    await rejects({ ...good, promise: { ...good.promise, total: '-1' } }, 'MALFORMED');
    await rejects({ ...good, promise: { ...good.promise, chainId: 1 } }, 'WRONG_CHAIN');
    await rejects({ ...good, promise: { ...good.promise, hub: consumer.address } }, 'WRONG_HUB');
    await rejects({ ...good, promise: { ...good.promise, total: ether(2).toString() } }, 'INVALID_SIGNATURE');
    const stranger = privateKeyToAccount(generatePrivateKey());
    const unknown = await promise(stranger, p, ether(1), ether(1));
    await rejects(request(unknown.signed, unknown.preimage), 'UNKNOWN_CONSUMER');
    assert.deepEqual(await books(consumer.address), { credited: '0', signed_total: '0' });
  });

  it('gives a provider that lost its store its latest promise and R back', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const { signed, preimage } = await promise(consumer, p, ether(4), ether(4));
    const { hubPromise } = await exchange(request(signed, preimage));
    const now = BigInt(Math.floor(Date.now() / 1000));
    const recovery = await signRecoveryRequest(p.account, { ...scope, provider: p.account.address, issuedAt: now });
    const recovered = await recover(encodeMessage(recovery));
    assert.deepEqual(recovered, { hubPromise, preimage });
    const old = await signRecoveryRequest(p.account, { ...scope, provider: p.account.address, issuedAt: now - 3600n });
    await assert.rejects(recover(encodeMessage(old)), /issuedAt/);
  });

  it('never over-credits one consumer paid by 50 providers at once', async () => {
    const consumer = await consumerWith(ether(30));
    const providers = Array.from({ length: 50 }, provider);
    // Each provider bills 1; the consumer signs totals 1..50, but its channel holds only 30.
    const promises = [];
    for (const [i, p] of providers.entries()) promises.push(await promise(consumer, p, ether(i + 1), ether(1)));
    const results = await Promise.allSettled(
      promises.map(({ signed, preimage }) => exchange(request(signed, preimage))),
    );
    const accepted = results.filter((r) => r.status === 'fulfilled').length;
    assert.equal(accepted, 30);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as HubError).code, 'OVERSPEND');
    assert.equal((await books(consumer.address)).credited, ether(30).toString());
  });
});
