import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { secp256k1 } from '@noble/curves/secp256k1';
import { bytesToHex } from 'viem';
import { newHashlock, openPreimage, sealPreimage } from '../src/index.js';
import { nativePreimageOpener, nativePreimageSealer } from '../src/node/index.js';

describe('nativePreimageOpener', () => {
  const hubKey = bytesToHex(secp256k1.utils.randomPrivateKey());
  const hubPublicKey = bytesToHex(secp256k1.getPublicKey(hubKey.slice(2), true));
  const open = nativePreimageOpener(hubKey);

  it('opens what sealPreimage seals, as openPreimage does', () => {
    for (let i = 0; i < 20; i++) {
      const { preimage } = newHashlock();
      const box = sealPreimage(hubPublicKey, preimage);
      assert.equal(open(box), preimage);
      assert.equal(open(box.toUpperCase().replace('0X', '0x') as `0x${string}`), preimage);
      assert.equal(openPreimage(hubKey, box), preimage);
    }
  });

  it('opens nothing sealed to another key', () => {
    const other = bytesToHex(secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), true));
    assert.equal(open(sealPreimage(other, newHashlock().preimage)), undefined);
  });

  it('refuses a tampered box, a wrong length and a point off the curve', () => {
    const box = sealPreimage(hubPublicKey, newHashlock().preimage);
    for (const at of [2, 70, 100, box.length - 2]) {
      const flipped = (Number.parseInt(box.slice(at, at + 2), 16) ^ 1).toString(16).padStart(2, '0');
      assert.equal(open(`${box.slice(0, at)}${flipped}${box.slice(at + 2)}` as `0x${string}`), undefined, `byte ${at}`);
    }
    assert.equal(open(box.slice(0, -2) as `0x${string}`), undefined);
    assert.equal(open(`${box}00`), undefined);
    assert.equal(open('0x1234'), undefined);
    assert.equal(open(`0x04${'ff'.repeat(92)}`), undefined);
    assert.equal(open(`0x${'zz'.repeat(93)}` as `0x${string}`), undefined);
  });
});

describe('nativePreimageSealer', () => {
  it('seals boxes that openPreimage opens, each with its own ephemeral key', () => {
    const hubKey = bytesToHex(secp256k1.utils.randomPrivateKey());
    const seal = nativePreimageSealer(bytesToHex(secp256k1.getPublicKey(hubKey.slice(2), true)));
    const { preimage } = newHashlock();
    const [one, two] = [seal(preimage), seal(preimage)];
    assert.equal(one.length, 2 + 93 * 2);
    assert.notEqual(one, two);
    assert.equal(openPreimage(hubKey, one), preimage);
    assert.equal(nativePreimageOpener(hubKey)(two), preimage);
  });
});
