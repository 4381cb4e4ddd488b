import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  HubError,
  hashlockOf,
  MemoryStore,
  ProviderLedger,
  type SignedConsumerPromise,
  type SignedHubPromise,
} from '@chit/sdk';
import type { Hex } from 'viem';
import { parseEther } from 'viem';
import { FaultyFetch, Gate } from './support/faulty-fetch';
import { type Consumer, type Provider, type Stack, startStack } from './support/stack';

// A ProviderLedger asked for many exchanges at once (a gateway serving many buyers) sends those that
// wait together, in one POST /v1/exchanges, each checked and answered as if alone.
describe('a provider ledger exchanging for many consumers at once', function () {
  this.timeout(180_000);
  let stack: Stack;
  let provider: Provider;
  let wire: FaultyFetch;
  const consumers: Consumer[] = [];
  /** Pays the exchange that keeps the ledger busy while the others queue. */
  let opener: Consumer;
  /** Each consumer's agreement with the provider, and what it promised so far. */
  const agreements = new Map<Consumer, { id: Hex; total: bigint }>();
  let expected = 0n;

  const promiseOf = async (consumer: Consumer, add: bigint) => {
    const agreement = agreements.get(consumer) ?? { id: `0x${randomBytes(32).toString('hex')}` as Hex, total: 0n };
    agreement.total += add;
    agreements.set(consumer, agreement);
    const preimage = `0x${randomBytes(32).toString('hex')}` as Hex;
    const { promise } = await consumer.ledger.payInvoice({
      hub: stack.chain.hub,
      chainId: stack.chain.deployment.chainId,
      provider: provider.address,
      agreementId: agreement.id,
      agreementTotal: agreement.total,
      hashlock: hashlockOf(preimage),
      fee: 0,
    });
    return { promise, preimage };
  };
  /** Exchanges `payments` at once while the ledger is busy with a held first exchange. */
  const atOnce = async (payments: { promise: SignedConsumerPromise; preimage: Hex }[]) => {
    const held = new Gate();
    const arrived = new Gate();
    const first = await promiseOf(opener, 1_000n);
    wire.once('/v1/exchange', async (forward) => {
      arrived.open();
      await held.opened;
      return forward();
    });
    const mark = wire.mark();
    const firstDone = provider.ledger.exchange(first.promise, first.preimage);
    await arrived.opened; // the ledger is busy at the hub: what comes now waits
    const outcomes = payments.map(({ promise, preimage }) =>
      provider.ledger.exchange(promise, preimage).then(
        (hubPromise) => hubPromise,
        (error: unknown) => error as Error,
      ),
    );
    held.open();
    await firstDone;
    expected += 1_000n;
    return {
      outcomes: await Promise.all(outcomes),
      requests: wire.requests.slice(mark).map((request) => request.path),
    };
  };

  before(async () => {
    stack = await startStack();
    wire = new FaultyFetch();
    provider = await stack.newProvider({ fetch: wire.fetch });
    for (let i = 0; i < 10; i++) consumers.push(await stack.newConsumer({ deposit: parseEther('1') }));
    // One that deposits 5 base units: a promise of 7 is refused as OVERSPEND.
    consumers.push(await stack.newConsumer({ deposit: 5n }));
    opener = await stack.newConsumer({ deposit: parseEther('1') });
    await provider.ledger.open();
  });

  after(() => stack?.stop());

  it('sends the exchanges that wait in one POST /v1/exchanges, all paid by one hub promise signed for them', async () => {
    const payments = await Promise.all(
      consumers.slice(0, 10).map((consumer, i) => promiseOf(consumer, BigInt(10 + i))),
    );
    const mark = wire.mark();
    const { outcomes, requests } = await atOnce(payments);
    assert.deepEqual(
      requests.filter((path) => path.startsWith('/v1/exchange')),
      ['/v1/exchange', '/v1/exchanges'],
      'the first alone, the ten others together',
    );
    const batch = wire.requests.slice(mark).find((request) => request.path === '/v1/exchanges')!;
    assert.equal((batch.body as { sign?: string }).sign, 'latest');
    // The hub signs the last one only: its cumulative total covers the nine before it, and each of the
    // ten is answered with it.
    const last = outcomes.at(-1) as SignedHubPromise;
    for (const [i, outcome] of outcomes.entries()) {
      assert.ok(!(outcome instanceof Error), `exchange ${i}: ${outcome}`);
      expected += BigInt(10 + i);
      assert.deepEqual(outcome, last);
    }
    assert.equal(last.hashlock, payments.at(-1)!.promise.hashlock);
    assert.equal(last.total, expected);
    const { hubPromise, preimage } = await provider.ledger.latest();
    assert.deepEqual(hubPromise, last);
    assert.equal(preimage, payments.at(-1)!.preimage);
    for (const [i, consumer] of consumers.slice(0, 10).entries()) {
      assert.equal(await provider.ledger.credited(agreements.get(consumer)!.id), BigInt(10 + i));
    }
    assert.equal((await stack.hub.client.provider(provider.address)).earned, expected);
  });

  it('one refused exchange of a batch does not touch the others', async () => {
    const broke = consumers[10]!;
    const payments = [
      await promiseOf(consumers[1]!, 5n),
      await promiseOf(broke, 7n),
      await promiseOf(consumers[2]!, 9n),
    ];
    const { outcomes } = await atOnce(payments);
    assert.ok(outcomes[1] instanceof HubError && outcomes[1].code === 'OVERSPEND', String(outcomes[1]));
    // The third one's hub promise covers the first.
    assert.equal((outcomes[2] as SignedHubPromise).total, expected + 5n + 9n);
    assert.deepEqual(outcomes[0], outcomes[2]);
    expected += 14n;
    assert.equal((await stack.hub.client.provider(provider.address)).earned, expected);
    assert.equal(
      await provider.ledger.credited(agreements.get(consumers[2]!)!.id),
      agreements.get(consumers[2]!)!.total,
    );
  });

  it('a batch whose answer is lost is sent again, identically, before anything else: credited once', async () => {
    const payments = [await promiseOf(consumers[3]!, 11n), await promiseOf(consumers[4]!, 13n)];
    wire.once('/v1/exchanges', async (forward) => {
      await (await forward()).text(); // the hub committed both…
      throw new TypeError('fetch failed', { cause: new Error('read ECONNRESET') }); // …and the answer is lost
    });
    const { outcomes } = await atOnce(payments);
    // The client may have sent the batch again itself (a repeat gets the same answers), or given up.
    const next = await promiseOf(consumers[5]!, 17n);
    const after = await provider.ledger.exchange(next.promise, next.preimage);
    for (const outcome of outcomes) if (!(outcome instanceof Error)) assert.ok(outcome.total <= after.total);
    expected += 11n + 13n + 17n;
    assert.equal(after.total, expected);
    assert.equal((await stack.hub.client.provider(provider.address)).earned, expected, 'each credited once');
    const { hubPromise } = await provider.ledger.latest();
    assert.equal(hubPromise?.total, expected);
  });

  it('does not trust a covered exchange without a signed hub promise over it: the batch goes again, credited once', async () => {
    const before = await provider.ledger.latest();
    const payments = [await promiseOf(consumers[6]!, 19n), await promiseOf(consumers[7]!, 23n)];
    // A hub (or whatever sits on the wire) answers that both were credited, and signs neither: the
    // first is "covered" by the second, whose hub promise is replaced by an error.
    wire.once('/v1/exchanges', async (forward) => {
      const answer = (await (await forward()).json()) as { results: object[] };
      assert.ok('covered' in answer.results[0]!);
      answer.results[1] = { error: { code: 'INTERNAL', message: 'no signature for you', details: {} } };
      return new Response(JSON.stringify(answer), { status: 200, headers: { 'content-type': 'application/json' } });
    });
    const { outcomes } = await atOnce(payments);
    for (const outcome of outcomes) assert.ok(outcome instanceof Error, String(outcome));
    // Nothing of that answer was stored: the latest hub promise is the one from before.
    assert.deepEqual((await provider.ledger.latest()).hubPromise?.total, before.hubPromise!.total + 1_000n);
    // The next exchange sends the batch again first, identically: the hub answers it as a repeat.
    const next = await promiseOf(consumers[8]!, 29n);
    const after = await provider.ledger.exchange(next.promise, next.preimage);
    expected += 19n + 23n + 29n;
    assert.equal(after.total, expected);
    assert.equal((await stack.hub.client.provider(provider.address)).earned, expected, 'each credited once');
    for (const consumer of [consumers[6]!, consumers[7]!]) {
      const agreement = agreements.get(consumer)!;
      assert.equal(await provider.ledger.credited(agreement.id), agreement.total);
    }
  });

  it('keeps every credited total across checkpoints of its store, batch after batch, and chains on all of them', async () => {
    // A seller whose credited totals outgrow the document's journal (3 here, 512 by default): its store
    // takes a checkpoint of every total now and then, and the document holds those since.
    const seller = await stack.newProvider({ fetch: wire.fetch });
    const store = new MemoryStore();
    const ledgerOn = () =>
      new ProviderLedger({
        hub: seller.hub,
        account: seller.account,
        store,
        creditedJournal: 3,
        expect: { hub: stack.chain.hub, chainId: stack.chain.deployment.chainId },
      });
    const ledger = ledgerOn();
    const buyers = consumers.slice(0, 10).map((consumer) => ({
      consumer,
      id: `0x${randomBytes(32).toString('hex')}` as Hex,
      total: 0n,
    }));
    const pay = async (buyer: (typeof buyers)[number], add: bigint) => {
      buyer.total += add;
      const preimage = `0x${randomBytes(32).toString('hex')}` as Hex;
      const { promise } = await buyer.consumer.ledger.payInvoice({
        hub: stack.chain.hub,
        chainId: stack.chain.deployment.chainId,
        provider: seller.address,
        agreementId: buyer.id,
        agreementTotal: buyer.total,
        hashlock: hashlockOf(preimage),
        fee: 0,
      });
      return { promise, preimage };
    };
    const mark = wire.mark();
    for (let round = 1; round <= 3; round++) {
      const payments = await Promise.all(buyers.map((buyer, i) => pay(buyer, BigInt(round * 100 + i))));
      await Promise.all(payments.map(({ promise, preimage }) => ledger.exchange(promise, preimage)));
      const paid = buyers.reduce((total, buyer) => total + buyer.total, 0n);
      assert.equal((await stack.hub.client.provider(seller.address)).earned, paid, `round ${round}`);
    }
    assert.ok(
      wire.requests.slice(mark).some((request) => request.path === '/v1/exchanges'),
      'some exchanges went together',
    );
    // The checkpoint holds every agreement (of an earlier round); the document the totals since.
    const checkpoint = (await store.get(`${ledger.key}/credited`)) as { credited: Record<string, string> };
    assert.equal(Object.keys(checkpoint.credited).length, buyers.length);
    const document = (await store.get(ledger.key)) as { credited: Record<string, string> };
    for (const buyer of buyers) {
      const id = buyer.id.toLowerCase();
      assert.equal(BigInt(document.credited[id] ?? checkpoint.credited[id]!), buyer.total);
    }
    const sum = buyers.reduce((total, buyer) => total + buyer.total, 0n);
    assert.equal((await stack.hub.client.provider(seller.address)).earned, sum);
    // Opened again on the store: every total is known, and the next exchange chains on all of them.
    const reopened = ledgerOn();
    for (const buyer of buyers) assert.equal(await reopened.credited(buyer.id), buyer.total);
    const next = await pay(buyers[4]!, 7n);
    const hubPromise = await reopened.exchange(next.promise, next.preimage);
    assert.equal(hubPromise.total, sum + 7n);
    assert.equal((await stack.hub.client.provider(seller.address)).earned, sum + 7n);
  });
});
