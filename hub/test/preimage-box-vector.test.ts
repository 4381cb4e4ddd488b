import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { openPreimage } from '@chit/sdk';
import { nativePreimageOpener } from '@chit/sdk/node';
import { bytesToHex, type Hex, hexToBytes, keccak256 } from 'viem';
import { OperatorSigner } from '../src/crypto/operator-signer';

// The SDK's preimage-box vector (sdk/test/vectors.json, docs/protocol.md) against what the hub uses:
// a box another implementation seals the same way must open here to the same R.
const vectors = JSON.parse(readFileSync(path.join(__dirname, '..', '..', 'sdk', 'test', 'vectors.json'), 'utf8'));
const box = vectors.preimageBox as Record<string, Hex>;

describe('the preimage box test vector', () => {
  it('the hub publishes the public key the vector seals to', () => {
    assert.equal(new OperatorSigner(box.hubPrivateKey!).publicKey, box.hubPublicKey);
  });

  const openers: [string, (privateKey: Hex) => (box: Hex) => Hex | undefined][] = [
    ['openPreimage', (privateKey) => (sealed) => openPreimage(privateKey, sealed)],
    ['nativePreimageOpener', nativePreimageOpener],
  ];
  for (const [name, opener] of openers) {
    describe(`with ${name}`, () => {
      it('opens the box to R, whose keccak256 is the hashlock', () => {
        assert.equal(opener(box.hubPrivateKey!)(box.box!), box.preimage);
        assert.equal(keccak256(box.preimage!), box.hashlock);
        assert.equal(box.hashlock, vectors.consumerPromise.message.hashlock);
      });

      it('opens nothing with another key, a changed byte or a cut box', () => {
        assert.equal(opener(vectors.keys.provider.privateKey)(box.box!), undefined);
        const flipped = hexToBytes(box.box!);
        flipped[50] = (flipped[50] ?? 0) ^ 1;
        assert.equal(opener(box.hubPrivateKey!)(bytesToHex(flipped)), undefined);
        assert.equal(opener(box.hubPrivateKey!)(box.box!.slice(0, -2) as Hex), undefined);
      });
    });
  }
});
