import { createRequire } from 'node:module';
import { bytesToHex, type Hex, hexToBytes } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';

interface Secp256k1 {
  ecdsaSign(message: Uint8Array, privateKey: Uint8Array): { signature: Uint8Array; recid: number };
  publicKeyCreate(privateKey: Uint8Array, compressed: boolean): Uint8Array;
}

/**
 * The operator's key: signs hub promises and exit co-signatures on the hot path with native
 * libsecp256k1 (RFC 6979, low s: the same signatures viem would make), and opens preimage boxes.
 */
export class OperatorSigner {
  readonly address: `0x${string}`;
  /** Compressed public key, published in `GET /v1/info` for preimage boxes. */
  readonly publicKey: Hex;
  private readonly key: Uint8Array;
  private readonly native: Secp256k1;

  constructor(readonly privateKey: Hex) {
    this.key = hexToBytes(privateKey);
    this.address = privateKeyToAccount(privateKey).address;
    const require = createRequire(__filename);
    this.native = require('secp256k1/bindings') as Secp256k1;
    this.publicKey = bytesToHex(this.native.publicKeyCreate(this.key, true));
  }

  /** A 65-byte (r, s, v) signature of a 32-byte digest. */
  signDigest(digest: Uint8Array): Hex {
    const { signature, recid } = this.native.ecdsaSign(digest, this.key);
    const out = new Uint8Array(65);
    out.set(signature, 0);
    out[64] = 27 + recid;
    return bytesToHex(out);
  }
}
