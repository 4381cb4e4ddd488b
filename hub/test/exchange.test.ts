import assert from 'node:assert/strict';
import {
  newHashlock,
  type SignedConsumerPromise,
  sealPreimage,
  signConsumerPromise,
  verifyHubPromise,
} from '@chit/sdk';
import type { Pool } from 'pg';
import { type Hex, keccak256, toHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { OperatorSigner } from '../src/crypto/operator-signer';
import { toBytea } from '../src/db/bytes';
import { HubError } from '../src/errors/hub-error';
import { ExchangeService } from '../src/exchange/exchange.service';
import { ExchangeRepository, RevealRepository } from '../src/repositories/exchange.repository';
import { createTestDatabase } from './support/postgres';

const scope = { hub: '0x4859E602e6ffac40ef337bB9B9Df6a4D9CF43b51', chainId: 31337 } as const;
const ether = (n: number) => BigInt(n) * 10n ** 18n;

describe('exchange', () => {
  let db: Awaited<ReturnType<typeof createTestDatabase>>;
  let pool: Pool;
  const operator = new OperatorSigner(generatePrivateKey());
  let service: ExchangeService;

  before(async () => {
    db = await createTestDatabase();
    pool = db.pool;
    service = new ExchangeService(scope, new ExchangeRepository(pool), new RevealRepository(pool), operator, {
      maxBatch: 64,
      concurrency: 4,
    });
  });
  after(() => db.drop());

  /** A consumer with a channel of `balance`, as the chain follower would record it. */
  async function consumerWith(balance: bigint, exitAmount = 0n) {
    const account = privateKeyToAccount(generatePrivateKey());
    await pool.query('INSERT INTO consumers (address, balance, exit_amount) VALUES ($1, $2, $3)', [
      toBytea(account.address.toLowerCase()),
      balance.toString(),
      exitAmount.toString(),
    ]);
    return account;
  }

  /** A provider with its own agreement id and the R of each invoice it sends. */
  function provider() {
    const account = privateKeyToAccount(generatePrivateKey());
    return { account, agreementId: keccak256(toHex(account.address)) as Hex, preimages: [] as Hex[] };
  }

  async function promise(
    consumer: ReturnType<typeof privateKeyToAccount>,
    p: ReturnType<typeof provider>,
    total: bigint,
    agreementTotal: bigint,
    overrides: Partial<SignedConsumerPromise> = {},
  ) {
    const { preimage, hashlock } = newHashlock();
    p.preimages.push(preimage);
    const signed = await signConsumerPromise(consumer, {
      ...scope,
      consumer: consumer.address,
      total,
      hashlock,
      agreement: { provider: p.account.address, id: p.agreementId, total: agreementTotal },
      ...overrides,
    });
    return { signed, preimage };
  }

  const request = (signed: SignedConsumerPromise, preimage: Hex, extra: Record<string, unknown> = {}) => ({
    promise: {
      ...signed,
      total: signed.total.toString(),
      agreement: { ...signed.agreement, total: signed.agreement.total.toString() },
    },
    encryptedPreimage: sealPreimage(operator.publicKey, preimage),
    ...extra,
  });

  async function rejects(body: unknown, code: string) {
    await assert.rejects(service.exchange(body), (error: unknown) => {
      assert.ok(error instanceof HubError, String(error));
      assert.equal(error.code, code, error.message);
      return true;
    });
  }

  const books = async (consumer: string) =>
    (
      await pool.query('SELECT credited::text, signed_total::text FROM consumers WHERE address = $1', [
        toBytea(consumer.toLowerCase()),
      ])
    ).rows[0];

  it('gives the provider a hub promise for the increment, signed by the operator', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const { signed, preimage } = await promise(consumer, p, ether(1), ether(1));
    const { hubPromise } = await service.exchange(request(signed, preimage));
    assert.equal(hubPromise.total, ether(1));
    assert.equal(hubPromise.hashlock, signed.hashlock);
    assert.equal(hubPromise.provider, p.account.address);
    assert.ok(verifyHubPromise(hubPromise, operator.address));
  });

  it('answers a repeated request with the same promise and credits once', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const { signed, preimage } = await promise(consumer, p, ether(2), ether(2));
    const first = await service.exchange(request(signed, preimage));
    const again = await service.exchange(request(signed, preimage));
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
    await service.exchange(request(second.signed, second.preimage));
    await service.exchange(request(first.signed, first.preimage));
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
    await service.exchange(request(toA.signed, toA.preimage));
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
    await service.exchange(request(ok.signed, ok.preimage));
    await service.reveal({ ...scope, provider: p.account.address, preimage: ok.preimage });
    const over = await promise(consumer, p, ether(3), ether(3));
    await rejects(request(over.signed, over.preimage), 'OVERSPEND');
  });

  it('refuses a promise that adds nothing to its agreement (PROMISE_TOO_LOW)', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const first = await promise(consumer, p, ether(2), ether(2));
    await service.exchange(request(first.signed, first.preimage));
    await service.reveal({ ...scope, provider: p.account.address, preimage: first.preimage });
    const stale = await promise(consumer, p, ether(3), ether(2));
    await rejects(request(stale.signed, stale.preimage), 'PROMISE_TOO_LOW');
  });

  it('refuses the next exchange until the previous R is known, and recovers it from its box', async () => {
    const consumer = await consumerWith(ether(10));
    const p = provider();
    const first = await promise(consumer, p, ether(1), ether(1));
    await service.exchange({ ...request(first.signed, first.preimage), encryptedPreimage: '0x1234' });
    const second = await promise(consumer, p, ether(2), ether(2));
    await rejects(request(second.signed, second.preimage), 'PREVIOUS_R_NOT_REVEALED');
    const { hubPromise } = await service.exchange(
      request(second.signed, second.preimage, { previousPreimage: first.preimage }),
    );
    assert.equal(hubPromise.total, ether(2));
    // The second R was sealed properly: the third exchange goes through without a reveal.
    const third = await promise(consumer, p, ether(3), ether(3));
    assert.equal((await service.exchange(request(third.signed, third.preimage))).hubPromise.total, ether(3));
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
    const { hubPromise } = await service.exchange(request(signed, preimage));
    const { signRecoveryRequest, encodeMessage } = await import('@chit/sdk');
    const now = BigInt(Math.floor(Date.now() / 1000));
    const recovery = await signRecoveryRequest(p.account, { ...scope, provider: p.account.address, issuedAt: now });
    const recovered = await service.recover(encodeMessage(recovery));
    assert.deepEqual(recovered, { hubPromise, preimage });
    const old = await signRecoveryRequest(p.account, { ...scope, provider: p.account.address, issuedAt: now - 3600n });
    await assert.rejects(service.recover(encodeMessage(old)), /issuedAt/);
  });

  it('never over-credits one consumer paid by 50 providers at once', async () => {
    const consumer = await consumerWith(ether(30));
    const providers = Array.from({ length: 50 }, provider);
    // Each provider bills 1; the consumer signs totals 1..50, but its channel holds only 30.
    const promises = [];
    for (const [i, p] of providers.entries()) promises.push(await promise(consumer, p, ether(i + 1), ether(1)));
    const results = await Promise.allSettled(
      promises.map(({ signed, preimage }) => service.exchange(request(signed, preimage))),
    );
    const accepted = results.filter((r) => r.status === 'fulfilled').length;
    assert.equal(accepted, 30);
    for (const r of results) if (r.status === 'rejected') assert.equal((r.reason as HubError).code, 'OVERSPEND');
    assert.equal((await books(consumer.address)).credited, ether(30).toString());
  });
});
