import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { keccak_256 } from '@noble/hashes/sha3';
import { bytesToHex, createWalletClient, hashTypedData, hexToBytes, http } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import {
  consumerPromiseDigest,
  consumerPromiseTypes,
  hubDomain,
  jsVerifier,
  keccak256Bytes,
  newHashlock,
  signConsumerPromise,
  verifyConsumerPromise,
} from '../src/index.js';
import { enableNativeHashing, nativeAccount, nativeVerifier } from '../src/node/index.js';

const consumer = privateKeyToAccount(`0x${'11'.repeat(32)}`);
const scope = { hub: '0x00000000000000000000000000000000000000aa', chainId: 31337 } as const;

describe('signing', () => {
  it('signs the same through a wallet client as with the account', async () => {
    const wallet = createWalletClient({ account: consumer, transport: http('http://127.0.0.1:9') });
    const { hashlock } = newHashlock();
    const promise = {
      ...scope,
      consumer: consumer.address,
      total: 1n,
      hashlock,
      agreement: { provider: consumer.address, id: hashlock, total: 1n },
    };
    assert.equal(
      (await signConsumerPromise(wallet, promise)).signature,
      (await signConsumerPromise(consumer, promise)).signature,
    );
  });
});

describe('nativeAccount', () => {
  it('signs exactly as privateKeyToAccount: digests, typed data and consumer promises, over many keys', async () => {
    for (let i = 1; i <= 40; i++) {
      const key = `0x${i.toString(16).padStart(2, '0').repeat(32)}` as const;
      const [js, native] = [privateKeyToAccount(key), nativeAccount(key)];
      assert.equal(native.address, js.address);
      const { hashlock } = newHashlock();
      const promise = {
        ...scope,
        consumer: js.address,
        total: BigInt(i) * 10n ** 15n + 7n,
        hashlock,
        agreement: { provider: consumer.address, id: hashlock, total: BigInt(i) },
      };
      const digest = consumerPromiseDigest(promise);
      assert.equal(await native.sign!({ hash: digest }), await js.sign({ hash: digest }));
      const typedData = {
        domain: hubDomain(promise),
        types: consumerPromiseTypes,
        primaryType: 'ConsumerPromise',
        message: promise,
      } as const;
      assert.equal(await native.signTypedData(typedData), await js.signTypedData(typedData));
      const signed = await signConsumerPromise(native, promise);
      assert.equal(signed.signature, (await signConsumerPromise(js, promise)).signature);
      assert.ok(verifyConsumerPromise(signed));
      assert.ok(!verifyConsumerPromise({ ...signed, total: signed.total + 1n }));
    }
  });
});

describe('verifiers', () => {
  it('the native verifier loads here', () => {
    assert.equal(nativeVerifier().kind, 'native');
  });

  for (const verifier of [jsVerifier, nativeVerifier()]) {
    describe(`${verifier.kind}`, () => {
      it('accepts the consumer signature and rejects a changed total', async () => {
        const { hashlock } = newHashlock();
        const promise = await signConsumerPromise(consumer, {
          ...scope,
          consumer: consumer.address,
          total: 10n ** 18n,
          hashlock,
          agreement: { provider: consumer.address, id: hashlock, total: 5n },
        });
        assert.equal(
          consumerPromiseDigest(promise),
          hashTypedData({
            domain: hubDomain(scope),
            types: consumerPromiseTypes,
            primaryType: 'ConsumerPromise',
            message: promise,
          }),
        );
        assert.equal(verifyConsumerPromise(promise, verifier), true);
        assert.equal(verifyConsumerPromise({ ...promise, total: promise.total + 1n }, verifier), false);
        const digest = hexToBytes(consumerPromiseDigest(promise));
        assert.equal(verifier.recover(digest, promise.signature), consumer.address.toLowerCase());
      });
    });
  }
});

describe('enableNativeHashing', () => {
  it('hashes every input as the JavaScript keccak does, call after call (one sponge, re-initialised)', () => {
    const inputs = Array.from({ length: 300 }, (_, i) => new Uint8Array(i).map((_, j) => (i * 31 + j) & 0xff));
    const expected = inputs.map((data) => keccak_256(data));
    assert.equal(enableNativeHashing(), true);
    for (const [i, data] of inputs.entries()) {
      assert.equal(bytesToHex(keccak256Bytes(data)), bytesToHex(expected[i]!), `input of ${data.length} bytes`);
    }
  });
});
