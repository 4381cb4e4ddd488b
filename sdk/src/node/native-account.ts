import { type Hex, hashTypedData, hexToBytes, type LocalAccount } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import type { DigestSigner } from '../protocol/sign.js';
import { loadSecp256k1 } from './secp256k1-binding.js';

/**
 * A viem `LocalAccount` for `privateKey` whose digests and typed data are signed by native
 * libsecp256k1 (the optional `secp256k1` package): the same signatures as `privateKeyToAccount`
 * (RFC 6979 nonces, low s, v 27 or 28), about 20 times faster, which is what a consumer paying many
 * requests a second spends its CPU on. As a {@link DigestSigner}, it lets `signConsumerPromise` skip
 * viem's typed-data hashing too. Messages and transactions are signed by viem as usual. Falls back to
 * `privateKeyToAccount`'s signing when the binding cannot load.
 *
 * @example
 * const ledger = new ConsumerLedger({ hub, chainId, account: nativeAccount(key) });
 */
export function nativeAccount(privateKey: Hex): LocalAccount & DigestSigner {
  const account = privateKeyToAccount(privateKey);
  const native = loadSecp256k1();
  if (!native) return { ...account, signDigest: (digest) => account.sign({ hash: digest }), signsAsItsAddress: true };
  const key = hexToBytes(privateKey);
  const signDigest = (digest: Hex): Hex => {
    const { signature, recid } = native.ecdsaSign(hexToBytes(digest), key);
    return `0x${Buffer.from(signature).toString('hex')}${recid === 1 ? '1c' : '1b'}`;
  };
  return {
    ...account,
    sign: async ({ hash }) => signDigest(hash),
    signTypedData: async (typedData) => signDigest(hashTypedData(typedData)),
    signDigest: async (digest) => signDigest(digest),
    // The address is the key's (privateKeyToAccount), and every signature is the key's.
    signsAsItsAddress: true,
  };
}
