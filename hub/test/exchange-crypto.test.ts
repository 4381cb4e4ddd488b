import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { consumerPromiseDigestBytes, type HubPromise, hashlockOf } from '@chit/sdk';
import { nativePreimageSealer } from '@chit/sdk/node';
import { bytesToHex, getAddress, type Hex } from 'viem';
import { type CryptoCheckItem, ExchangeCryptoWork } from '../src/crypto/exchange-crypto';
import { type ExchangeCrypto, ExchangeCryptoPool, exchangeCrypto } from '../src/crypto/exchange-crypto.pool';
import { OperatorSigner } from '../src/crypto/operator-signer';

const hex = (bytes: number) => bytesToHex(randomBytes(bytes));
const operator = new OperatorSigner(hex(32));
const stranger = new OperatorSigner(hex(32));
const scope = { hub: getAddress(hex(20)), chainId: 31337 };
const sealTo = (signer: OperatorSigner) => nativePreimageSealer(signer.publicKey);

/** A consumer promise signed by `signer` (its consumer unless told), with a box sealed to `sealedTo` holding `boxed`. */
function item(options: { signer?: OperatorSigner; sealedTo?: OperatorSigner; boxed?: Hex } = {}): CryptoCheckItem {
  const consumer = new OperatorSigner(hex(32));
  const preimage = hex(32);
  const promise = {
    ...scope,
    consumer: consumer.address,
    total: 10n ** 15n,
    hashlock: hashlockOf(preimage),
    agreement: { provider: getAddress(hex(20)), id: hex(32), total: 10n ** 15n },
  };
  const signature = (options.signer ?? consumer).signDigest(consumerPromiseDigestBytes(promise));
  return {
    promise: { ...promise, signature },
    box: sealTo(options.sealedTo ?? operator)(options.boxed ?? preimage) as Hex,
  };
}

describe('exchange crypto on worker threads', () => {
  const inline = new ExchangeCryptoWork(operator.privateKey);
  let pool: ExchangeCrypto;
  before(() => {
    pool = exchangeCrypto(operator.privateKey, 2);
    assert.ok(pool instanceof ExchangeCryptoPool);
  });
  after(() => pool.close());

  it('answers what the main thread would: signers, boxes, and hub signatures', async function () {
    this.timeout(30_000);
    const items = [
      item(),
      item({ signer: stranger }),
      item({ sealedTo: stranger }),
      item({ boxed: hex(32) }),
      { ...item(), box: '0x1234' as Hex },
    ];
    const verdicts = await pool.check(items);
    assert.deepEqual(verdicts, inline.check(items));
    assert.equal(verdicts[0]!.signer, items[0]!.promise.consumer.toLowerCase());
    assert.ok(verdicts[0]!.preimage && hashlockOf(verdicts[0]!.preimage) === items[0]!.promise.hashlock);
    assert.equal(verdicts[1]!.signer, stranger.address.toLowerCase());
    assert.deepEqual([verdicts[2]!.opened, verdicts[2]!.preimage], [false, null]);
    assert.deepEqual([verdicts[3]!.opened, verdicts[3]!.preimage], [true, null]);
    assert.deepEqual([verdicts[4]!.opened, verdicts[4]!.preimage], [false, null]);

    const promises: HubPromise[] = items.map(({ promise }, i) => ({
      ...scope,
      provider: promise.agreement.provider,
      total: BigInt(i + 1),
      hashlock: promise.hashlock,
    }));
    assert.deepEqual(await pool.sign(promises), inline.sign(promises));
  });

  it('gives each of many callers of one turn its own answers, in order', async function () {
    this.timeout(30_000);
    const calls = Array.from({ length: 40 }, (_, i) => Array.from({ length: 1 + (i % 5) }, () => item()));
    const answers = await Promise.all(calls.map((items) => pool.check(items)));
    answers.forEach((verdicts, i) => {
      assert.deepEqual(
        verdicts.map((verdict) => verdict.signer),
        calls[i]!.map(({ promise }) => promise.consumer.toLowerCase()),
      );
    });
  });

  it('on a nearly idle hub runs a small job inline, with the same answers; a job right after a thread’s goes to a thread', async function () {
    this.timeout(30_000);
    // The pool's clock is the test's: time passes only when the test says so.
    let now = 0;
    const own = new ExchangeCryptoPool(operator.privateKey, 1, () => now);
    try {
      const [big, next, one] = [[item(), item(), item()], [item()], [item()]];
      // Answered by the thread just now: the next small job goes to a thread too.
      await own.check(big);
      assert.deepEqual(await own.check(next), inline.check(next));
      assert.equal(own.inlineJobs, 0);
      // Nothing for the threads for 5 ms: one exchange's check and its hub signature run inline.
      now += 5;
      assert.deepEqual(await own.check(one), inline.check(one));
      const promise: HubPromise = {
        ...scope,
        provider: one[0]!.promise.agreement.provider,
        total: 7n,
        hashlock: one[0]!.promise.hashlock,
      };
      assert.deepEqual(await own.sign([promise]), inline.sign([promise]));
      assert.equal(own.inlineJobs, 2);
      // More than two items at once still go to a thread, idle or not.
      now += 5;
      assert.deepEqual(await own.check(big), inline.check(big));
      assert.equal(own.inlineJobs, 2);
    } finally {
      await own.close();
    }
  });

  it('fails the jobs of a thread that dies, and goes on with a new thread', async function () {
    this.timeout(60_000);
    const own = exchangeCrypto(operator.privateKey, 1) as ExchangeCryptoPool;
    try {
      const [before] = own.threadIds;
      // A job of about a second of crypto, sent to the thread at the end of this turn of the event loop.
      const items = Array.from({ length: 5_000 }, () => item());
      const running = own.check(items);
      await new Promise((resolve) => setImmediate(resolve));
      // The thread stops while it works on the job (a crash of the native code, an out-of-memory).
      // biome-ignore lint/suspicious/noExplicitAny: the pool's own thread, stopped as a crash would stop it
      await (own as any).threads[0].worker.terminate();
      await assert.rejects(running, /exchange crypto thread stopped/);
      const verdicts = await own.check(items.slice(0, 3));
      assert.deepEqual(
        verdicts.map((verdict) => verdict.signer),
        items.slice(0, 3).map(({ promise }) => promise.consumer.toLowerCase()),
      );
      assert.notEqual(own.threadIds[0], before, 'another thread took over');
    } finally {
      await own.close();
    }
    await assert.rejects(own.check([item()]), /stopped/);
  });
});
