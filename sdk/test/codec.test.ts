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
  signConsumerPromise,
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

  it('rejects an unknown field, naming it', () => rejects({ ...promise, extra: 1 }, 'extra', /unrecognized key/i));
  it('rejects an unknown nested field, naming it', () =>
    rejects({ ...promise, agreement: { ...promise.agreement, x: 1 } }, 'agreement.x', /unrecognized key/i));
  it('names the first of several unknown fields', () =>
    rejects({ ...promise, agreement: { ...promise.agreement, x: 1, y: 2 } }, 'agreement.x', /unrecognized keys/i));
  it('names an unknown field inside an exchange request', () => {
    assert.throws(
      () =>
        decodeMessage('exchangeRequest', {
          promise: { ...promise, agreement: { ...promise.agreement, extra: true } },
          encryptedPreimage: `0x${'00'.repeat(93)}`,
        }),
      (error: unknown) => error instanceof MalformedMessageError && error.path === 'promise.agreement.extra',
    );
  });
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
  for (const v of ['00', '01', '1d', 'ff']) {
    it(`rejects a signature with v = 0x${v}`, () =>
      rejects({ ...promise, signature: `${promise.signature.slice(0, 130)}${v}` }, 'signature', /v = 27 or 28/));
  }
  it('accepts v = 27 or 28 in either case of hex', () => {
    const upper = `0x${promise.signature.slice(2).toUpperCase()}`;
    assert.equal(decodeMessage('consumerPromise', { ...promise, signature: upper }).signature, promise.signature);
  });
  it('rejects v = 0 or 1 in every signed message', () => {
    const raw = (signature: string) =>
      `${signature.slice(0, 130)}${(Number.parseInt(signature.slice(130), 16) - 27).toString(16).padStart(2, '0')}`;
    const messages = {
      hubPromise: vectors.hubPromise.message,
      recoveryRequest: vectors.recoveryRequest.message,
      instantExitRequest: {
        consumer: promise.consumer,
        amount: '1',
        issuedAt: '1764000000',
        signature: vectors.recoveryRequest.message.signature,
      },
    } as const;
    for (const [name, message] of Object.entries(messages)) {
      decodeMessage(name as keyof typeof messages, message);
      assert.throws(
        () => decodeMessage(name as keyof typeof messages, { ...message, signature: raw(message.signature) }),
        (error: unknown) => error instanceof MalformedMessageError && error.path === 'signature',
        name,
      );
    }
  });
  it('rejects a bad checksum', () =>
    rejects(
      { ...promise, consumer: promise.consumer.replace(/[a-f]/, (c: string) => c.toUpperCase()) },
      'consumer',
      /checksum/,
    ));
  it('rejects a non-integer chain id', () => rejects({ ...promise, chainId: 1.5 }, 'chainId', /int/i));
  it('takes an encryptedPreimage of exactly 93 bytes', () => {
    const request = (bytes: number) => ({ promise, encryptedPreimage: `0x${'ab'.repeat(bytes)}` });
    assert.equal(decodeMessage('exchangeRequest', request(93)).encryptedPreimage, `0x${'ab'.repeat(93)}`);
    for (const bytes of [0, 1, 32, 92, 94, 512]) {
      assert.throws(
        () => decodeMessage('exchangeRequest', request(bytes)),
        (error: unknown) =>
          error instanceof MalformedMessageError &&
          error.path === 'encryptedPreimage' &&
          /expected 93 bytes as 0x-hex/.test(error.shortMessage),
        `${bytes} bytes`,
      );
    }
  });
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

describe('signing', () => {
  it('turns a wallet signature with v = 0 or 1 into the wire form, v = 27 or 28', async () => {
    const decoded = decodeMessage('consumerPromise', promise);
    const { signature: _, ...unsigned } = decoded;
    for (const [raw, wire] of [
      ['00', '1b'],
      ['01', '1c'],
    ] as const) {
      const wallet = { signTypedData: async () => `${promise.signature.slice(0, 130)}${raw}` as `0x${string}` };
      const signed = await signConsumerPromise(wallet, unsigned);
      assert.equal(signed.signature, `${promise.signature.slice(0, 130)}${wire}`);
      decodeMessage('consumerPromise', encodeMessage(signed));
    }
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
