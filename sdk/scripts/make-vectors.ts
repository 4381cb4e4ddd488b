/**
 * Writes sdk/test/vectors.json: fixed keys, messages, digests and signatures of every Chit EIP-712
 * message. The contract suite (contracts/test/vectors.test.ts) deploys the contracts at the addresses
 * recorded here and checks they accept exactly these signatures; the SDK suite checks the SDK
 * reproduces them. Regenerate with `npm run vectors -w sdk` after a change to the signed types.
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { gcm } from '@noble/ciphers/aes';
import { secp256k1 } from '@noble/curves/secp256k1';
import { hkdf } from '@noble/hashes/hkdf';
import { sha256 } from '@noble/hashes/sha256';
import { type Address, bytesToHex, concat, getContractAddress, type Hex, hashTypedData, hexToBytes, pad } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import {
  consumerPromiseDigest,
  encodeMessage,
  hashAgreement,
  hashlockOf,
  hubDomainSeparator,
  hubPromiseDigest,
  instantExitDigest,
  recoveryRequestDigest,
  registerIdentityTypes,
  registryDomain,
  setBeneficiaryTypes,
  settlementAuthorizationDigest,
  signConsumerPromise,
  signHubPromise,
  signInstantExit,
  signRecoveryRequest,
  signSettlementAuthorization,
} from '../src/index.js';

const CHAIN_ID = 31337;
const key = (byte: string) => `0x${byte.repeat(32)}` as Hex;
const keys = {
  deployer: key('d1'),
  operator: key('0a'),
  consumer: key('c0'),
  provider: key('b0'),
  beneficiary: key('be'),
  relayer: key('ae'),
};
const accounts = Object.fromEntries(Object.entries(keys).map(([name, k]) => [name, privateKeyToAccount(k)])) as Record<
  keyof typeof keys,
  ReturnType<typeof privateKeyToAccount>
>;

/** Where the contracts land when `deployer` (nonce 0) deploys TestToken, then the Registry. */
function addresses() {
  const token = getContractAddress({ from: accounts.deployer.address, nonce: 0n });
  const registry = getContractAddress({ from: accounts.deployer.address, nonce: 1n });
  const hubImplementation = getContractAddress({ from: registry, nonce: 1n });
  const cloneInitCode = concat([
    '0x3d602d80600a3d3981f3363d3d373d3d3d363d73',
    hubImplementation,
    '0x5af43d82803e903d91602b57fd5bf3',
  ]);
  const hub = getContractAddress({
    opcode: 'CREATE2',
    from: registry,
    salt: pad(accounts.operator.address),
    bytecode: cloneInitCode,
  });
  return { token, registry, hubImplementation, hub };
}

/**
 * A preimage box (`ExchangeRequest.encryptedPreimage`) sealed to the operator's key with a fixed
 * ephemeral key and nonce, built here from the primitives rather than with `sealPreimage` (which draws
 * both at random), with every intermediate value.
 */
function preimageBoxVector(preimage: Hex) {
  const hubPrivateKey = keys.operator;
  const ephemeralPrivateKey = key('e0');
  const nonce = '0x000102030405060708090a0b' as Hex;
  const info = 'chit/preimage/v1';
  const hubPublicKey = secp256k1.getPublicKey(hexToBytes(hubPrivateKey), true);
  const ephemeralPublicKey = secp256k1.getPublicKey(hexToBytes(ephemeralPrivateKey), true);
  const sharedPoint = secp256k1.getSharedSecret(hexToBytes(ephemeralPrivateKey), hubPublicKey, true);
  const aesKey = hkdf(sha256, sharedPoint, ephemeralPublicKey, new TextEncoder().encode(info), 32);
  const sealed = gcm(aesKey, hexToBytes(nonce)).encrypt(hexToBytes(preimage));
  return {
    description:
      'ECIES box of R to the hub (the operator key): ephemeralPublicKey (33) || nonce (12) || ciphertext (32) || tag (16). ' +
      'Fixed ephemeral key and nonce for the test only: a real box draws both at random.',
    hubPrivateKey,
    hubPublicKey: bytesToHex(hubPublicKey),
    ephemeralPrivateKey,
    ephemeralPublicKey: bytesToHex(ephemeralPublicKey),
    sharedPoint: bytesToHex(sharedPoint),
    info,
    aesKey: bytesToHex(aesKey),
    nonce,
    preimage,
    hashlock: hashlockOf(preimage),
    ciphertext: bytesToHex(sealed.subarray(0, 32)),
    tag: bytesToHex(sealed.subarray(32)),
    box: concat([bytesToHex(ephemeralPublicKey), nonce, bytesToHex(sealed)]),
  };
}

async function main(): Promise<void> {
  const contracts = addresses();
  const scope = { hub: contracts.hub as Address, chainId: CHAIN_ID };
  const otherHub = { hub: '0x000000000000000000000000000000000000dEaD' as Address, chainId: CHAIN_ID };
  const otherChain = { hub: contracts.hub as Address, chainId: 1 };
  const preimage = key('5e');
  const hashlock = hashlockOf(preimage);
  const agreement = { provider: accounts.provider.address, id: key('a1'), total: 7_000_000_000_000_000n };

  const consumerPromise = {
    ...scope,
    consumer: accounts.consumer.address,
    total: 12_000_000_000_000_000n,
    hashlock,
    agreement,
  };
  const signedConsumerPromise = await signConsumerPromise(accounts.consumer, consumerPromise);
  const hubPromise = { ...scope, provider: accounts.provider.address, total: 7_000_000_000_000_000n, hashlock };
  const signedHubPromise = await signHubPromise(accounts.operator, hubPromise);
  const relayerFee = 100_000_000_000_000n;
  const instantExit = {
    ...scope,
    consumer: accounts.consumer.address,
    amount: 1_000_000_000_000_000n,
    nonce: 0n,
    deadline: 4_102_444_800n,
  };
  const recovery = { ...scope, provider: accounts.provider.address, issuedAt: 1_764_000_000n };
  const registryScope = { registry: contracts.registry as Address, chainId: CHAIN_ID };
  const registration = {
    identity: accounts.provider.address,
    beneficiary: accounts.beneficiary.address,
    relayerFee: 0n,
    relayer: accounts.relayer.address,
    nonce: 0n,
  };
  const beneficiaryChange = { identity: accounts.provider.address, beneficiary: accounts.consumer.address, nonce: 1n };

  const vectors = {
    description:
      'Chit EIP-712 test vectors. Keys are test keys: never use them with real funds. Amounts are decimal strings.',
    chainId: CHAIN_ID,
    keys: Object.fromEntries(
      Object.entries(accounts).map(([name, account]) => [
        name,
        { privateKey: keys[name as keyof typeof keys], address: account.address },
      ]),
    ),
    contracts,
    hubDomainSeparator: hubDomainSeparator(scope),
    consumerPromise: {
      message: encodeMessage(signedConsumerPromise),
      preimage,
      agreementHash: hashAgreement(agreement),
      digest: consumerPromiseDigest(consumerPromise),
      signature: signedConsumerPromise.signature,
      otherChainSignature: (await signConsumerPromise(accounts.consumer, { ...consumerPromise, ...otherChain }))
        .signature,
      otherHubSignature: (await signConsumerPromise(accounts.consumer, { ...consumerPromise, ...otherHub })).signature,
    },
    hubPromise: {
      message: encodeMessage(signedHubPromise),
      preimage,
      digest: hubPromiseDigest(hubPromise),
      signature: signedHubPromise.signature,
      otherChainSignature: (await signHubPromise(accounts.operator, { ...hubPromise, ...otherChain })).signature,
      otherHubSignature: (await signHubPromise(accounts.operator, { ...hubPromise, ...otherHub })).signature,
    },
    settlementAuthorization: {
      relayerFee: relayerFee.toString(),
      relayer: accounts.relayer.address,
      digest: settlementAuthorizationDigest(hubPromise, relayerFee, accounts.relayer.address),
      signature: await signSettlementAuthorization(accounts.provider, hubPromise, relayerFee, accounts.relayer.address),
    },
    instantExit: {
      message: encodeMessage(instantExit),
      digest: instantExitDigest(instantExit),
      signature: await signInstantExit(accounts.operator, instantExit),
    },
    recoveryRequest: {
      message: encodeMessage(await signRecoveryRequest(accounts.provider, recovery)),
      digest: recoveryRequestDigest(recovery),
    },
    registerIdentity: {
      message: encodeMessage(registration),
      digest: hashTypedData({
        domain: registryDomain(registryScope),
        types: registerIdentityTypes,
        primaryType: 'RegisterIdentity',
        message: registration,
      }),
      signature: await accounts.provider.signTypedData({
        domain: registryDomain(registryScope),
        types: registerIdentityTypes,
        primaryType: 'RegisterIdentity',
        message: registration,
      }),
    },
    setBeneficiary: {
      message: encodeMessage(beneficiaryChange),
      digest: hashTypedData({
        domain: registryDomain(registryScope),
        types: setBeneficiaryTypes,
        primaryType: 'SetBeneficiary',
        message: beneficiaryChange,
      }),
      signature: await accounts.provider.signTypedData({
        domain: registryDomain(registryScope),
        types: setBeneficiaryTypes,
        primaryType: 'SetBeneficiary',
        message: beneficiaryChange,
      }),
    },
    preimageBox: preimageBoxVector(preimage),
  };
  const file = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'test', 'vectors.json');
  writeFileSync(file, `${JSON.stringify(vectors, null, 2)}\n`);
  console.log(`wrote ${path.relative(process.cwd(), file)}`);
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
