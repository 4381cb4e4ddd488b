import { ctr } from '@noble/ciphers/aes';
import { pbkdf2Async } from '@noble/hashes/pbkdf2';
import { scryptAsync } from '@noble/hashes/scrypt';
import { sha256 } from '@noble/hashes/sha2';
import { keccak_256 } from '@noble/hashes/sha3';
import { bytesToHex, type Hex, hexToBytes } from 'viem';

// Key files, read in the page and never sent anywhere: a plain private key (0x and 64 hex digits, what
// `chit identity export` prints), or the CLI's encrypted JSON keystore (Web3 Secret Storage v3, scrypt
// or pbkdf2 with aes-128-ctr, as ethers and geth write it), opened with its password.

/** What a key file holds: a plain key, or a keystore that needs its password. */
export type KeyFile =
  | { kind: 'plain'; key: Hex }
  | { kind: 'keystore'; keystore: Keystore; address: string | undefined };

interface Keystore {
  crypto: {
    cipher: string;
    cipherparams: { iv: string };
    ciphertext: string;
    kdf: string;
    kdfparams: Record<string, unknown>;
    mac: string;
  };
}

/** A key file this page cannot read, with why. */
export class KeyFileError extends Error {
  override name = 'KeyFileError';
}

const unhex = (value: unknown, what: string): Uint8Array => {
  if (typeof value !== 'string' || !/^(0x)?([0-9a-fA-F]{2})*$/.test(value)) {
    throw new KeyFileError(`The keystore's ${what} is not hex`);
  }
  return hexToBytes(value.startsWith('0x') ? (value as Hex) : `0x${value}`);
};

/**
 * Reads a key file's text: a plain key, or a keystore to unlock with {@link unlockKeystore}.
 *
 * @throws {KeyFileError} when it is neither.
 */
export function readKeyFile(text: string): KeyFile {
  const trimmed = text.trim();
  if (/^(0x)?[0-9a-fA-F]{64}$/.test(trimmed)) {
    return { kind: 'plain', key: (trimmed.startsWith('0x') ? trimmed : `0x${trimmed}`).toLowerCase() as Hex };
  }
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(trimmed) as Record<string, unknown>;
  } catch {
    throw new KeyFileError('The file is neither a private key (0x and 64 hex digits) nor a JSON keystore');
  }
  const crypto = (json.crypto ?? json.Crypto) as Keystore['crypto'] | undefined;
  if (json.version !== 3 || typeof crypto !== 'object' || crypto === null) {
    throw new KeyFileError('The file is JSON but not a keystore (Web3 Secret Storage version 3)');
  }
  const address = typeof json.address === 'string' ? json.address : undefined;
  return { kind: 'keystore', keystore: { crypto }, address };
}

/**
 * Decrypts a keystore with its password. scrypt is slow on purpose: a second or more in a browser.
 *
 * @throws {KeyFileError} for a wrong password or a keystore of an unknown kind.
 */
export async function unlockKeystore(keystore: Keystore, password: string): Promise<Hex> {
  const { crypto } = keystore;
  if (crypto.cipher !== 'aes-128-ctr') throw new KeyFileError(`Unsupported keystore cipher ${crypto.cipher}`);
  const params = crypto.kdfparams;
  const salt = unhex(params.salt, 'salt');
  const secret = new TextEncoder().encode(password.normalize('NFKD'));
  const dkLen = Number(params.dklen ?? 32);
  let derived: Uint8Array;
  if (crypto.kdf === 'scrypt') {
    const N = Number(params.n);
    const r = Number(params.r);
    const p = Number(params.p);
    derived = await scryptAsync(secret, salt, { N, r, p, dkLen, maxmem: 1024 * r * (N + p) + 1024 });
  } else if (crypto.kdf === 'pbkdf2') {
    if (params.prf !== 'hmac-sha256') throw new KeyFileError(`Unsupported keystore pbkdf2 ${String(params.prf)}`);
    derived = await pbkdf2Async(sha256, secret, salt, { c: Number(params.c), dkLen });
  } else {
    throw new KeyFileError(`Unsupported keystore kdf ${crypto.kdf}`);
  }
  const ciphertext = unhex(crypto.ciphertext, 'ciphertext');
  const mac = bytesToHex(keccak_256(new Uint8Array([...derived.slice(16, 32), ...ciphertext])));
  if (mac.slice(2) !== crypto.mac.replace(/^0x/, '').toLowerCase()) {
    throw new KeyFileError('The password does not open this keystore');
  }
  const key = ctr(derived.slice(0, 16), unhex(crypto.cipherparams.iv, 'iv')).decrypt(ciphertext);
  return bytesToHex(key);
}
