import assert from 'node:assert/strict';
import {
  decodeMessage,
  encodeMessage,
  newHashlock,
  type SignedConsumerPromise,
  sealPreimage,
  signConsumerPromise,
  verifyHubPromise,
} from '@chit/sdk';
import { HTTPFacilitatorClient } from '@x402/core/server';
import type { Network, PaymentPayload, PaymentRequirements } from '@x402/core/types';
import { type Address, type Hex, keccak256, toHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import { toBytea } from '../src/db/bytes';
import { startTestStack, type TestStack } from './support/hub';

interface HubInfo {
  hub: Address;
  chainId: number;
  token: Address;
  operator: Address;
  publicKey: Hex;
  fee: number;
}

/** A consumer's payment of one request, as @chit/x402 builds it, and what the seller asked for. */
interface Payment {
  consumer: ReturnType<typeof privateKeyToAccount>;
  provider: ReturnType<typeof privateKeyToAccount>;
  promise: SignedConsumerPromise;
  preimage: Hex;
  requirements: PaymentRequirements;
  payload: PaymentPayload;
}

describe('x402 facilitator (the chit scheme)', () => {
  let stack: TestStack;
  let url: string;
  let info: HubInfo;
  let facilitator: HTTPFacilitatorClient;
  let network: Network;

  before(async function () {
    this.timeout(120_000);
    stack = await startTestStack('x402');
    url = stack.hub.url;
    info = (await (await fetch(`${url}/v1/info`)).json()) as HubInfo;
    network = `eip155:${info.chainId}`;
    facilitator = new HTTPFacilitatorClient({ url: `${url}/x402` });
  });
  after(() => stack?.stop());

  const pool = () => stack.db.pool;

  /** A consumer with a channel of `balance` in the books, as the chain follower would record its deposit. */
  async function consumerWith(balance: bigint) {
    const account = privateKeyToAccount(generatePrivateKey());
    await pool().query('INSERT INTO consumers (address, balance) VALUES ($1, $2)', [
      toBytea(account.address.toLowerCase()),
      balance.toString(),
    ]);
    return account;
  }

  /**
   * A payment of `price` for one request: the consumer (channel of `balance`) signs a promise of
   * `total` (agreement total and consumer total) to a fresh seller; `promise` overrides fields of the
   * signed promise (`hub`, `chainId`).
   */
  async function payment(
    options: { price?: bigint; total?: bigint; balance?: bigint; promise?: Partial<SignedConsumerPromise> } = {},
  ): Promise<Payment> {
    const { price = 1000n, balance = 10n ** 18n } = options;
    const total = options.total ?? price;
    const consumer = await consumerWith(balance);
    const provider = privateKeyToAccount(generatePrivateKey());
    const agreementSalt = keccak256(toHex(provider.address));
    const { preimage, hashlock } = newHashlock();
    const promise = await signConsumerPromise(consumer, {
      hub: info.hub,
      chainId: info.chainId,
      consumer: consumer.address,
      total,
      hashlock,
      agreement: { provider: provider.address, id: keccak256(`${agreementSalt}${consumer.address.slice(2)}`), total },
      ...options.promise,
    });
    const requirements: PaymentRequirements = {
      scheme: 'chit',
      network,
      asset: info.token,
      amount: price.toString(),
      payTo: provider.address,
      maxTimeoutSeconds: 60,
      extra: { hub: info.hub, hubUrl: url, pricePerMiB: '0', agreementSalt },
    };
    const payload: PaymentPayload = {
      x402Version: 2,
      resource: { url: 'http://seller.test/paid', description: 'a paid resource', mimeType: 'application/json' },
      accepted: {
        ...requirements,
        extra: { ...requirements.extra, nonce: keccak256(hashlock), hashlock, expiresAt: '4102444800' },
      },
      payload: { promise: encodeMessage(promise), usage: { requests: '1', bytes: '0' } },
    };
    return { consumer, provider, promise, preimage, requirements, payload };
  }

  /** The payload with its sealed R, as /x402/settle needs it. */
  const withBox = (p: Payment, box = sealPreimage(info.publicKey, p.preimage)): PaymentPayload => ({
    ...p.payload,
    payload: { ...p.payload.payload, encryptedPreimage: box },
  });

  /** Every row of the books the exchange writes. */
  async function books() {
    const rows: Record<string, unknown[]> = {};
    for (const [table, key] of [
      ['consumers', 'address'],
      ['providers', 'address'],
      ['agreements', 'provider, agreement_id'],
      ['exchanges', 'hashlock'],
    ]) {
      rows[table] = (await pool().query(`SELECT * FROM ${table} ORDER BY ${key}`)).rows;
    }
    return rows;
  }

  const consumerBooks = async (address: Address) =>
    (await (await fetch(`${url}/v1/consumers/${address}`)).json()) as { credited: string; promised: string };
  const providerBooks = async (address: Address) =>
    (await (await fetch(`${url}/v1/providers/${address}`)).json()) as { earned: string; unsettled: string };

  const post = (path: string, body: unknown) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });

  describe('GET /x402/supported', () => {
    it('offers the chit scheme on the hub chain, with the hub terms and the operator as signer', async () => {
      const supported = await facilitator.getSupported();
      assert.deepEqual(supported, {
        kinds: [
          {
            x402Version: 2,
            scheme: 'chit',
            network,
            extra: {
              hub: info.hub,
              token: info.token,
              operator: info.operator,
              fee: info.fee,
              publicKey: info.publicKey,
            },
          },
        ],
        extensions: [],
        signers: { 'eip155:*': [info.operator] },
      });
    });
  });

  describe('POST /x402/verify', () => {
    it('accepts a good promise, names the payer and the increment, and changes nothing in the books', async () => {
      const p = await payment({ price: 1000n, total: 1500n });
      const before = await books();
      const answer = await facilitator.verify(p.payload, p.requirements);
      assert.deepEqual(answer, { isValid: true, payer: p.consumer.address, extra: { increment: '1500' } });
      assert.deepEqual(await books(), before);
    });

    /** Verifies `payload` against `requirements` and expects `reason`, with the payer named when known. */
    async function invalid(
      payload: PaymentPayload,
      requirements: PaymentRequirements,
      reason: string,
      payer?: Address,
    ) {
      const before = await books();
      const answer = await facilitator.verify(payload, requirements);
      assert.equal(answer.isValid, false, JSON.stringify(answer));
      assert.equal(answer.invalidReason, reason, answer.invalidMessage);
      assert.ok(answer.invalidMessage && answer.invalidMessage.length > 0);
      if (payer) assert.equal(answer.payer, payer);
      assert.deepEqual(await books(), before);
    }

    describe('when the payment does not match what the seller asked for', () => {
      it('refuses another scheme (UNSUPPORTED_SCHEME)', async () => {
        const p = await payment();
        const exact = { ...p.requirements, scheme: 'exact' };
        await invalid({ ...p.payload, accepted: exact }, exact, 'UNSUPPORTED_SCHEME');
      });

      it('refuses another x402 version (UNSUPPORTED_SCHEME)', async () => {
        const p = await payment();
        await invalid({ ...p.payload, x402Version: 1 }, p.requirements, 'UNSUPPORTED_SCHEME');
      });

      it('refuses another network (WRONG_NETWORK)', async () => {
        const p = await payment();
        await invalid(p.payload, { ...p.requirements, network: 'eip155:1' }, 'WRONG_NETWORK');
      });

      it('refuses another asset than the hub token (WRONG_ASSET)', async () => {
        const p = await payment();
        const asset = privateKeyToAccount(generatePrivateKey()).address;
        await invalid(p.payload, { ...p.requirements, asset }, 'WRONG_ASSET');
      });

      it('refuses a promise to another provider than payTo (WRONG_PAYEE)', async () => {
        const p = await payment();
        const payTo = privateKeyToAccount(generatePrivateKey()).address;
        await invalid(p.payload, { ...p.requirements, payTo }, 'WRONG_PAYEE', p.consumer.address);
      });

      it("refuses a promise whose hashlock is not the invoice's (HASHLOCK_MISMATCH)", async () => {
        const p = await payment();
        const accepted = {
          ...p.payload.accepted,
          extra: { ...p.payload.accepted.extra, hashlock: newHashlock().hashlock },
        };
        await invalid({ ...p.payload, accepted }, p.requirements, 'HASHLOCK_MISMATCH', p.consumer.address);
      });

      it('refuses a promise whose increment is below the price (UNDERPAID)', async () => {
        const p = await payment({ price: 1000n, total: 999n });
        await invalid(p.payload, p.requirements, 'UNDERPAID', p.consumer.address);
      });
    });

    describe('when the exchange would refuse the promise', () => {
      it('refuses a promise for more than the channel holds (OVERSPEND)', async () => {
        const p = await payment({ price: 1000n, balance: 999n });
        await invalid(p.payload, p.requirements, 'OVERSPEND', p.consumer.address);
      });

      it('refuses a promise not signed by its consumer (INVALID_SIGNATURE)', async () => {
        const p = await payment();
        const wire = p.payload.payload.promise as Record<string, unknown>;
        const forged = { ...p.payload, payload: { ...p.payload.payload, promise: { ...wire, total: '1000000' } } };
        await invalid(forged, p.requirements, 'INVALID_SIGNATURE', p.consumer.address);
      });

      it('refuses a promise for another hub (WRONG_HUB)', async () => {
        const p = await payment({ promise: { hub: privateKeyToAccount(generatePrivateKey()).address } });
        await invalid(p.payload, p.requirements, 'WRONG_HUB', p.consumer.address);
      });

      it('refuses a promise for another chain (WRONG_CHAIN)', async () => {
        const p = await payment({ promise: { chainId: 1 } });
        await invalid(p.payload, p.requirements, 'WRONG_CHAIN', p.consumer.address);
      });

      it('refuses a consumer without a channel (UNKNOWN_CONSUMER)', async () => {
        const p = await payment();
        await pool().query('DELETE FROM consumers WHERE address = $1', [toBytea(p.consumer.address.toLowerCase())]);
        await invalid(p.payload, p.requirements, 'UNKNOWN_CONSUMER', p.consumer.address);
      });

      it('refuses a promise that is not a wire consumer promise (MALFORMED)', async () => {
        const p = await payment();
        const broken = { ...p.payload, payload: { ...p.payload.payload, promise: { total: 'lots' } } };
        await invalid(broken, p.requirements, 'MALFORMED');
      });

      it('refuses a box that does not open to R, when one is sent (INVALID_PREIMAGE_BOX)', async () => {
        const p = await payment();
        const box = sealPreimage(info.publicKey, newHashlock().preimage);
        await invalid(withBox(p, box), p.requirements, 'INVALID_PREIMAGE_BOX', p.consumer.address);
      });

      it('refuses a promise already settled: it adds nothing new (PROMISE_TOO_LOW)', async () => {
        const p = await payment();
        assert.equal((await facilitator.settle(withBox(p), p.requirements)).success, true);
        await invalid(p.payload, p.requirements, 'PROMISE_TOO_LOW', p.consumer.address);
      });
    });
  });

  describe('POST /x402/settle', () => {
    it('exchanges the promise and answers the hub promise for the increment', async () => {
      const p = await payment({ price: 1000n, total: 1500n });
      const answer = await facilitator.settle(withBox(p), p.requirements);
      assert.deepEqual(
        { ...answer, extra: undefined },
        { success: true, transaction: '', network, payer: p.consumer.address, amount: '1500', extra: undefined },
      );
      const hubPromise = decodeMessage('hubPromise', answer.extra?.hubPromise);
      assert.ok(verifyHubPromise(hubPromise, info.operator));
      assert.deepEqual(
        { provider: hubPromise.provider, total: hubPromise.total, hashlock: hubPromise.hashlock },
        { provider: p.provider.address, total: 1500n, hashlock: p.promise.hashlock },
      );
      assert.equal((await providerBooks(p.provider.address)).earned, '1500');
      assert.equal((await consumerBooks(p.consumer.address)).credited, '1500');
    });

    it('answers a repeated settle with the same hub promise and credits once', async () => {
      const p = await payment();
      const first = await facilitator.settle(withBox(p), p.requirements);
      const again = await facilitator.settle(withBox(p), p.requirements);
      assert.equal(first.success, true);
      assert.deepEqual(again, first);
      assert.equal((await providerBooks(p.provider.address)).earned, '1000');
      assert.equal((await consumerBooks(p.consumer.address)).credited, '1000');
    });

    it('credits the next promise of an agreement by its increment only', async () => {
      const p = await payment({ price: 1000n });
      assert.equal((await facilitator.settle(withBox(p), p.requirements)).success, true);
      const { preimage, hashlock } = newHashlock();
      const next = await signConsumerPromise(p.consumer, {
        ...p.promise,
        total: 2500n,
        hashlock,
        agreement: { ...p.promise.agreement, total: 2500n },
      });
      const accepted = { ...p.payload.accepted, extra: { ...p.payload.accepted.extra, hashlock } };
      const payload = {
        ...p.payload,
        accepted,
        payload: { promise: encodeMessage(next), encryptedPreimage: sealPreimage(info.publicKey, preimage) },
      };
      assert.deepEqual((await facilitator.verify(payload, p.requirements)).extra, { increment: '1500' });
      const answer = await facilitator.settle(payload, p.requirements);
      assert.equal(answer.amount, '1500');
      assert.equal(decodeMessage('hubPromise', answer.extra?.hubPromise).total, 2500n);
      assert.equal((await providerBooks(p.provider.address)).earned, '2500');
    });

    /** Settles and expects `reason`, with nothing credited. */
    async function fails(payload: PaymentPayload, requirements: PaymentRequirements, reason: string) {
      const before = await books();
      const answer = await facilitator.settle(payload, requirements);
      assert.equal(answer.success, false, JSON.stringify(answer));
      assert.equal(answer.errorReason, reason, answer.errorMessage);
      assert.ok(answer.errorMessage && answer.errorMessage.length > 0);
      assert.equal(answer.transaction, '');
      assert.equal(answer.network, network);
      assert.deepEqual(await books(), before);
    }

    it('refuses a box that does not open to R (INVALID_PREIMAGE_BOX) and credits nothing', async () => {
      const p = await payment();
      await fails(
        withBox(p, sealPreimage(info.publicKey, newHashlock().preimage)),
        p.requirements,
        'INVALID_PREIMAGE_BOX',
      );
      assert.equal((await consumerBooks(p.consumer.address)).credited, '0');
    });

    it('refuses a payment without its sealed R (MALFORMED)', async () => {
      const p = await payment();
      await fails(p.payload, p.requirements, 'MALFORMED');
    });

    it('refuses a promise whose increment is below the price (UNDERPAID) and credits nothing', async () => {
      const p = await payment({ price: 1000n, total: 999n });
      await fails(withBox(p), p.requirements, 'UNDERPAID');
    });

    it('refuses a promise to another provider than payTo (WRONG_PAYEE)', async () => {
      const p = await payment();
      const payTo = privateKeyToAccount(generatePrivateKey()).address;
      await fails(withBox(p), { ...p.requirements, payTo }, 'WRONG_PAYEE');
    });

    it('refuses a promise for more than the channel holds (OVERSPEND)', async () => {
      const p = await payment({ price: 1000n, balance: 999n });
      await fails(withBox(p), p.requirements, 'OVERSPEND');
    });
  });

  it('lists its three endpoints in the OpenAPI document', async () => {
    const document = (await (await fetch(`${url}/docs`)).json()) as { paths: Record<string, Record<string, unknown>> };
    assert.deepEqual(
      ['/x402/supported', '/x402/verify', '/x402/settle'].map((path) => Object.keys(document.paths[path] ?? {})),
      [['get'], ['post'], ['post']],
    );
  });

  describe('a body that is not a facilitator request', () => {
    for (const path of ['/x402/verify', '/x402/settle']) {
      it(`${path}: answers 400 MALFORMED naming the field`, async () => {
        const p = await payment();
        const response = await post(path, { x402Version: 2, paymentPayload: p.payload });
        assert.equal(response.status, 400);
        const body = (await response.json()) as { code: string; details: { path: string } };
        assert.equal(body.code, 'MALFORMED');
        assert.equal(body.details.path, 'paymentRequirements');
      });
    }

    it('answers 400 MALFORMED for requirements without an integer amount', async () => {
      const p = await payment();
      const response = await post('/x402/verify', {
        x402Version: 2,
        paymentPayload: p.payload,
        paymentRequirements: { ...p.requirements, amount: '$0.01' },
      });
      assert.equal(response.status, 400);
      const body = (await response.json()) as { code: string; details: { path: string } };
      assert.deepEqual([body.code, body.details.path], ['MALFORMED', 'paymentRequirements.amount']);
    });
  });
});
