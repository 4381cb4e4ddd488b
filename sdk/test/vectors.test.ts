import assert from 'node:assert/strict';
import { createDecipheriv, hkdfSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { gcm } from '@noble/ciphers/aes';
import { secp256k1 } from '@noble/curves/secp256k1';
import { hkdf } from '@noble/hashes/hkdf';
import { sha256 } from '@noble/hashes/sha256';
import type { Address, Hex } from 'viem';
import { bytesToHex, concat, createWalletClient, custom, hashTypedData, hexToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { foundry } from 'viem/chains';
import {
  consumerPromiseDigest,
  consumerPromiseTypes,
  decodeMessage,
  encodeMessage,
  hashAgreement,
  hashlockOf,
  hubDomain,
  hubDomainSeparator,
  hubPromiseDigest,
  instantExitDigest,
  instantExitRequestDigest,
  instantExitRequestTypes,
  jsVerifier,
  openPreimage,
  recoveryRequestDigest,
  registerIdentityTypes,
  registryDomain,
  settlementAuthorizationDigest,
  signConsumerPromise,
  signHubPromise,
  signInstantExit,
  signInstantExitRequest,
  signRegisterIdentity,
  signSettlementAuthorization,
  toConsumerClaim,
  verifyConsumerPromise,
  verifyHubPromise,
  verifyInstantExitRequest,
  verifyRecoveryRequest,
  verifySettlementAuthorization,
} from '../src/index.js';
import { nativeVerifier } from '../src/node/index.js';

// sdk/test/vectors.json is checked against the contracts by contracts/test/vectors.test.ts; here the
// SDK must reproduce every digest and signature in it, byte for byte.
const vectors = JSON.parse(readFileSync(new URL('./vectors.json', import.meta.url), 'utf8'));
const account = (name: string) => privateKeyToAccount(vectors.keys[name].privateKey as Hex);

describe('test vectors', () => {
  const consumerPromise = decodeMessage('consumerPromise', vectors.consumerPromise.message);
  const hubPromise = decodeMessage('hubPromise', vectors.hubPromise.message);

  it('decode and re-encode to the same wire form', () => {
    assert.deepEqual(encodeMessage(consumerPromise), vectors.consumerPromise.message);
    assert.deepEqual(encodeMessage(hubPromise), vectors.hubPromise.message);
    const recovery = decodeMessage('recoveryRequest', vectors.recoveryRequest.message);
    assert.deepEqual(encodeMessage(recovery), vectors.recoveryRequest.message);
  });

  it('reproduce the hub domain separator', () => {
    assert.equal(hubDomainSeparator(consumerPromise), vectors.hubDomainSeparator);
  });

  it('reproduce the consumer promise digest, agreement hash and signature', async () => {
    assert.equal(consumerPromiseDigest(consumerPromise), vectors.consumerPromise.digest);
    assert.equal(
      hashTypedData({
        domain: hubDomain(consumerPromise),
        types: consumerPromiseTypes,
        primaryType: 'ConsumerPromise',
        message: consumerPromise,
      }),
      vectors.consumerPromise.digest,
    );
    assert.equal(hashAgreement(consumerPromise.agreement), vectors.consumerPromise.agreementHash);
    const { signature, ...unsigned } = consumerPromise;
    assert.equal((await signConsumerPromise(account('consumer'), unsigned)).signature, signature);
    assert.equal(
      toConsumerClaim(consumerPromise, vectors.consumerPromise.preimage).agreementHash,
      vectors.consumerPromise.agreementHash,
    );
  });

  it('reproduce the hub promise, settlement authorization, instant exit and recovery digests', async () => {
    assert.equal(hubPromiseDigest(hubPromise), vectors.hubPromise.digest);
    const { signature, ...unsigned } = hubPromise;
    assert.equal((await signHubPromise(account('operator'), unsigned)).signature, signature);
    const fee = BigInt(vectors.settlementAuthorization.relayerFee);
    const relayer = vectors.settlementAuthorization.relayer as Address;
    assert.equal(relayer, vectors.keys.relayer.address);
    assert.equal(settlementAuthorizationDigest(hubPromise, fee, relayer), vectors.settlementAuthorization.digest);
    assert.equal(
      await signSettlementAuthorization(account('provider'), hubPromise, fee, relayer),
      vectors.settlementAuthorization.signature,
    );
    const exit = vectors.instantExit.message;
    const instantExit = {
      hub: exit.hub,
      chainId: exit.chainId,
      consumer: exit.consumer,
      amount: BigInt(exit.amount),
      nonce: BigInt(exit.nonce),
      deadline: BigInt(exit.deadline),
    };
    assert.equal(instantExitDigest(instantExit), vectors.instantExit.digest);
    assert.equal(await signInstantExit(account('operator'), instantExit), vectors.instantExit.signature);
    const recovery = decodeMessage('recoveryRequest', vectors.recoveryRequest.message);
    assert.equal(recoveryRequestDigest(recovery), vectors.recoveryRequest.digest);
  });

  it('reproduce the RegisterIdentity digest and signature, which name the relayer', async () => {
    const m = vectors.registerIdentity.message;
    const registration = {
      identity: m.identity as Address,
      beneficiary: m.beneficiary as Address,
      relayerFee: BigInt(m.relayerFee),
      relayer: m.relayer as Address,
      nonce: BigInt(m.nonce),
    };
    assert.equal(registration.relayer, vectors.keys.relayer.address);
    const scope = { registry: vectors.contracts.registry as Address, chainId: vectors.chainId as number };
    const typed = {
      domain: registryDomain(scope),
      types: registerIdentityTypes,
      primaryType: 'RegisterIdentity',
    } as const;
    assert.equal(hashTypedData({ ...typed, message: registration }), vectors.registerIdentity.digest);
    const wallet = createWalletClient({
      account: account('provider'),
      chain: { ...foundry, id: scope.chainId },
      transport: custom({ request: () => Promise.reject(new Error('no RPC: signing needs none')) }),
    });
    const signed = await signRegisterIdentity(wallet, { ...scope, ...registration });
    assert.equal(signed.signature, vectors.registerIdentity.signature);
    assert.equal(signed.relayer, registration.relayer);
    const forOther = { ...registration, relayer: vectors.keys.consumer.address as Address };
    assert.notEqual(hashTypedData({ ...typed, message: forOther }), vectors.registerIdentity.digest);
  });

  it('hash an instant-exit request as viem does, and verify only its consumer', async () => {
    const request = {
      hub: vectors.contracts.hub,
      chainId: 31337,
      consumer: vectors.keys.consumer.address,
      amount: 5n * 10n ** 18n,
      issuedAt: 1_764_000_000n,
    };
    const { consumer, amount, issuedAt } = request;
    assert.equal(
      instantExitRequestDigest(request),
      hashTypedData({
        domain: hubDomain(request),
        types: instantExitRequestTypes,
        primaryType: 'InstantExitRequest',
        message: { consumer, amount, issuedAt },
      }),
    );
    const signed = await signInstantExitRequest(account('consumer'), request);
    const { hub: _hub, chainId: _chainId, ...body } = signed;
    assert.deepEqual(decodeMessage('instantExitRequest', encodeMessage(body)), body);
    for (const verifier of [jsVerifier, nativeVerifier()]) {
      assert.equal(verifyInstantExitRequest(signed, verifier), true);
      assert.equal(verifyInstantExitRequest({ ...signed, amount: amount + 1n }, verifier), false);
      const other = await signInstantExitRequest(account('provider'), request);
      assert.equal(verifyInstantExitRequest(other, verifier), false);
    }
  });

  for (const verifier of [jsVerifier, nativeVerifier()]) {
    describe(`with the ${verifier.kind} verifier`, () => {
      it('accept every vector', () => {
        assert.equal(verifyConsumerPromise(consumerPromise, verifier), true);
        assert.equal(verifyHubPromise(hubPromise, vectors.keys.operator.address, verifier), true);
        const fee = BigInt(vectors.settlementAuthorization.relayerFee);
        const relayer = vectors.settlementAuthorization.relayer as Address;
        assert.equal(
          verifySettlementAuthorization(hubPromise, fee, relayer, vectors.settlementAuthorization.signature, verifier),
          true,
        );
        assert.equal(
          verifySettlementAuthorization(
            hubPromise,
            fee,
            vectors.keys.consumer.address as Address,
            vectors.settlementAuthorization.signature,
            verifier,
          ),
          false,
        );
        const recovery = decodeMessage('recoveryRequest', vectors.recoveryRequest.message);
        assert.equal(verifyRecoveryRequest(recovery, verifier), true);
      });

      it('reject each mutated consumer promise', () => {
        const mutations = [
          { total: consumerPromise.total + 1n },
          { consumer: vectors.keys.provider.address },
          { hashlock: vectors.consumerPromise.agreementHash },
          { chainId: 1 },
          { hub: vectors.contracts.registry },
          { agreement: { ...consumerPromise.agreement, total: consumerPromise.agreement.total + 1n } },
          { agreement: { ...consumerPromise.agreement, provider: vectors.keys.consumer.address } },
          { signature: vectors.consumerPromise.otherChainSignature },
          { signature: vectors.consumerPromise.otherHubSignature },
          { signature: vectors.hubPromise.signature },
        ];
        for (const mutation of mutations) {
          assert.equal(
            verifyConsumerPromise({ ...consumerPromise, ...mutation }, verifier),
            false,
            JSON.stringify(encodeMessage(mutation)),
          );
        }
      });

      it('reject each mutated hub promise and a high-s twin', () => {
        for (const mutation of [
          { total: hubPromise.total + 1n },
          { provider: vectors.keys.consumer.address },
          { chainId: 1 },
          { signature: vectors.hubPromise.otherHubSignature },
        ]) {
          assert.equal(
            verifyHubPromise({ ...hubPromise, ...mutation }, vectors.keys.operator.address, verifier),
            false,
          );
        }
        const n = BigInt('0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141');
        const sig = hubPromise.signature;
        const s = BigInt(`0x${sig.slice(66, 130)}`);
        const v = Number.parseInt(sig.slice(130), 16);
        const twin =
          `${sig.slice(0, 66)}${(n - s).toString(16).padStart(64, '0')}${(v === 27 ? 28 : 27).toString(16)}` as Hex;
        assert.equal(
          verifyHubPromise({ ...hubPromise, signature: twin }, vectors.keys.operator.address, verifier),
          false,
        );
      });
    });
  }

  describe('the preimage box', () => {
    const box = vectors.preimageBox;
    const bytes = (hex: Hex) => hexToBytes(hex);

    it('opens to R with the hub key, and R hashes to the hashlock of the promises', () => {
      assert.equal(openPreimage(box.hubPrivateKey, box.box), box.preimage);
      assert.equal(hashlockOf(box.preimage), box.hashlock);
      assert.equal(box.hashlock, vectors.consumerPromise.message.hashlock);
      assert.equal(box.hubPrivateKey, vectors.keys.operator.privateKey);
    });

    it('recomputes every intermediate value and the box from the fixed ephemeral key and nonce', () => {
      assert.equal(bytesToHex(secp256k1.getPublicKey(bytes(box.hubPrivateKey), true)), box.hubPublicKey);
      assert.equal(bytesToHex(secp256k1.getPublicKey(bytes(box.ephemeralPrivateKey), true)), box.ephemeralPublicKey);
      const shared = secp256k1.getSharedSecret(bytes(box.ephemeralPrivateKey), bytes(box.hubPublicKey), true);
      assert.equal(bytesToHex(shared), box.sharedPoint);
      assert.equal(
        bytesToHex(secp256k1.getSharedSecret(bytes(box.hubPrivateKey), bytes(box.ephemeralPublicKey), true)),
        box.sharedPoint,
      );
      const info = new TextEncoder().encode(box.info);
      const aesKey = hkdf(sha256, shared, bytes(box.ephemeralPublicKey), info, 32);
      assert.equal(bytesToHex(aesKey), box.aesKey);
      const sealed = gcm(aesKey, bytes(box.nonce)).encrypt(bytes(box.preimage));
      assert.equal(bytesToHex(sealed), concat([box.ciphertext, box.tag]));
      assert.equal(concat([box.ephemeralPublicKey, box.nonce, box.ciphertext, box.tag]), box.box);
      assert.equal(bytes(box.box).length, 93);
    });

    it("derives the same key and R with Node's crypto", () => {
      const aesKey = hkdfSync('sha256', bytes(box.sharedPoint), bytes(box.ephemeralPublicKey), box.info, 32);
      assert.equal(bytesToHex(new Uint8Array(aesKey)), box.aesKey);
      const decipher = createDecipheriv('aes-256-gcm', bytes(box.aesKey), bytes(box.nonce));
      decipher.setAuthTag(bytes(box.tag));
      const plain = Buffer.concat([decipher.update(bytes(box.ciphertext)), decipher.final()]);
      assert.equal(bytesToHex(plain), box.preimage);
    });

    it('does not open with another key or with a changed byte', () => {
      assert.equal(openPreimage(vectors.keys.provider.privateKey, box.box), undefined);
      const flipped = bytes(box.box);
      flipped[60] = (flipped[60] ?? 0) ^ 1;
      assert.equal(openPreimage(box.hubPrivateKey, bytesToHex(flipped)), undefined);
    });
  });
});
