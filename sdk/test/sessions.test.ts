import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Address, type Hex, keccak256, stringToHex } from 'viem';
import { generatePrivateKey, privateKeyToAccount } from 'viem/accounts';
import {
  agreementKey,
  ConsumerLedger,
  ConsumerSession,
  decodeMessage,
  encodeMessage,
  GIB,
  HubAnswerRejectedError,
  HubClient,
  HubError,
  HubUnreachableError,
  InvalidSignatureError,
  type Invoice,
  InvoiceRejectedError,
  type Json,
  jsVerifier,
  MemoryStore,
  newHashlock,
  OverchargeError,
  type Prices,
  PromiseRejectedError,
  ProviderLedger,
  ProviderSession,
  type ProviderSessionOptions,
  type SettlementAttempt,
  SettlementPolicy,
  type SignedConsumerPromise,
  type SignedHubPromise,
  type Store,
  StoredStateError,
  signConsumerPromise,
  signHubPromise,
  verifyConsumerPromise,
  verifyHubPromise,
} from '../src/index.js';
import { FileStore, nativeAccount } from '../src/node/index.js';
import { CreditedTotals } from '../src/sessions/provider-ledger.credited.js';
import { type ReferenceHub, startReferenceHub } from './support/reference-hub.js';

const HUB = '0x4859E602e6ffac40ef337bB9B9Df6a4D9CF43b51' as Address;
const CHAIN = 31337;
const MINUTE = 60_000;
const MIB = 1n << 20n;
const TOKEN = 10n ** 18n;

/** A clock the test moves by hand. */
class SimClock {
  now = Date.now();
  read = () => this.now;
  advance(ms: number) {
    this.now += ms;
  }
}

/** Where a consumer ledger stores an agreement's entry (its key's keccak256, 16 bytes). */
const entryKey = (ledgerKey: string, agreement: string) =>
  `${ledgerKey}/agreements/${keccak256(stringToHex(agreement)).slice(2, 34)}`;

/** A consumer key whose signatures are counted. */
function countingAccount() {
  const account = privateKeyToAccount(generatePrivateKey());
  const counter = { signatures: 0 };
  const signTypedData = ((parameters: Parameters<typeof account.signTypedData>[0]) => {
    counter.signatures++;
    return account.signTypedData(parameters);
  }) as typeof account.signTypedData;
  return { account: { address: account.address, signTypedData }, counter };
}

function invoice(
  provider: Address,
  agreementId: Hex,
  agreementTotal: bigint,
  overrides: Partial<Invoice> = {},
): Invoice {
  return {
    hub: HUB,
    chainId: CHAIN,
    provider,
    agreementId,
    agreementTotal,
    hashlock: newHashlock().hashlock,
    fee: 100,
    ...overrides,
  };
}

/** What goes over the wire and back: encode, JSON, decode strictly. */
const overWire = <N extends 'invoice' | 'consumerPromise'>(name: N, message: unknown) =>
  decodeMessage(name, JSON.parse(JSON.stringify(encodeMessage(message))));

async function rejectsWith<E extends Error>(promise: Promise<unknown>, type: new (...args: never[]) => E): Promise<E> {
  try {
    await promise;
  } catch (error) {
    assert.ok(error instanceof type, `expected ${type.name}, got ${error}`);
    return error;
  }
  assert.fail(`expected ${type.name}, but it resolved`);
}

async function snapshot(store: MemoryStore) {
  return Promise.all(store.keys().map(async (key) => [key, JSON.stringify(await store.get(key))]));
}

describe('ConsumerSession', { timeout: 30_000 }, () => {
  const provider = privateKeyToAccount(generatePrivateKey()).address;
  const agreementId = `0x${'a1'.repeat(32)}` as Hex;

  function setup(prices: Prices, store = new MemoryStore()) {
    const clock = new SimClock();
    const { account, counter } = countingAccount();
    const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    const session = new ConsumerSession({ ledger, provider, agreementId, prices, clock: clock.read });
    return { clock, account, counter, ledger, session, store };
  }

  describe('paying per time', () => {
    it('pays what the elapsed minutes cost, raising the consumer total by each increment', async () => {
      const { clock, session, ledger, account } = setup({ perMinute: TOKEN / 100n, perGiB: 0n });
      clock.advance(MINUTE);
      const first = await session.pay(invoice(provider, agreementId, TOKEN / 100n));
      assert.equal(first.total, TOKEN / 100n);
      assert.equal(first.agreement.total, TOKEN / 100n);
      assert.equal(first.consumer, account.address);
      assert.ok(verifyConsumerPromise(first));
      clock.advance(2 * MINUTE);
      const second = await session.pay(invoice(provider, agreementId, (3n * TOKEN) / 100n));
      assert.equal(second.total, (3n * TOKEN) / 100n);
      assert.equal(await ledger.total(), (3n * TOKEN) / 100n);
      assert.equal(await ledger.paid(provider, agreementId), (3n * TOKEN) / 100n);
    });

    it('accepts up to the time tolerance (5 s) and refuses one unit more', async () => {
      const { clock, session } = setup({ perMinute: 60_000n, perGiB: 0n }); // 1 unit per ms
      clock.advance(MINUTE);
      const error = await rejectsWith(session.pay(invoice(provider, agreementId, 65_001n)), OverchargeError);
      assert.equal(error.justified, 60_000n);
      assert.equal(error.allowed, 65_000n);
      const promise = await session.pay(invoice(provider, agreementId, 65_000n));
      assert.equal(promise.total, 65_000n);
    });
  });

  describe('paying per traffic', () => {
    it('pays what the measured bytes cost', async () => {
      const { session } = setup({ perMinute: 0n, perGiB: TOKEN });
      session.addTraffic(GIB / 2n);
      const promise = await session.pay(invoice(provider, agreementId, TOKEN / 2n));
      assert.equal(promise.total, TOKEN / 2n);
    });

    it('allows 3 % + 4 MiB of traffic more than measured, and no more', async () => {
      const { session } = setup({ perMinute: 0n, perGiB: GIB }); // 1 unit per byte
      session.addTraffic(100n * MIB);
      const allowed = 100n * MIB + 3n * MIB + 4n * MIB;
      const error = await rejectsWith(session.pay(invoice(provider, agreementId, allowed + 1n)), OverchargeError);
      assert.equal(error.justified, 100n * MIB);
      assert.equal(error.allowed, allowed);
      assert.equal(error.basis.bytes, 100n * MIB);
      assert.equal((await session.pay(invoice(provider, agreementId, allowed))).total, allowed);
    });

    it('uses a configured tolerance', async () => {
      const clock = new SimClock();
      const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account: countingAccount().account });
      const session = new ConsumerSession({
        ledger,
        provider,
        prices: { perMinute: 0n, perGiB: GIB },
        tolerance: { trafficBps: 0, trafficBytes: 0n, timeMs: 0 },
        clock: clock.read,
      });
      session.addTraffic(1_000);
      await rejectsWith(session.pay(invoice(provider, agreementId, 1_001n)), OverchargeError);
      assert.equal((await session.pay(invoice(provider, agreementId, 1_000n))).total, 1_000n);
      assert.equal(session.agreementId, agreementId);
    });
  });

  describe('paying per time and traffic', () => {
    it('adds both', async () => {
      const { clock, session } = setup({ perMinute: TOKEN / 1_000n, perGiB: TOKEN / 10n });
      clock.advance(10 * MINUTE);
      session.addTraffic(2n * GIB);
      const due = (10n * TOKEN) / 1_000n + (2n * TOKEN) / 10n;
      assert.equal((await session.pay(invoice(provider, agreementId, due))).total, due);
    });
  });

  describe('when the provider overcharges', () => {
    it('refuses with OverchargeError, signs nothing and changes no state', async () => {
      const { clock, session, ledger, counter, store } = setup({ perMinute: TOKEN / 100n, perGiB: TOKEN / 10n });
      clock.advance(MINUTE);
      await session.pay(invoice(provider, agreementId, TOKEN / 100n));
      const signatures = counter.signatures;
      const before = await snapshot(store);
      clock.advance(MINUTE);
      session.addTraffic(GIB);
      const asked = TOKEN; // 0.02 + 0.1 are justified
      const error = await rejectsWith(session.pay(invoice(provider, agreementId, asked)), OverchargeError);
      assert.equal(error.code, 'OVERCHARGE');
      assert.equal(error.asked, asked);
      assert.equal(error.justified, (2n * TOKEN) / 100n + TOKEN / 10n);
      assert.ok(error.allowed > error.justified && error.allowed < asked);
      assert.match(error.shortMessage, /asks 1000000000000000000 but 120000000000000000 is justified/);
      assert.equal(counter.signatures, signatures);
      assert.deepEqual(await snapshot(store), before);
      assert.equal(await ledger.total(), TOKEN / 100n);
    });
  });

  describe('when the invoice does not fit the session', () => {
    const cases: [string, (i: Invoice) => Invoice, string][] = [
      ['another hub', (i) => ({ ...i, hub: provider }), 'WRONG_HUB'],
      ['another chain', (i) => ({ ...i, chainId: 1 }), 'WRONG_CHAIN'],
      ['another provider', (i) => ({ ...i, provider: HUB }), 'WRONG_PROVIDER'],
      ['another agreement', (i) => ({ ...i, agreementId: `0x${'b2'.repeat(32)}` }), 'WRONG_AGREEMENT'],
    ];
    for (const [what, change, reason] of cases) {
      it(`refuses an invoice for ${what} with ${reason}`, async () => {
        const { clock, session, counter } = setup({ perMinute: TOKEN, perGiB: 0n });
        clock.advance(MINUTE);
        const error = await rejectsWith(session.pay(change(invoice(provider, agreementId, 1n))), InvoiceRejectedError);
        assert.equal(error.reason, reason);
        assert.equal(error.code, reason);
        assert.equal(counter.signatures, 0);
      });
    }

    it('refuses a decreasing agreement total, and one that adds nothing', async () => {
      const { clock, session, ledger } = setup({ perMinute: TOKEN, perGiB: 0n });
      clock.advance(MINUTE);
      await session.pay(invoice(provider, agreementId, 100n));
      const lower = await rejectsWith(session.pay(invoice(provider, agreementId, 99n)), InvoiceRejectedError);
      assert.equal(lower.reason, 'DECREASING_TOTAL');
      const same = await rejectsWith(session.pay(invoice(provider, agreementId, 100n)), InvoiceRejectedError);
      assert.equal(same.reason, 'NOTHING_DUE');
      assert.equal(await ledger.total(), 100n);
    });

    it('refuses a reused hashlock, but answers the very same invoice with the same promise', async () => {
      const { clock, session, ledger, counter } = setup({ perMinute: TOKEN, perGiB: 0n });
      clock.advance(MINUTE);
      const paid = invoice(provider, agreementId, 100n);
      const promise = await session.pay(paid);
      assert.deepEqual(await session.pay({ ...paid }), promise);
      assert.equal(counter.signatures, 1);
      const error = await rejectsWith(session.pay({ ...paid, agreementTotal: 200n }), InvoiceRejectedError);
      assert.equal(error.reason, 'REUSED_HASHLOCK');
      assert.equal(await ledger.total(), 100n);
    });

    it('refuses a hashlock already paid in another agreement', async () => {
      const { clock, ledger, session } = setup({ perMinute: TOKEN, perGiB: 0n });
      const other = new ConsumerSession({
        ledger,
        provider: HUB,
        prices: { perMinute: TOKEN, perGiB: 0n },
        clock: clock.read,
      });
      clock.advance(MINUTE);
      const paid = invoice(provider, agreementId, 100n);
      await session.pay(paid);
      const error = await rejectsWith(
        other.pay({ ...paid, provider: HUB, agreementId: `0x${'c3'.repeat(32)}` }),
        InvoiceRejectedError,
      );
      assert.equal(error.reason, 'REUSED_HASHLOCK');
    });
  });

  describe('with several providers paid at once', () => {
    it('raises the consumer total by each increment exactly once', async () => {
      const clock = new SimClock();
      const { account } = countingAccount();
      const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account });
      const providers = [1, 2, 3].map(() => privateKeyToAccount(generatePrivateKey()).address);
      const sessions = providers.map(
        (p) =>
          new ConsumerSession({
            ledger,
            provider: p,
            prices: { perMinute: TOKEN / 100n, perGiB: 0n },
            clock: clock.read,
          }),
      );
      const promises: SignedConsumerPromise[] = [];
      const totals = providers.map(() => 0n);
      for (let round = 1; round <= 10; round++) {
        clock.advance(MINUTE);
        const due = (BigInt(round) * TOKEN) / 100n;
        const invoices = providers.map((p, i) => invoice(p, `0x${String(i + 1).repeat(64)}` as Hex, due));
        // Each invoice is delivered twice at once: a retry must not pay it twice.
        const paid = await Promise.all(invoices.flatMap((inv, i) => [sessions[i]!.pay(inv), sessions[i]!.pay(inv)]));
        for (let i = 0; i < providers.length; i++) {
          assert.deepEqual(paid[2 * i], paid[2 * i + 1]);
          promises.push(paid[2 * i]!);
          totals[i] = due;
        }
      }
      const sum = totals.reduce((a, b) => a + b, 0n);
      assert.equal(sum, (3n * 10n * TOKEN) / 100n);
      assert.equal(await ledger.total(), sum);
      // Every promise raised the total by its own increment: sorted by total, each is the one before
      // plus what it added to its agreement.
      const sorted = [...promises].sort((a, b) => (a.total < b.total ? -1 : 1));
      const lastByAgreement = new Map<string, bigint>();
      let previous = 0n;
      for (const promise of sorted) {
        const increment = promise.agreement.total - (lastByAgreement.get(promise.agreement.id) ?? 0n);
        assert.equal(promise.total, previous + increment);
        lastByAgreement.set(promise.agreement.id, promise.agreement.total);
        previous = promise.total;
      }
      assert.equal(new Set(promises.map((p) => p.total)).size, promises.length);
    });
  });

  describe('persistence', () => {
    it('reloads the total and the agreements from the store, and a resumed session bills from what was paid', async () => {
      const store = new MemoryStore();
      const { clock, session, account } = setup({ perMinute: TOKEN / 100n, perGiB: 0n }, store);
      clock.advance(10 * MINUTE);
      await session.pay(invoice(provider, agreementId, TOKEN / 10n));
      session.close();

      const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
      assert.equal(await ledger.total(), TOKEN / 10n);
      assert.equal(await ledger.paid(provider, agreementId), TOKEN / 10n);
      const resumed = new ConsumerSession({
        ledger,
        provider,
        agreementId,
        prices: { perMinute: TOKEN / 100n, perGiB: 0n },
        clock: clock.read,
      });
      clock.advance(MINUTE);
      // The 10 minutes before the restart were paid; one more minute is due, not 11.
      await rejectsWith(resumed.pay(invoice(provider, agreementId, (12n * TOKEN) / 100n)), OverchargeError);
      const promise = await resumed.pay(invoice(provider, agreementId, (11n * TOKEN) / 100n));
      assert.equal(promise.total, (11n * TOKEN) / 100n);
    });

    it('stops on a damaged document instead of signing from a wrong total', async () => {
      const store = new MemoryStore();
      const { account } = countingAccount();
      const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
      await store.put(ledger.key, { version: 1, total: '-5' });
      const error = await rejectsWith(ledger.total(), StoredStateError);
      assert.equal(error.key, ledger.key);
    });

    it('refuses a second session for the same agreement on one ledger', () => {
      const { ledger } = setup({ perMinute: 1n, perGiB: 0n });
      assert.throws(
        () => new ConsumerSession({ ledger, provider, agreementId, prices: { perMinute: 1n, perGiB: 0n } }),
        /already open/,
      );
    });
  });
});

describe('ConsumerLedger: the signer', { timeout: 30_000 }, () => {
  const provider = privateKeyToAccount(generatePrivateKey()).address;
  const agreementId = `0x${'b2'.repeat(32)}` as Hex;
  /** The JavaScript verifier, its recoveries counted. */
  const countingVerifier = () => {
    const verifier = { kind: 'js' as const, recoveries: 0, recover: jsVerifier.recover };
    verifier.recover = (digest, signature) => {
      verifier.recoveries++;
      return jsVerifier.recover(digest, signature);
    };
    return verifier;
  };

  it('refuses a promise a wallet signed with another account than the consumer, and stores nothing', async () => {
    const consumer = privateKeyToAccount(generatePrivateKey());
    const other = privateKeyToAccount(generatePrivateKey());
    // A wallet asked for the consumer's signature that answers with another of its accounts.
    const wallet = { address: consumer.address, signTypedData: other.signTypedData };
    const store = new MemoryStore();
    const verifier = countingVerifier();
    const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account: wallet, store, verifier });
    const error = await rejectsWith(ledger.payInvoice(invoice(provider, agreementId, 100n)), InvalidSignatureError);
    assert.equal(verifier.recoveries, 1);
    assert.match(error.message, new RegExp(other.address, 'i'));
    assert.equal(await ledger.payInvoice(invoice(provider, agreementId, 100n)).catch(() => undefined), undefined);
    assert.deepEqual(store.keys(), []);
  });

  it("signs with a local key's native account without checking each signature again, and the promises verify", async () => {
    const key = generatePrivateKey();
    const account = nativeAccount(key);
    assert.equal(account.signsAsItsAddress, true);
    const verifier = countingVerifier();
    const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, verifier });
    const { promise } = await ledger.payInvoice(invoice(provider, agreementId, 100n));
    assert.equal(verifier.recoveries, 0);
    assert.ok(verifyConsumerPromise(promise));
    assert.equal(promise.consumer, privateKeyToAccount(key).address);
  });
});

describe('ConsumerLedger: its store', { timeout: 30_000 }, () => {
  const providers = Array.from({ length: 40 }, () => privateKeyToAccount(generatePrivateKey()).address);
  const agreementOf = (i: number) => `0x${(i + 1).toString(16).padStart(64, '0')}` as Hex;

  /** A MemoryStore that records every put (key and size) and can fail the put of one key once. */
  class RecordingStore extends MemoryStore {
    puts: { key: string; bytes: number }[] = [];
    failOnce: string | undefined;
    override async put(key: string, value: Json): Promise<void> {
      if (key === this.failOnce) {
        this.failOnce = undefined;
        throw new Error('the disk went away');
      }
      this.puts.push({ key, bytes: JSON.stringify(value).length });
      return super.put(key, value);
    }
  }

  it('writes one small entry per payment, however many agreements the consumer has', async () => {
    const store = new RecordingStore();
    const account = nativeAccount(generatePrivateKey());
    const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    for (let round = 1; round <= 3; round++) {
      for (const [i, provider] of providers.entries()) {
        await ledger.payInvoice(invoice(provider, agreementOf(i), BigInt(round) * 10n));
      }
    }
    store.puts = [];
    await ledger.payInvoice(invoice(providers[7]!, agreementOf(7), 40n));
    assert.equal(store.puts.length, 1, 'one write');
    assert.equal(store.puts[0]!.key, entryKey(ledger.key, agreementKey(providers[7]!, agreementOf(7))));
    assert.ok(store.puts[0]!.bytes < 1_000, `the entry is ${store.puts[0]!.bytes} bytes`);
    // A restarted ledger reads the total from the entries: the index was last written with the 40th
    // agreement's first payment.
    const reopened = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    assert.equal(await reopened.total(), 40n * 30n + 10n);
    assert.equal(await reopened.paid(providers[7]!, agreementOf(7)), 40n);
    assert.equal(
      (await reopened.payInvoice(invoice(providers[0]!, agreementOf(0), 35n))).promise.total,
      40n * 30n + 15n,
    );
  });

  it('never signs a lower total after a crash between a new agreement’s two writes', async () => {
    const store = new RecordingStore();
    const { account } = countingAccount();
    const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    const paid = await ledger.payInvoice(invoice(providers[0]!, agreementOf(0), 100n));
    // The new agreement is listed, then its entry's write fails: the promise never leaves.
    store.failOnce = entryKey(ledger.key, agreementKey(providers[1]!, agreementOf(1)));
    await assert.rejects(ledger.payInvoice(invoice(providers[1]!, agreementOf(1), 50n)), /the disk went away/);
    const reopened = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    assert.equal(await reopened.total(), paid.promise.total);
    assert.equal(await reopened.paid(providers[1]!, agreementOf(1)), 0n);
    const next = await reopened.payInvoice(invoice(providers[1]!, agreementOf(1), 50n));
    assert.equal(next.promise.total, 150n);
    assert.equal(next.increment, 50n);
  });

  it('keeps the total of an agreement it forgets', async () => {
    const store = new RecordingStore();
    const { account } = countingAccount();
    const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    await ledger.payInvoice(invoice(providers[0]!, agreementOf(0), 10n));
    await ledger.payInvoice(invoice(providers[1]!, agreementOf(1), 20n));
    await ledger.payInvoice(invoice(providers[1]!, agreementOf(1), 25n)); // the only record of total 35
    await ledger.forget(providers[1]!, agreementOf(1));
    assert.equal(await store.get(entryKey(ledger.key, agreementKey(providers[1]!, agreementOf(1)))), undefined);
    const reopened = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    assert.equal(await reopened.total(), 35n);
    assert.equal((await reopened.payInvoice(invoice(providers[0]!, agreementOf(0), 11n))).promise.total, 36n);
  });

  it('reads a version 1 document (every entry in it) and writes the new layout on its next payment', async () => {
    const store = new RecordingStore();
    const { account } = countingAccount();
    const first = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    const a = await first.payInvoice(invoice(providers[0]!, agreementOf(0), 10n));
    const b = await first.payInvoice(invoice(providers[1]!, agreementOf(1), 20n));
    // The same state as version 1 wrote it: one document.
    const entry = (payment: typeof a, paid: string) => ({
      paid,
      hashlocks: [payment.promise.hashlock],
      last: encodeMessage(payment.promise),
    });
    const old = new RecordingStore();
    await old.put(first.key, {
      version: 1,
      hub: HUB,
      chainId: CHAIN,
      consumer: first.consumer,
      total: '30',
      agreements: {
        [agreementKey(providers[0]!, agreementOf(0))]: entry(a, '10'),
        [agreementKey(providers[1]!, agreementOf(1))]: entry(b, '20'),
      },
    } as Json);
    const upgraded = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store: old });
    assert.equal(await upgraded.total(), 30n);
    assert.equal(await upgraded.paid(providers[1]!, agreementOf(1)), 20n);
    // A hashlock the old document remembers is still refused.
    await rejectsWith(
      upgraded.payInvoice({ ...invoice(providers[0]!, agreementOf(0), 15n), hashlock: a.promise.hashlock }),
      InvoiceRejectedError,
    );
    await upgraded.payInvoice(invoice(providers[0]!, agreementOf(0), 15n));
    assert.equal(((await old.get(first.key)) as { version: number }).version, 2);
    const reopened = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store: old });
    assert.equal(await reopened.total(), 35n);
    assert.equal(await reopened.paid(providers[1]!, agreementOf(1)), 20n);
  });
});

describe('ConsumerLedger.reissue', { timeout: 30_000 }, () => {
  const provider = privateKeyToAccount(generatePrivateKey()).address;
  const agreementId = `0x${'b2'.repeat(32)}` as Hex;
  const other = `0x${'c3'.repeat(32)}` as Hex;

  it('signs the last promise again for another hashlock: the same totals, nothing more paid', async () => {
    const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account: countingAccount().account });
    await ledger.payInvoice(invoice(provider, agreementId, 100n));
    const refused = await ledger.payInvoice(invoice(provider, agreementId, 250n));
    await ledger.payInvoice(invoice(provider, other, 40n));
    const fresh = invoice(provider, agreementId, 250n);
    const again = await ledger.reissue(fresh, refused.promise.hashlock);
    assert.equal(again.increment, 0n);
    assert.equal(again.repeated, false);
    assert.equal(again.promise.hashlock, fresh.hashlock.toLowerCase());
    assert.equal(again.promise.total, refused.promise.total, 'the consumer total of the refused promise');
    assert.deepEqual(again.promise.agreement, refused.promise.agreement);
    assert.equal(await ledger.total(), 290n);
    assert.equal(await ledger.paid(provider, agreementId), 250n);
    // The new promise is the agreement's last: sent again as it is, and the next one pays on from it.
    assert.equal((await ledger.payInvoice(fresh)).repeated, true);
    assert.equal((await ledger.payInvoice(invoice(provider, agreementId, 300n))).increment, 50n);
  });

  it('refuses anything but the last promise (NOT_LAST) and a hashlock paid before (REUSED_HASHLOCK)', async () => {
    const ledger = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account: countingAccount().account });
    const first = await ledger.payInvoice(invoice(provider, agreementId, 100n));
    const last = await ledger.payInvoice(invoice(provider, agreementId, 200n));
    const stale = await rejectsWith(
      ledger.reissue(invoice(provider, agreementId, 100n), first.promise.hashlock),
      InvoiceRejectedError,
    );
    assert.equal(stale.reason, 'NOT_LAST');
    const otherTotal = await rejectsWith(
      ledger.reissue(invoice(provider, agreementId, 150n), last.promise.hashlock),
      InvoiceRejectedError,
    );
    assert.equal(otherTotal.reason, 'NOT_LAST');
    const unknown = await rejectsWith(
      ledger.reissue(invoice(provider, other, 100n), last.promise.hashlock),
      InvoiceRejectedError,
    );
    assert.equal(unknown.reason, 'NOT_LAST');
    const reused = await rejectsWith(
      ledger.reissue(invoice(provider, agreementId, 200n, { hashlock: first.promise.hashlock }), last.promise.hashlock),
      InvoiceRejectedError,
    );
    assert.equal(reused.reason, 'REUSED_HASHLOCK');
    assert.equal(await ledger.total(), 200n, 'nothing signed');
  });
});

describe('FileStore', { timeout: 30_000 }, () => {
  let directory: string;
  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'chit-store-'));
  });
  after(() => rm(directory, { recursive: true, force: true }));

  it('carries a consumer ledger across a restart', async () => {
    const store = new FileStore(path.join(directory, 'e'));
    const { account } = countingAccount();
    const provider = privateKeyToAccount(generatePrivateKey()).address;
    const first = new ConsumerLedger({ hub: HUB, chainId: CHAIN, account, store });
    const clock = new SimClock();
    const session = new ConsumerSession({
      ledger: first,
      provider,
      prices: { perMinute: 60n, perGiB: 0n },
      clock: clock.read,
    });
    clock.advance(MINUTE);
    await session.pay(invoice(provider, `0x${'d4'.repeat(32)}`, 60n));
    const second = new ConsumerLedger({
      hub: HUB,
      chainId: CHAIN,
      account,
      store: new FileStore(path.join(directory, 'e')),
    });
    assert.equal(await second.total(), 60n);
    await store.compact(); // the journal folded into a file per key
    const file = (key: string) => path.join(directory, 'e', `${encodeURIComponent(key)}.json`);
    const index = JSON.parse(await readFile(file(first.key), 'utf8'));
    assert.equal(index.version, 2);
    assert.deepEqual(index.agreements, [`${provider.toLowerCase()}:${'d4'.repeat(32).replace(/^/, '0x')}`]);
    const entry = JSON.parse(await readFile(file(entryKey(first.key, index.agreements[0])), 'utf8'));
    assert.equal(entry.paid, '60');
    assert.equal(entry.last.total, '60');
    await writeFile(path.join(directory, 'e', 'junk.tmp'), 'x'); // unrelated files are not keys
    assert.equal((await store.keys()).length, 2);
  });
});

// ---------------------------------------------------------------- providers, against a reference hub

interface Peer {
  provider: ProviderSession;
  consumer: ConsumerSession;
  /** Invoices the consumer did not pay, and why. */
  refusals: unknown[];
  /** Hub promises the provider got. */
  hubPromises: SignedHubPromise[];
  /** When false, invoices are not delivered: a consumer that stopped paying. */
  paying: boolean;
  /** The last invoice delivered. */
  lastInvoice?: Invoice;
}

describe('ProviderSession against a reference hub', { timeout: 30_000 }, () => {
  let hub: ReferenceHub;
  const clock = new SimClock();
  const hubClient = () => new HubClient({ url: hub.url, retry: { baseDelayMs: 1, maxDelayMs: 5 } });

  before(async () => {
    hub = await startReferenceHub({ clock: clock.read, relayerFee: 10n ** 14n });
  });
  after(() => hub.stop());

  function consumerSide(deposit = 10n * TOKEN) {
    const { account, counter } = countingAccount();
    hub.deposit(account.address, deposit);
    const ledger = new ConsumerLedger({ hub: hub.hub, chainId: hub.chainId, account });
    return { account, counter, ledger };
  }

  function providerLedger(options: { store?: Store; key?: Hex; policy?: SettlementPolicy; client?: HubClient } = {}) {
    const account = privateKeyToAccount(options.key ?? generatePrivateKey());
    return new ProviderLedger({
      hub: options.client ?? hubClient(),
      account,
      store: options.store ?? new MemoryStore(),
      expect: { hub: hub.hub, chainId: hub.chainId, operator: hub.operator },
      clock: clock.read,
      settlementPolicy: options.policy,
      settlementCheckMs: 0,
    });
  }

  /** A provider session and a consumer session, wired through the wire format. */
  function connect(
    ledger: ProviderLedger,
    consumerLedger: ConsumerLedger,
    prices: { provider: Prices; consumer?: Prices },
    options: Partial<ProviderSessionOptions> = {},
  ): Peer {
    const peer: Peer = { refusals: [], hubPromises: [], paying: true } as unknown as Peer;
    peer.provider = new ProviderSession({
      ledger,
      consumer: consumerLedger.consumer,
      prices: prices.provider,
      clock: clock.read,
      send: async (sent) => {
        const received = overWire('invoice', sent);
        peer.lastInvoice = received;
        if (!peer.paying) return;
        try {
          const promise = await peer.consumer.pay(received);
          peer.hubPromises.push(await peer.provider.receivePromise(overWire('consumerPromise', promise)));
        } catch (error) {
          peer.refusals.push(error);
        }
      },
      ...options,
    });
    peer.consumer = new ConsumerSession({
      ledger: consumerLedger,
      provider: ledger.provider,
      agreementId: peer.provider.agreementId,
      prices: prices.consumer ?? prices.provider,
      clock: clock.read,
    });
    return peer;
  }

  const perMinute = (amount: bigint): Prices => ({ perMinute: amount, perGiB: 0n });

  it('is paid per time: invoices each interval, exchanges, stores the hub promise; R goes in the box, never revealed apart', async () => {
    const consumer = consumerSide();
    const ledger = providerLedger();
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    assert.equal(await peer.provider.tick(), undefined, 'nothing is due at once');
    for (let minute = 1; minute <= 5; minute++) {
      clock.advance(MINUTE);
      const sent = await peer.provider.tick();
      assert.equal(sent?.agreementTotal, (BigInt(minute) * TOKEN) / 100n);
    }
    assert.deepEqual(peer.refusals, []);
    assert.equal(peer.hubPromises.length, 5);
    const latest = peer.hubPromises.at(-1)!;
    assert.equal(latest.total, (5n * TOKEN) / 100n);
    assert.ok(verifyHubPromise(latest, hub.operator));
    assert.equal(hub.providerTotal(ledger.provider), latest.total);
    assert.equal(hub.credited(consumer.account.address), latest.total);
    assert.equal(await consumer.ledger.total(), latest.total);
    assert.deepEqual((await ledger.latest()).hubPromise, latest);
    assert.equal(peer.provider.paid, (5n * TOKEN) / 100n);
    assert.equal(peer.provider.unpaidInvoices, 0);
    const stored = await ledger.store.get(ledger.key);
    assert.equal((stored as { unrevealed: unknown }).unrevealed, null, 'no R is left to reveal');
    assert.ok(!hub.requests.includes('POST /v1/reveal'), 'the hub opened every R from its box');
  });

  it('stores R before the invoice leaves, so a restart between the two loses nothing', async () => {
    const consumer = consumerSide();
    const memory = new MemoryStore();
    // Writes land 20 ms after they are made: an invoice sent before its R is stored would be seen.
    const slow: Store = {
      get: (key) => memory.get(key),
      put: (key, value) => new Promise((resolve) => setTimeout(() => resolve(memory.put(key, value)), 20)),
      delete: (key) => memory.delete(key),
    };
    const key = generatePrivateKey();
    const ledger = providerLedger({ key, store: slow });
    let storedWhenSent = false;
    const sessionOptions = {
      ledger,
      consumer: consumer.ledger.consumer,
      prices: perMinute(TOKEN / 100n),
      clock: clock.read,
      send: async (sent: Invoice) => {
        const documents = await Promise.all(memory.keys().map((k) => memory.get(k)));
        storedWhenSent = documents.some((document) => JSON.stringify(document).includes(sent.hashlock));
      },
    };
    const provider = new ProviderSession(sessionOptions);
    const paying = new ConsumerSession({
      ledger: consumer.ledger,
      provider: ledger.provider,
      agreementId: provider.agreementId,
      prices: perMinute(TOKEN / 100n),
      clock: clock.read,
    });
    clock.advance(MINUTE);
    const sent = (await provider.tick())!;
    assert.equal(storedWhenSent, true);
    // The provider restarts before the consumer's promise arrives.
    const restarted = new ProviderSession({
      ...sessionOptions,
      ledger: providerLedger({ key, store: slow }),
      agreementId: provider.agreementId,
    });
    const promise = await paying.pay(overWire('invoice', sent));
    const hubPromise = await restarted.receivePromise(overWire('consumerPromise', promise));
    assert.equal(hubPromise.total, TOKEN / 100n);
  });

  it('is paid per traffic: invoices early once the unpaid amount passes the limit', async () => {
    const consumer = consumerSide();
    const ledger = providerLedger();
    const prices = { perMinute: 0n, perGiB: TOKEN / 10n }; // 64 MiB cost 0.00625
    const peer = connect(
      ledger,
      consumer.ledger,
      { provider: prices },
      { unpaidLimit: TOKEN / 100n, intervalMs: 10 * MINUTE },
    );
    const traffic = (bytes: bigint) => {
      peer.provider.addTraffic(bytes);
      peer.consumer.addTraffic(bytes);
    };
    clock.advance(6_000);
    traffic(64n * MIB);
    assert.equal(await peer.provider.tick(), undefined, 'under the limit, before the interval');
    traffic(64n * MIB);
    const sent = await peer.provider.tick();
    assert.equal(sent?.agreementTotal, (125n * TOKEN) / 10_000n);
    assert.equal(peer.hubPromises.at(-1)?.total, (125n * TOKEN) / 10_000n);
    traffic(128n * MIB);
    assert.equal(await peer.provider.tick(), undefined, 'not twice within minIntervalMs');
    clock.advance(5_000);
    assert.equal((await peer.provider.tick())?.agreementTotal, (25n * TOKEN) / 1_000n);
    assert.equal(peer.hubPromises.at(-1)?.total, (25n * TOKEN) / 1_000n);
    assert.deepEqual(peer.refusals, []);
  });

  it('is paid per time and traffic, the consumer measuring slightly less than the provider', async () => {
    const consumer = consumerSide();
    const ledger = providerLedger();
    const prices = { perMinute: TOKEN / 1_000n, perGiB: TOKEN / 10n };
    const peer = connect(ledger, consumer.ledger, { provider: prices });
    for (let minute = 1; minute <= 3; minute++) {
      clock.advance(MINUTE);
      peer.provider.addTraffic(200n * MIB);
      peer.consumer.addTraffic(196n * MIB); // 2 % lost on the way
      await peer.provider.tick();
    }
    assert.deepEqual(peer.refusals, []);
    const due = (3n * TOKEN) / 1_000n + (600n * MIB * (TOKEN / 10n)) / GIB;
    assert.equal(peer.hubPromises.at(-1)?.total, due);
  });

  it('is refused when it overcharges: nothing signed, nothing exchanged, and it stops serving', async () => {
    const consumer = consumerSide();
    const ledger = providerLedger();
    const stops: number[] = [];
    const peer = connect(ledger, consumer.ledger, {
      provider: perMinute(TOKEN / 50n),
      consumer: perMinute(TOKEN / 100n),
    });
    peer.provider.on('stop', (unpaid) => stops.push(unpaid));
    for (let minute = 1; minute <= 4; minute++) {
      clock.advance(MINUTE);
      await peer.provider.tick();
    }
    assert.equal(peer.refusals.length, 3);
    for (const refusal of peer.refusals) assert.ok(refusal instanceof OverchargeError);
    assert.equal(consumer.counter.signatures, 0);
    assert.equal(await consumer.ledger.total(), 0n);
    assert.equal(hub.providerTotal(ledger.provider), 0n);
    assert.equal(peer.provider.shouldServe(), false);
    assert.deepEqual(stops, [3]);
  });

  it('stops serving a consumer that stops paying after N unpaid invoices, and resumes when it pays', async () => {
    const consumer = consumerSide();
    const ledger = providerLedger();
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) }, { maxUnpaidInvoices: 2 });
    const events: string[] = [];
    peer.provider.on('stop', () => events.push('stop'));
    peer.provider.on('resume', () => events.push('resume'));
    clock.advance(MINUTE);
    await peer.provider.tick();
    assert.equal(peer.hubPromises.length, 1);
    peer.paying = false;
    clock.advance(MINUTE);
    await peer.provider.tick();
    assert.equal(peer.provider.shouldServe(), true, 'one unpaid invoice is normal');
    clock.advance(MINUTE);
    await peer.provider.tick();
    assert.equal(peer.provider.unpaidInvoices, 2);
    assert.equal(peer.provider.shouldServe(), false);
    clock.advance(MINUTE);
    assert.equal(await peer.provider.tick(), undefined, 'no more invoices while not serving');
    assert.deepEqual(events, ['stop']);
    // The consumer comes back and pays the latest invoice.
    const promise = await peer.consumer.pay(peer.lastInvoice!);
    const hubPromise = await peer.provider.receivePromise(overWire('consumerPromise', promise));
    assert.equal(hubPromise.total, (3n * TOKEN) / 100n);
    assert.equal(peer.provider.shouldServe(), true);
    assert.deepEqual(events, ['stop', 'resume']);
  });

  it('keeps the total exact when a consumer pays 3 providers at once', async () => {
    const consumer = consumerSide();
    const peers = [1n, 2n, 3n].map((n) =>
      connect(providerLedger(), consumer.ledger, { provider: perMinute((n * TOKEN) / 100n) }),
    );
    for (let minute = 1; minute <= 6; minute++) {
      clock.advance(MINUTE);
      await Promise.all(peers.map((peer) => peer.provider.tick()));
    }
    for (const peer of peers) assert.deepEqual(peer.refusals, []);
    const totals = peers.map((peer) => hub.providerTotal(peer.provider.ledger.provider));
    assert.deepEqual(totals, [(6n * TOKEN) / 100n, (12n * TOKEN) / 100n, (18n * TOKEN) / 100n]);
    const sum = totals.reduce((a, b) => a + b, 0n);
    assert.equal(await consumer.ledger.total(), sum);
    assert.equal(hub.credited(consumer.account.address), sum);
  });

  it('recovers its latest promise and R after losing its store, and goes on from the hub’s total', async () => {
    const consumer = consumerSide();
    const key = generatePrivateKey();
    const ledger = providerLedger({ key });
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    clock.advance(MINUTE);
    await peer.provider.tick();
    clock.advance(MINUTE);
    await peer.provider.tick();
    const { hubPromise: before, preimage: lostR } = await ledger.latest();
    assert.equal(before?.total, (2n * TOKEN) / 100n);

    // The store is gone: a new ledger on an empty store recovers from the hub when it opens.
    const store = new MemoryStore();
    const fresh = providerLedger({ key, store });
    const { hubPromise: recovered, preimage } = await fresh.latest();
    assert.equal(recovered?.total, before?.total);
    assert.equal(recovered?.hashlock, before?.hashlock);
    assert.equal(preimage, lostR);
    assert.ok(hub.requests.includes('POST /v1/recovery'));

    // A new session of the recovered provider is paid on top of the recovered total.
    const next = connect(fresh, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    clock.advance(MINUTE);
    await next.provider.tick();
    assert.deepEqual(next.refusals, []);
    assert.equal(next.hubPromises[0]?.total, (3n * TOKEN) / 100n);
    assert.equal(hub.providerTotal(fresh.provider), (3n * TOKEN) / 100n);
  });

  it('reveals, once, an R that a store of an earlier version left unrevealed, then exchanges on', async () => {
    const consumer = consumerSide();
    const key = generatePrivateKey();
    const store = new MemoryStore();
    const ledger = providerLedger({ key, store });
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    clock.advance(MINUTE);
    await peer.provider.tick();
    // An earlier ledger revealed R after each exchange and stored it as unrevealed until then.
    const document = (await store.get(ledger.key)) as { latestPreimage: Hex; unrevealed: Hex | null };
    await store.put(ledger.key, { ...document, unrevealed: document.latestPreimage });
    const reveals = () => hub.requests.filter((r) => r === 'POST /v1/reveal').length;
    const before = reveals();
    const reopened = providerLedger({ key, store });
    const next = connect(reopened, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    clock.advance(MINUTE);
    await next.provider.tick();
    clock.advance(MINUTE);
    await next.provider.tick();
    assert.deepEqual(next.refusals, []);
    assert.equal(next.hubPromises.at(-1)?.total, (3n * TOKEN) / 100n);
    assert.equal(reveals(), before + 1, 'revealed before the first exchange, and never again');
    assert.equal(((await store.get(ledger.key)) as { unrevealed: Hex | null }).unrevealed, null);
  });

  it('resynchronises through a recovery when its idea of the previous exchange is behind the hub’s', async () => {
    const consumer = consumerSide();
    const key = generatePrivateKey();
    const store = new MemoryStore();
    const ledger = providerLedger({ key, store });
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    await ledger.open();
    const backup = await store.get(ledger.key); // a backup taken before the exchange
    clock.advance(MINUTE);
    await peer.provider.tick();
    await store.put(ledger.key, backup!); // restored from the backup: the exchange and its R are forgotten
    const restored = providerLedger({ key, store });
    const next = connect(restored, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    clock.advance(MINUTE);
    await next.provider.tick();
    assert.deepEqual(next.refusals, []);
    assert.equal(next.hubPromises[0]?.total, (2n * TOKEN) / 100n);
  });

  it('gets the same hub promise when an exchange answer is lost and the request is sent again', async () => {
    const consumer = consumerSide();
    let forwardThenFail = 0;
    const flaky: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (String(input).endsWith('/v1/exchange') && forwardThenFail > 0) {
        forwardThenFail--;
        throw new TypeError('fetch failed: connection reset');
      }
      return response;
    };
    const ledger = providerLedger({ client: new HubClient({ url: hub.url, fetch: flaky, retry: { attempts: 1 } }) });
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    forwardThenFail = 1;
    clock.advance(MINUTE);
    await peer.provider.tick();
    assert.equal(peer.refusals.length, 1);
    assert.ok(peer.refusals[0] instanceof HubUnreachableError);
    assert.equal(hub.providerTotal(ledger.provider), TOKEN / 100n, 'the hub applied it');
    const recoveries = hub.requests.filter((r) => r === 'POST /v1/recovery').length;
    // The next invoice is paid: the ledger first sends the unanswered request again, byte for byte,
    // learns its hub promise, and chains the new exchange on it.
    clock.advance(MINUTE);
    await peer.provider.tick();
    assert.equal(peer.refusals.length, 1);
    assert.equal(peer.hubPromises.at(-1)?.total, (2n * TOKEN) / 100n);
    assert.equal(hub.providerTotal(ledger.provider), (2n * TOKEN) / 100n, 'each increment credited once');
    assert.equal(
      hub.requests.filter((r) => r === 'POST /v1/recovery').length,
      recoveries,
      'no resynchronisation needed',
    );
    assert.equal(peer.provider.unpaidInvoices, 0);
    // And the HubClient's own retries do the same for a connection cut after the hub answered.
    hub.dropNextAnswer('/v1/exchange');
    const retrying = connect(providerLedger(), consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    clock.advance(MINUTE);
    await retrying.provider.tick();
    assert.deepEqual(retrying.refusals, []);
    assert.equal(hub.credited(consumer.account.address), (3n * TOKEN) / 100n);
  });

  it('refuses a hub promise with the wrong total and stores nothing', async () => {
    const consumer = consumerSide();
    const operator = privateKeyToAccount(hub.operatorKey);
    const cheating: typeof fetch = async (input, init) => {
      const response = await fetch(input, init);
      if (!String(input).endsWith('/v1/exchange') || response.status !== 200) return response;
      const { hubPromise } = decodeMessage('exchangeResponse', await response.json());
      const short = await signHubPromise(operator, { ...hubPromise, total: hubPromise.total - 1n });
      return new Response(JSON.stringify({ hubPromise: encodeMessage(short) }), { status: 200 });
    };
    const ledger = providerLedger({ client: new HubClient({ url: hub.url, fetch: cheating }) });
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    clock.advance(MINUTE);
    await peer.provider.tick();
    const error = peer.refusals[0];
    assert.ok(error instanceof HubAnswerRejectedError, String(error));
    assert.equal(error.problem, 'WRONG_TOTAL');
    assert.equal(error.expected, `${TOKEN / 100n} (previous total + increment)`);
    assert.equal((await ledger.latest()).hubPromise, null);
  });

  it('refuses a hub whose operator is not the one expected', async () => {
    const ledger = new ProviderLedger({
      hub: hubClient(),
      account: privateKeyToAccount(generatePrivateKey()),
      expect: { operator: privateKeyToAccount(generatePrivateKey()).address },
    });
    const error = await rejectsWith(ledger.open(), HubAnswerRejectedError);
    assert.equal(error.problem, 'WRONG_OPERATOR');
  });

  it('refuses promises that do not pay an invoice of the session, before asking the hub', async () => {
    const consumer = consumerSide();
    const ledger = providerLedger();
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    peer.paying = false;
    clock.advance(MINUTE);
    const sent = (await peer.provider.tick())!;
    const exchanges = hub.requests.filter((r) => r === 'POST /v1/exchange').length;
    const sign = (changes: Partial<SignedConsumerPromise>) =>
      signConsumerPromise(consumer.account, {
        hub: sent.hub,
        chainId: sent.chainId,
        consumer: consumer.account.address,
        total: sent.agreementTotal,
        hashlock: sent.hashlock,
        agreement: { provider: sent.provider, id: sent.agreementId, total: sent.agreementTotal },
        ...changes,
      });
    const unknown = await rejectsWith(
      peer.provider.receivePromise(await sign({ hashlock: newHashlock().hashlock })),
      PromiseRejectedError,
    );
    assert.equal(unknown.reason, 'UNKNOWN_HASHLOCK');
    const wrongTotal = await sign({ agreement: { provider: sent.provider, id: sent.agreementId, total: 1n } });
    assert.equal(
      (await rejectsWith(peer.provider.receivePromise(wrongTotal), PromiseRejectedError)).reason,
      'WRONG_TOTAL',
    );
    const good = await sign({});
    await rejectsWith(peer.provider.receivePromise({ ...good, total: good.total + 1n }), InvalidSignatureError);
    const stranger = countingAccount().account;
    const foreign = await signConsumerPromise(stranger, { ...good, consumer: stranger.address });
    assert.equal(
      (await rejectsWith(peer.provider.receivePromise(foreign), PromiseRejectedError)).reason,
      'WRONG_CONSUMER',
    );
    assert.equal(hub.requests.filter((r) => r === 'POST /v1/exchange').length, exchanges);
    assert.equal((await peer.provider.receivePromise(good)).total, TOKEN / 100n);
  });

  it('passes on the hub’s OVERSPEND when the consumer cannot pay, leaving the invoice unpaid', async () => {
    const consumer = consumerSide(TOKEN / 200n);
    const ledger = providerLedger();
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    clock.advance(MINUTE);
    await peer.provider.tick();
    const error = peer.refusals[0];
    assert.ok(error instanceof HubError, String(error));
    assert.equal(error.code, 'OVERSPEND');
    assert.equal(peer.provider.unpaidInvoices, 1);
    assert.equal(hub.providerTotal(ledger.provider), 0n);
  });

  it('asks for a settlement when its policy says so, showing the fee first', async () => {
    const consumer = consumerSide();
    const policy = new SettlementPolicy({ threshold: (3n * TOKEN) / 100n, maxFeeShareBps: 500 });
    const ledger = providerLedger({ policy });
    const attempts: unknown[] = [];
    const peer = connect(ledger, consumer.ledger, { provider: perMinute(TOKEN / 100n) });
    peer.provider.on('settlement', (attempt) => attempts.push(attempt));
    clock.advance(MINUTE);
    await peer.provider.tick();
    assert.equal(hub.requests.filter((r) => r.startsWith('GET /v1/quotes')).length, 0, 'below threshold: no quote');
    clock.advance(2 * MINUTE);
    await peer.provider.tick();
    const { quote, decision } = await ledger.settlementPreview();
    assert.equal(quote.amount, (3n * TOKEN) / 100n);
    assert.equal(decision.fee, quote.hubFee + quote.relayerFee);
    assert.equal(decision.settle, true);
    const settled = attempts.find((a) => (a as { job?: unknown }).job) as SettlementAttempt;
    assert.equal(settled.job?.status, 'queued');
    assert.equal(settled.decision?.reason, 'WORTH_IT');
    assert.equal(settled.decision?.net, quote.amount - quote.hubFee - quote.relayerFee);
    clock.advance(MINUTE);
    await peer.provider.tick();
    assert.equal((attempts.at(-1) as SettlementAttempt).pending?.status, 'queued', 'no second request while one runs');
    assert.equal(hub.requests.filter((r) => r === 'POST /v1/settlements').length, 1);
    hub.confirmSettlements();
    const after = await ledger.maybeSettle({ force: true });
    assert.equal(after.decision?.reason, 'BELOW_THRESHOLD');
    assert.equal(after.quote?.amount, TOKEN / 100n, 'only what was earned since');
  });

  describe("the ledger's store, over many agreements", () => {
    /** Pays `provider` `amount` more on `agreementId` from `consumer`, and exchanges the promise. */
    async function pay(ledger: ProviderLedger, consumer: ConsumerLedger, agreementId: Hex, total: bigint) {
      const { preimage, hashlock } = newHashlock();
      const { promise } = await consumer.payInvoice({
        hub: hub.hub,
        chainId: hub.chainId,
        provider: ledger.provider,
        agreementId,
        agreementTotal: total,
        hashlock,
        fee: 100,
      });
      return ledger.exchange(promise, preimage);
    }
    const documentOf = async (store: MemoryStore, ledger: ProviderLedger) =>
      (await store.get(ledger.key)) as { credited: Record<string, string> };
    /** The ledger of the provider `key` on `store`, its journal `creditedJournal` long (default: the SDK's). */
    const ledgerOn = (store: Store, key: Hex, creditedJournal?: number) =>
      new ProviderLedger({
        hub: hubClient(),
        account: privateKeyToAccount(key),
        store,
        expect: { hub: hub.hub, chainId: hub.chainId, operator: hub.operator },
        clock: clock.read,
        ...(creditedJournal !== undefined && { creditedJournal }),
      });

    it('writes the credited totals that changed since its checkpoint, and reads every total back', async () => {
      const store = new MemoryStore();
      const key = generatePrivateKey();
      const ledger = ledgerOn(store, key, 3);
      const agreements = Array.from({ length: 8 }, (_, i) => ({
        id: `0x${(i + 1).toString(16).padStart(64, '0')}` as Hex,
        total: 0n,
      }));
      const consumer = consumerSide().ledger;
      for (const [i, agreement] of agreements.entries()) {
        agreement.total += BigInt(i + 1) * 1_000n;
        await pay(ledger, consumer, agreement.id, agreement.total);
        assert.ok(Object.keys((await documentOf(store, ledger)).credited).length <= 3, `after ${i + 1} agreements`);
      }
      const checkpoint = (await store.get(`${ledger.key}/credited`)) as { credited: Record<string, string> };
      assert.ok(Object.keys(checkpoint.credited).length >= 5);
      // A ledger opened on the store knows every agreement's total, and goes on from them.
      const again = ledgerOn(store, key, 3);
      for (const agreement of agreements) assert.equal(await again.credited(agreement.id), agreement.total);
      agreements[0]!.total += 500n;
      const hubPromise = await pay(again, consumer, agreements[0]!.id, agreements[0]!.total);
      assert.equal(hubPromise.total, 36_000n + 500n);
      // A ledger with the default journal reads the same totals from this store.
      const whole = ledgerOn(store, key);
      for (const agreement of agreements) assert.equal(await whole.credited(agreement.id), agreement.total);
    });

    it('a document older than its checkpoint does not lower a credited total', async () => {
      const store = new MemoryStore();
      const key = generatePrivateKey();
      const ledger = ledgerOn(store, key, 2);
      const consumer = consumerSide().ledger;
      const [a, b, c, d] = Array.from({ length: 4 }, () => `0x${randomBytes(32).toString('hex')}` as Hex);
      await pay(ledger, consumer, a!, 1_000n);
      const older = await store.get(ledger.key);
      await pay(ledger, consumer, a!, 3_000n);
      for (const id of [b!, c!, d!]) await pay(ledger, consumer, id, 1_000n);
      const checkpoint = (await store.get(`${ledger.key}/credited`)) as { credited: Record<string, string> };
      assert.equal(checkpoint.credited[a!.toLowerCase()], '3000', 'the checkpoint holds the later total');
      // The document restored from a backup taken before: it says 1,000 for the agreement.
      await store.put(ledger.key, older!);
      const reopened = ledgerOn(store, key, 2);
      assert.equal(await reopened.credited(a!), 3_000n);
      assert.equal(await reopened.credited(b!), 1_000n);
    });

    it('a crash between the checkpoint and the document reads back the state stored last', async () => {
      const memory = new MemoryStore();
      let crashAfterCheckpoint = false;
      // A store that fails the document's write right after a checkpoint, as a process killed between them.
      const store: Store = {
        get: (k) => memory.get(k),
        put: async (k, value) => {
          if (crashAfterCheckpoint && !k.endsWith('/credited') && (await memory.get(`${k}/credited`)) !== undefined) {
            crashAfterCheckpoint = false;
            throw new Error('killed');
          }
          await memory.put(k, value);
        },
        delete: (k) => memory.delete(k),
      } as Store;
      const key = generatePrivateKey();
      const ledger = ledgerOn(store, key, 2);
      const consumer = consumerSide().ledger;
      const ids = Array.from({ length: 4 }, () => `0x${randomBytes(32).toString('hex')}` as Hex);
      for (const id of ids.slice(0, 2)) await pay(ledger, consumer, id, 1_000n);
      crashAfterCheckpoint = true;
      await assert.rejects(pay(ledger, consumer, ids[2]!, 1_000n), /killed/);
      assert.equal(crashAfterCheckpoint, false, 'the crash happened');
      // Reopened: the two first agreements from the checkpoint, the third one's exchange still to finish.
      const reopened = ledgerOn(store, key, 2);
      assert.equal(await reopened.credited(ids[0]!), 1_000n);
      assert.equal(await reopened.credited(ids[1]!), 1_000n);
      const last = await pay(reopened, consumer, ids[3]!, 1_000n);
      assert.equal(last.total, 4_000n, 'the third exchange was completed first, then the fourth: each credited once');
      for (const id of ids) assert.equal(await reopened.credited(id), 1_000n);
    });
  });
});

describe("CreditedTotals (a ProviderLedger state's credited totals)", () => {
  const [a, b, c] = ['0xa', '0xb', '0xc'];

  it('takes the higher of the checkpoint and the document, and never changes a value it made', () => {
    const totals = CreditedTotals.of({ [a]: 5n, [b]: 9n }, { [a]: 7n, [b]: 3n });
    assert.deepEqual([totals.get(a), totals.get(b), totals.get(c)], [7n, 9n, 0n]);
    assert.deepEqual(totals.since(), { [a]: 7n }, 'a lower total in the document is not a change');
    const next = totals.with(c, 4n);
    assert.equal(totals.get(c), 0n, 'the earlier value is unchanged');
    assert.deepEqual(next.since(), { [a]: 7n, [c]: 4n });
  });

  it('folds into a new checkpoint; a state made from the folded one keeps only what changed since', () => {
    const stored = CreditedTotals.of({ [a]: 5n }, { [b]: 2n });
    const next = stored.withAll([[c, 1n]]);
    const checkpoint = stored.folded();
    assert.deepEqual(checkpoint.all(), { [a]: 5n, [b]: 2n });
    assert.equal(checkpoint.sinceCount, 0);
    const rebased = next.rebasedOn(checkpoint);
    assert.deepEqual(rebased.since(), { [c]: 1n });
    assert.deepEqual(rebased.all(), { [a]: 5n, [b]: 2n, [c]: 1n });
    // Totals of another origin are compared whole: a total of theirs the checkpoint lacks stays since.
    const other = CreditedTotals.of({ [a]: 6n }, {});
    assert.deepEqual(other.rebasedOn(checkpoint).since(), { [a]: 6n });
  });
});
