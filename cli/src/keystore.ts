import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { type Address, getAddress, type Hex } from 'viem';
import { privateKeyToAccount } from 'viem/accounts';
import { CliError } from './errors.js';
import { readSecret } from './prompt.js';

/** A keystore file as read from disk, still locked. */
export interface LockedKeystore {
  path: string;
  /** The address the keystore states in clear (every keystore chit writes does). */
  address: Address | undefined;
  json: string;
}

const MISSING_HINT =
  'Create one with `chit identity new` or `chit identity import`, or point --keystore or CHIT_KEYSTORE at yours.';

/**
 * Reads an encrypted JSON keystore (Web3 Secret Storage v3) without unlocking it.
 *
 * @throws {CliError} `KEYSTORE_MISSING` when there is no file; `INVALID_KEYSTORE` when it is not a keystore.
 * @example
 * const { address } = await readKeystore('/home/me/.config/chit/keystore.json');
 */
export async function readKeystore(file: string): Promise<LockedKeystore> {
  let json: string;
  try {
    json = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new CliError('KEYSTORE_MISSING', `There is no keystore at ${file}`, MISSING_HINT);
    }
    throw new CliError('KEYSTORE_UNREADABLE', `The keystore ${file} cannot be read`, 'Check its permissions.', {
      cause: error,
    });
  }
  // ethers is loaded only by the commands that touch a keystore.
  const { isKeystoreJson } = await import('ethers/wallet');
  if (!isKeystoreJson(json)) {
    throw new CliError(
      'INVALID_KEYSTORE',
      `${file} is not an encrypted JSON keystore (Web3 Secret Storage v3 with scrypt or pbkdf2)`,
      MISSING_HINT,
    );
  }
  const stated = (JSON.parse(json) as { address?: unknown }).address;
  const address =
    typeof stated === 'string' && /^(0x)?[0-9a-fA-F]{40}$/.test(stated)
      ? getAddress(stated.startsWith('0x') ? stated : `0x${stated}`)
      : undefined;
  return { path: file, address, json };
}

/**
 * Decrypts a keystore with `password` and returns its private key. Takes about a second: scrypt is
 * meant to be slow.
 *
 * @throws {CliError} `WRONG_PASSWORD` when the password does not open it.
 * @example
 * const key = await unlockKeystore(await readKeystore(file), await keystorePassword(file));
 */
export async function unlockKeystore(keystore: LockedKeystore, password: string): Promise<Hex> {
  const { decryptKeystoreJson } = await import('ethers/wallet');
  try {
    const account = await decryptKeystoreJson(keystore.json, password);
    return account.privateKey as Hex;
  } catch (error) {
    if (error instanceof Error && error.message.includes('incorrect password')) {
      throw new CliError(
        'WRONG_PASSWORD',
        `The password does not open the keystore ${keystore.path}`,
        'Check CHIT_PASSWORD (or type the password again); the keystore itself is unchanged.',
      );
    }
    throw new CliError('INVALID_KEYSTORE', `The keystore ${keystore.path} cannot be decrypted`, MISSING_HINT, {
      details: error instanceof Error ? error.message : String(error),
      cause: error,
    });
  }
}

/**
 * The scrypt cost of `--light-kdf` (geth's "light" parameters: N = 2^12, p = 6): about 30 times
 * faster to unlock than ethers' default (N = 2^17, p = 1), and as much cheaper to guess.
 */
const LIGHT_SCRYPT = { N: 1 << 12, r: 8, p: 6 } as const;

/**
 * Encrypts `privateKey` with `password` (scrypt: ethers' defaults, or geth's light parameters with
 * `light`) and writes the keystore to `file` with mode 0600, atomically. Refuses to replace an
 * existing file unless `force`.
 *
 * @throws {CliError} `KEYSTORE_EXISTS` when `file` exists and `force` is not set.
 * @example
 * const address = await writeKeystore(file, generatePrivateKey(), password, { force: false });
 */
export async function writeKeystore(
  file: string,
  privateKey: Hex,
  password: string,
  options: { force: boolean; light?: boolean },
): Promise<Address> {
  const { address } = privateKeyToAccount(privateKey);
  if (!options.force && (await exists(file))) {
    throw new CliError(
      'KEYSTORE_EXISTS',
      `A keystore already exists at ${file}`,
      'Choose another path with --keystore, or pass --force to replace it (its key is lost unless backed up).',
    );
  }
  const { encryptKeystoreJson } = await import('ethers/wallet');
  const json = await encryptKeystoreJson(
    { address, privateKey },
    password,
    options.light ? { scrypt: LIGHT_SCRYPT } : undefined,
  );
  await mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
  const temporary = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    await writeFile(temporary, json, { mode: 0o600, flag: 'wx' });
    // link() fails where a file appeared meanwhile: never replace a key unasked.
    if (options.force) await rename(temporary, file);
    else await link(temporary, file);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') return writeKeystore(file, privateKey, password, options);
    throw error;
  } finally {
    await rm(temporary, { force: true });
  }
  return address;
}

/**
 * The keystore password: `CHIT_PASSWORD` when set, otherwise asked on the terminal without echo
 * (twice when `repeat`, for a new keystore).
 *
 * @throws {CliError} `NO_TERMINAL` in a script without CHIT_PASSWORD; `PASSWORD_MISMATCH`; `EMPTY_PASSWORD`.
 * @example
 * const password = await keystorePassword(file, { repeat: true });
 */
export async function keystorePassword(file: string, options: { repeat?: boolean } = {}): Promise<string> {
  const fromEnv = process.env.CHIT_PASSWORD;
  if (fromEnv !== undefined && fromEnv !== '') return fromEnv;
  const hint = 'Set CHIT_PASSWORD to the keystore password when running without a terminal.';
  const password = await readSecret(`Password for ${file}: `, hint);
  if (password === '') {
    throw new CliError('EMPTY_PASSWORD', 'The password is empty', 'Type a password: it protects the key on disk.');
  }
  if (options.repeat && (await readSecret('Repeat the password: ', hint)) !== password) {
    throw new CliError(
      'PASSWORD_MISMATCH',
      'The passwords differ',
      'Run the command again and type the same one twice.',
    );
  }
  return password;
}

async function exists(file: string): Promise<boolean> {
  try {
    await stat(file);
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}
