import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { secp256k1 } from '@noble/curves/secp256k1';
import { bytesToHex } from 'viem';
import { newHashlock, openPreimage, preimageSealer, sealPreimage } from '../src/index.js';
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

for (const [name, sealerOf] of [
  ['preimageSealer', preimageSealer],
  ['nativePreimageSealer', nativePreimageSealer],
] as const) {
  describe(name, () => {
    const hubKey = bytesToHex(secp256k1.utils.randomPrivateKey());
    const hubPublicKey = bytesToHex(secp256k1.getPublicKey(hubKey.slice(2), true));
    const ephemeralOf = (box: string) => box.slice(2, 2 + 33 * 2);
    const nonceOf = (box: string) => box.slice(2 + 33 * 2, 2 + 45 * 2);

    it('seals boxes that openPreimage and the native opener open, one ephemeral key for boxesPerKey of them', () => {
      const seal = sealerOf(hubPublicKey, 3);
      const open = nativePreimageOpener(hubKey);
      const preimages = Array.from({ length: 7 }, () => newHashlock().preimage);
      const boxes = preimages.map((preimage) => seal(preimage));
      for (const [i, box] of boxes.entries()) {
        assert.equal(box.length, 2 + 93 * 2);
        assert.equal(openPreimage(hubKey, box), preimages[i]);
        assert.equal(open(box), preimages[i]);
      }
      // Boxes 0-2 share a key, 3-5 another, 6 a third; every nonce differs.
      const keys = boxes.map(ephemeralOf);
      assert.deepEqual(
        keys.map((key) => keys.indexOf(key)),
        [0, 0, 0, 3, 3, 3, 6],
      );
      assert.equal(new Set(boxes.map(nonceOf)).size, boxes.length);
      // The same R sealed twice gives two different boxes.
      assert.notEqual(seal(preimages[0]!), seal(preimages[0]!));
    });

    it('uses 65,536 boxes per ephemeral key by default', () => {
      const seal = sealerOf(hubPublicKey);
      const { preimage } = newHashlock();
      assert.equal(ephemeralOf(seal(preimage)), ephemeralOf(seal(preimage)));
    });

    it('a box forged on a cached ephemeral key does not open: its tag fails', () => {
      const open = nativePreimageOpener(hubKey);
      const seal = sealerOf(hubPublicKey);
      const { preimage } = newHashlock();
      const box = seal(preimage);
      assert.equal(open(box), preimage); // the opener now holds this ephemeral key's AES key
      const forged = `0x${box.slice(2, 2 + 45 * 2)}${'00'.repeat(48)}` as const;
      assert.equal(open(forged), undefined);
      const other = newHashlock().preimage;
      const swapped = `${box.slice(0, 2 + 45 * 2)}${seal(other).slice(2 + 45 * 2)}` as `0x${string}`;
      assert.equal(open(swapped), undefined, "another box's ciphertext under this box's nonce");
      assert.equal(open(box), preimage);
    });

    it('a box sealed to another hub does not open, whatever the opener holds', () => {
      const open = nativePreimageOpener(hubKey);
      open(sealerOf(hubPublicKey)(newHashlock().preimage));
      const stranger = bytesToHex(secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), true));
      assert.equal(open(sealerOf(stranger)(newHashlock().preimage)), undefined);
    });
  });
}
