import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { secp256k1 } from '@noble/curves/secp256k1';
import { bytesToHex } from 'viem';
import {
  decodeMessage,
  encodeMessage,
  hashlockOf,
  MalformedMessageError,
  newHashlock,
  openPreimage,
  PreimageMismatchError,
  sealPreimage,
  toConsumerClaim,
} from '../src/index.js';

const vectors = JSON.parse(readFileSync(new URL('./vectors.json', import.meta.url), 'utf8'));
const promise = vectors.consumerPromise.message;

function rejects(json: unknown, path: string, pattern: RegExp) {
  assert.throws(
    () => decodeMessage('consumerPromise', json),
    (error: unknown) => {
      assert.ok(error instanceof MalformedMessageError, String(error));
      assert.equal(error.code, 'MALFORMED');
      assert.equal(error.path, path);
      assert.match(error.shortMessage, pattern);
      return true;
    },
  );
}

describe('wire codec', () => {
  it('decodes amounts to bigint and addresses to their checksummed form', () => {
    const decoded = decodeMessage('consumerPromise', { ...promise, consumer: promise.consumer.toLowerCase() });
    assert.equal(decoded.total, BigInt(promise.total));
    assert.equal(decoded.consumer, promise.consumer);
    assert.equal(typeof decoded.agreement.total, 'bigint');
  });

  it('encodes bigints as decimal strings and drops undefined fields', () => {
    assert.deepEqual(encodeMessage({ a: 10n ** 30n, b: undefined, c: [1n] }), {
      a: '1000000000000000000000000000000',
      c: ['1'],
    });
  });

  it('rejects an unknown field', () => rejects({ ...promise, extra: 1 }, '', /unrecognized key/i));
  it('rejects an unknown nested field', () =>
    rejects({ ...promise, agreement: { ...promise.agreement, x: 1 } }, 'agreement', /unrecognized key/i));
  it('rejects a missing field', () => {
    const { total: _, ...rest } = promise;
    rejects(rest, 'total', /expected string/i);
  });
  it('rejects a negative amount', () => rejects({ ...promise, total: '-1' }, 'total', /non-negative decimal/));
  it('rejects an amount with a leading zero', () => rejects({ ...promise, total: '01' }, 'total', /decimal/));
  it('rejects an amount as a JSON number', () => rejects({ ...promise, total: 5 }, 'total', /expected string/i));
  it('rejects an amount above uint256', () =>
    rejects({ ...promise, total: (1n << 256n).toString() }, 'total', /exceeds uint256/));
  it('accepts the largest uint256', () => {
    const max = ((1n << 256n) - 1n).toString();
    assert.equal(decodeMessage('consumerPromise', { ...promise, total: max }).total, BigInt(max));
  });
  it('rejects a short hashlock', () => rejects({ ...promise, hashlock: '0x1234' }, 'hashlock', /32 bytes/));
  it('rejects a 64-byte signature', () =>
    rejects({ ...promise, signature: promise.signature.slice(0, 130) }, 'signature', /65 bytes/));
  it('rejects a bad checksum', () =>
    rejects(
      { ...promise, consumer: promise.consumer.replace(/[a-f]/, (c: string) => c.toUpperCase()) },
      'consumer',
      /checksum/,
    ));
  it('rejects a non-integer chain id', () => rejects({ ...promise, chainId: 1.5 }, 'chainId', /int/i));
  it('rejects an invoice fee above 100 %', () => {
    assert.throws(
      () =>
        decodeMessage('invoice', {
          hub: promise.hub,
          chainId: 1,
          provider: promise.consumer,
          agreementId: promise.hashlock,
          agreementTotal: '1',
          hashlock: promise.hashlock,
          fee: 10_001,
        }),
      (error: unknown) => error instanceof MalformedMessageError && error.path === 'fee',
    );
  });
});

describe('preimage box', () => {
  const hubKey = bytesToHex(secp256k1.utils.randomPrivateKey());
  const hubPublicKey = bytesToHex(secp256k1.getPublicKey(hubKey.slice(2), true));

  it('is opened by the hub key only', () => {
    const { preimage } = newHashlock();
    const box = sealPreimage(hubPublicKey, preimage);
    assert.equal(openPreimage(hubKey, box), preimage);
    assert.equal(openPreimage(bytesToHex(secp256k1.utils.randomPrivateKey()), box), undefined);
  });

  it('refuses a tampered box', () => {
    const box = sealPreimage(hubPublicKey, newHashlock().preimage);
    const tampered = `${box.slice(0, -2)}${box.endsWith('00') ? '01' : '00'}` as `0x${string}`;
    assert.equal(openPreimage(hubKey, tampered), undefined);
    assert.equal(openPreimage(hubKey, '0x1234'), undefined);
  });
});

describe('claims', () => {
  it('refuse a preimage that is not the promise R', () => {
    const decoded = decodeMessage('consumerPromise', promise);
    assert.equal(hashlockOf(vectors.consumerPromise.preimage), decoded.hashlock);
    assert.throws(() => toConsumerClaim(decoded, newHashlock().preimage), PreimageMismatchError);
  });
});
